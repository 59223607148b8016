// Drive lockd with ioredis; TestIoredis checks what this prints.
//
// usage: node ioredis_check.js HOST PORT NAME [PASSWORD]
//
// Each line is "<step> <value>". The client must become ready first: ioredis
// sends INFO and waits for loading:0 before it sends anything else.
"use strict";
const Redis = require("ioredis");

const [host, portStr, name, password] = process.argv.slice(2);
const port = Number(portStr);
const p = (step, v) => console.log(step, v === null ? "nil" : Array.isArray(v) ? JSON.stringify(v) : String(v));

const timer = setTimeout(() => {
  console.log("timeout");
  process.exit(3);
}, 15000);

function connect(opts) {
  return new Redis({
    host,
    port,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    ...opts,
  });
}

function ready(r) {
  return new Promise((resolve, reject) => {
    r.once("ready", resolve);
    r.once("error", reject);
    r.once("end", () => reject(new Error("connection ended before ready")));
  });
}

async function main() {
  if (password !== undefined) {
    // Without the password: NOAUTH on the first command.
    const r = connect({ enableReadyCheck: false, lazyConnect: true });
    r.on("error", () => {});
    try {
      await r.connect();
      await r.call("OWNER", name);
      p("noauth", "none");
    } catch (e) {
      p("noauth", e.message);
    }
    r.disconnect();
  }
  const r = connect(password === undefined ? {} : { password });
  await ready(r);
  p("ready", r.status);
  p("ping", await r.ping());
  p("lock", await r.call("LOCK", name, "io-owner", "PX", "30000"));
  p("relock", await r.call("LOCK", name, "io-owner", "PX", "30000"));
  p("other", await r.call("LOCK", name, "someone-else"));
  p("owner", await r.call("OWNER", name));
  p("lockinfo", await r.call("LOCKINFO", name));
  p("renew", await r.call("RENEW", name, "io-owner", "PX", "60000"));
  p("unlock-other", await r.call("UNLOCK", name, "someone-else"));
  p("unlock", await r.call("UNLOCK", name, "io-owner"));
  p("owner-after", await r.call("OWNER", name));
  p("lockinfo-after", await r.call("LOCKINFO", name));
  p("lock-next", await r.call("LOCK", name, "someone-else"));
  p("unlock-next", await r.call("UNLOCK", name, "someone-else"));
  try {
    await r.call("LOCK", name);
    p("error", "none");
  } catch (e) {
    p("error", e.message);
  }
  // A pipeline: 20 LOCKs, then UNLOCK and LOCK by someone else of the
  // first name, then its OWNER.
  const pipe = r.pipeline();
  for (let i = 0; i < 20; i++) pipe.call("LOCK", `${name}-p${i}`, "io-owner", "PX", "30000");
  pipe.call("UNLOCK", `${name}-p0`, "io-owner");
  pipe.call("LOCK", `${name}-p0`, "someone-else", "PX", "30000");
  pipe.call("OWNER", `${name}-p0`);
  const res = (await pipe.exec()).map(([err, v]) => (err ? `error:${err.message}` : v));
  const toks = res.slice(0, 20).filter((t) => typeof t === "number" && t > 0);
  p(
    "pipeline",
    `granted=${toks.length} distinct=${new Set(toks).size} unlock=${res[20]} ` +
      `relock=${typeof res[21] === "number" && res[21] > Math.max(...toks) ? "granted" : res[21]} owner=${res[22]}`,
  );
  await r.quit();
  p("done", "ok");
}

main().then(
  () => {
    clearTimeout(timer);
    process.exit(0);
  },
  (e) => {
    console.log("fatal", e && e.message);
    process.exit(2);
  },
);
