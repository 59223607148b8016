// Drive node-redlock 5 over ioredis against a lockd node;
// TestRedlockOnFollower checks what this prints.
//
// usage: node redlock_check.js HOST PORT NAME
//
// Each line is "<step> <value>". At the point where the test must kill the
// leader the script prints "KILL" and waits for a line on stdin; it goes on
// when the test writes one (after a new leader is up). Redlock has one
// client (the node); a second ioredis client (watch) looks at the keys.
"use strict";
const readline = require("readline");
const Redis = require("ioredis");
const { default: Redlock, ExecutionError, ResourceLockedError } = require("redlock");

const [host, portStr, name] = process.argv.slice(2);
const port = Number(portStr);
const p = (step, v) => console.log(step, String(v));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const timer = setTimeout(() => {
  console.log("timeout");
  process.exit(3);
}, 25000);

const stdin = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

// held counts the keys that hold value.
async function held(watch, keys, value) {
  const vals = await watch.mget(...keys);
  return vals.filter((v) => v === value).length;
}

async function main() {
  const client = new Redis({ host, port });
  const watch = new Redis({ host, port });
  const redlock = new Redlock([client], { retryCount: 3, retryDelay: 100, retryJitter: 20 });
  const [a, b, c] = [`${name}:a`, `${name}:b`, `${name}:c`];

  // All or nothing: with b held by another lock, acquiring a, b and c
  // fails after its retries and leaves a and c free.
  const blocker = await redlock.acquire([b], 10000);
  try {
    await redlock.acquire([a, b, c], 10000);
    p("multi-while-held", "acquired");
  } catch (e) {
    const votes = e instanceof ExecutionError ? await Promise.all(e.attempts) : [];
    const locked = votes.every((s) => [...s.votesAgainst.values()].every((err) => err instanceof ResourceLockedError));
    p("multi-while-held", e.name);
    p("multi-attempts", votes.length);
    p("multi-all-resource-locked", locked);
  }
  p("multi-left-a-c", await watch.exists(a, c));
  p("multi-blocker-kept", await held(watch, [b], blocker.value));
  await blocker.release();

  // Acquire, extend, release of three resources at once.
  let lock = await redlock.acquire([a, b, c], 10000);
  p("multi-acquire", await held(watch, [a, b, c], lock.value));
  lock = await lock.extend(20000);
  p("multi-extend", await held(watch, [a, b, c], lock.value));
  p("multi-extend-pttl-min", Math.min(...(await Promise.all([a, b, c].map((k) => watch.pttl(k))))));
  await lock.release();
  p("multi-release-exists", await watch.exists(a, b, c));

  // using(): a 1.2 s lease, extended automatically, held for a 4 s
  // routine; watch checks every 50 ms that the key keeps the value it
  // had at the start.
  const u = `${name}:using`;
  const report = await redlock.using([u], 1200, async (signal) => {
    const first = await watch.get(u);
    let polls = 0;
    let misses = 0;
    let extensions = 0;
    let last = await watch.pttl(u);
    const end = Date.now() + 4000;
    while (Date.now() < end) {
      await sleep(50);
      const [v, ms] = await Promise.all([watch.get(u), watch.pttl(u)]);
      polls++;
      if (v === null || v !== first) misses++;
      if (ms > last) extensions++;
      last = ms;
    }
    return { first, polls, misses, extensions, aborted: signal.aborted };
  });
  p("using-had-value", report.first !== null);
  p("using-polls", report.polls);
  p("using-misses", report.misses);
  p("using-extensions", report.extensions);
  p("using-aborted", report.aborted);
  p("using-after-exists", await watch.exists(u));

  // Held across the leader's death: extend and release work after.
  const f1 = `${name}:f1`;
  const f2 = `${name}:f2`;
  let fl = await redlock.acquire([f1, f2], 20000);
  p("failover-value", fl.value);
  console.log("KILL");
  if ((await stdin.next()).done) throw new Error("stdin closed before the test resumed the script");
  p("failover-held", await held(watch, [f1, f2], fl.value));
  try {
    await redlock.acquire([f2], 5000, { retryCount: 0 });
    p("failover-other", "acquired");
  } catch (e) {
    p("failover-other", e.name);
  }
  fl = await fl.extend(30000);
  p("failover-extend-pttl-min", Math.min(await watch.pttl(f1), await watch.pttl(f2)));
  await fl.release();
  p("failover-release-exists", await watch.exists(f1, f2));

  await redlock.quit();
  await watch.quit();
  p("done", "ok");
}

main().then(
  () => {
    clearTimeout(timer);
    process.exit(0);
  },
  (e) => {
    console.log("fatal", e && e.stack);
    process.exit(2);
  },
);
