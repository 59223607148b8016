// Drive lockd over TLS with ioredis; TestTLSClientLibraries checks what
// this prints.
//
// usage: node tls_check.js HOST PORT CA_FILE [CERT_FILE KEY_FILE]
//
// Prints "lock <token>", "owner <owner>" and "unlock <n>", or "error
// <message>" when the connection is refused.
"use strict";
const fs = require("fs");
const Redis = require("ioredis");

const [host, portStr, ca, cert, key] = process.argv.slice(2);
const tls = { ca: fs.readFileSync(ca) };
if (cert !== undefined) {
  tls.cert = fs.readFileSync(cert);
  tls.key = fs.readFileSync(key);
}

const timer = setTimeout(() => {
  console.log("timeout");
  process.exit(3);
}, 15000);

async function main() {
  const r = new Redis({ host, port: Number(portStr), tls, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  let lastErr = null;
  r.on("error", (e) => { lastErr = e; });
  try {
    await r.connect();
    console.log("lock", await r.call("LOCK", "io-tls", "io-owner", "PX", "30000"));
    console.log("owner", await r.call("OWNER", "io-tls"));
    console.log("unlock", await r.call("UNLOCK", "io-tls", "io-owner"));
  } catch (e) {
    console.log("error", (lastErr || e).message);
  }
  r.disconnect();
  clearTimeout(timer);
}

main();
