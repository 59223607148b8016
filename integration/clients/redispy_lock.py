"""Drive redis-py's Lock (redis.lock.Lock) against a lockd node;
TestRedisPyLockOnFollower checks what this prints.

usage: python3 redispy_lock.py HOST PORT NAME

Each line is "<step> <value>". At the point where the test must kill the
leader the script prints "KILL" and waits for a line on stdin; it goes on
when the test writes one (after a new leader is up). The library is used as
its users use it: r.lock(...), acquire/extend/reacquire/release, `with`.
"""
import sys
import threading
import time

import redis
from redis.exceptions import LockError, LockNotOwnedError


def p(step, v):
    print(step, v, flush=True)


class WatchedRedis(redis.Redis):
    """A redis.Redis that notes when a Lock's SET NX is refused, so that the
    script knows, without sleeping, that a blocking acquire is waiting."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.refused = threading.Event()

    def set(self, *args, **kwargs):
        ok = super().set(*args, **kwargs)
        if not ok:
            self.refused.set()
        return ok


def raises(f):
    """The name of the exception f raises, or "none"."""
    try:
        f()
        return "none"
    except (LockError, LockNotOwnedError) as e:
        return type(e).__name__


def wait_until(what, cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for " + what)
        time.sleep(0.02)


def token_of(r, name):
    """The fencing token lockd gave the holder of name (LOCKINFO)."""
    info = r.execute_command("LOCKINFO", name)
    return "nil" if info is None else str(info[1])


def main():
    host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    p("version", redis.__version__)
    r = redis.Redis(host=host, port=port)

    # Two Lock objects on one name. b is used from two threads (it waits in
    # one, the script extends and releases it from the main one), hence
    # thread_local=False, as redis-py's docs say for that case.
    a = r.lock(name, timeout=30, sleep=0.05)
    rb = WatchedRedis(host=host, port=port)
    b = rb.lock(name, timeout=30, sleep=0.05, thread_local=False)
    p("a-acquire", a.acquire(blocking_timeout=5))
    p("a-locked", a.locked())
    p("a-owned", a.owned())
    p("b-owned", b.owned())
    p("value-is-a", r.get(name) == a.local.token)

    # b times out while a holds the lock.
    t0 = time.monotonic()
    p("b-timeout", b.acquire(blocking_timeout=0.5))
    p("b-timeout-s", "%.3f" % (time.monotonic() - t0))
    p("b-nonblocking", b.acquire(blocking=False))

    # b waits (its SET NX refused at least once), then gets the lock once
    # a releases it.
    rb.refused.clear()
    got = {}
    waiter = threading.Thread(target=lambda: got.setdefault("b", b.acquire(blocking_timeout=10)))
    waiter.start()
    p("b-was-refused", rb.refused.wait(10))
    a.release()
    waiter.join(15)
    p("b-acquire-after-release", got.get("b"))
    p("a-owned-after", a.owned())
    p("b-owned-after", b.owned())

    # extend: add to the lease, replace it; reacquire: back to timeout.
    p("extend-add", b.extend(10))
    p("pttl-after-add", r.pttl(name))
    p("extend-replace", b.extend(5, replace_ttl=True))
    p("pttl-after-replace", r.pttl(name))
    p("reacquire", b.reacquire())
    p("pttl-after-reacquire", r.pttl(name))
    # `with` on a held lock: LockError once blocking_timeout runs out.
    def held():
        with r.lock(name, blocking_timeout=0.3):
            pass
    p("with-held", raises(held))
    b.release()
    p("released-exists", r.exists(name))

    # `with`: held inside, released after.
    with r.lock(name + "-with", timeout=10) as w:
        p("with-owned", w.owned())
        p("with-pttl", r.pttl(name + "-with"))
    p("with-after-exists", r.exists(name + "-with"))

    # The lease runs out and another owner takes the lock: the first one's
    # extend, reacquire and release raise LockNotOwnedError.
    short = name + "-short"
    s = r.lock(short, timeout=1)
    p("short-acquire", s.acquire(blocking=False))
    wait_until("the 1 s lease to run out", lambda: r.get(short) is None)
    o = r.lock(short, timeout=30)
    p("other-acquire", o.acquire(blocking=False))
    p("expired-extend", raises(lambda: s.extend(5)))
    p("expired-reacquire", raises(s.reacquire))
    p("expired-release", raises(s.release))
    p("other-owned", o.owned())
    o.release()

    # A lock held across the leader's death: still ours on the new leader,
    # same fencing token, and extend and release work.
    fo = name + "-failover"
    k = r.lock(fo, timeout=20)
    p("failover-acquire", k.acquire(blocking=False))
    p("failover-value", k.local.token.decode())
    p("failover-token-before", token_of(r, fo))
    print("KILL", flush=True)
    if sys.stdin.readline() == "":
        raise RuntimeError("stdin closed before the test resumed the script")
    p("failover-owned", k.owned())
    p("failover-token-after", token_of(r, fo))
    p("failover-other", r.lock(fo, timeout=5).acquire(blocking=False))
    p("failover-extend", k.extend(30))
    p("failover-pttl", r.pttl(fo))
    k.release()
    p("failover-released-exists", r.exists(fo))
    p("done", "ok")


if __name__ == "__main__":
    main()
