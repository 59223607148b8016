// Take a lock on lockd with ioredis, use its fencing token, release it.
//
//   node examples/node/lock.js [port]     (npm install ioredis first)
const Redis = require("ioredis");
const { randomUUID } = require("crypto");

async function main() {
  const redis = new Redis({ host: "127.0.0.1", port: Number(process.argv[2] || 6379) });
  const owner = randomUUID();
  const token = await redis.call("LOCK", "orders-42", owner, "PX", 30000);
  if (token === null) {
    console.log("held by", await redis.call("OWNER", "orders-42"));
  } else {
    console.log("locked orders-42 with fencing token", token);
    console.log("released:", (await redis.call("UNLOCK", "orders-42", owner)) === 1);
  }
  redis.disconnect();
}
main().catch((e) => { console.error(e); process.exit(1); });
