// Subscribe with ioredis on one node, publish and lock on another;
// TestPubSubClients checks what this prints.
//
// usage: node pubsub_check.js SUBHOST SUBPORT PUBHOST PUBPORT NAME
//
// Prints "confirmed N", then one line per message received in order:
// "message CHANNEL DATA" or "event CHANNEL" (a keyevent about NAME), then
// "done ok".
"use strict";
const Redis = require("ioredis");

const [subHost, subPort, pubHost, pubPort, name] = process.argv.slice(2);
const opts = { maxRetriesPerRequest: 0, retryStrategy: () => null };
const sub = new Redis({ host: subHost, port: Number(subPort), ...opts });
const pub = new Redis({ host: pubHost, port: Number(pubPort), ...opts });

const timer = setTimeout(() => {
  console.log("timeout");
  process.exit(3);
}, 15000);

let seen = 0;
function saw(line) {
  console.log(line);
  if (++seen === 3) {
    console.log("done ok");
    clearTimeout(timer);
    sub.disconnect();
    pub.disconnect();
  }
}
sub.on("message", (channel, message) => saw(`message ${channel} ${message}`));
sub.on("pmessage", (pattern, channel, message) => {
  if (message === name) saw(`event ${channel}`);
});

(async () => {
  const n1 = await sub.subscribe("news");
  const n2 = await sub.psubscribe("__keyevent@0__:*");
  console.log("confirmed", n1 + n2 - 1);
  await pub.publish("news", "hello from io");
  await pub.call("LOCK", name, "io", "PX", 100);
})().catch((e) => {
  console.log("error", e.message);
  process.exit(2);
});
