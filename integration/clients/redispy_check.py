"""Drive lockd with redis-py; TestRedisPy checks what this prints.

usage: python3 redispy_check.py HOST PORT NAME [PASSWORD]

Each line is "<proto> <step> <value>", proto being resp2 or resp3, or
"meta <what> <value>". Replies
are normalised (bytes decoded, LOCKINFO as owner=.. token=.. ttl=..) so the
Go test reads the same lines whatever form redis-py returns them in.
"""
import inspect
import sys

import redis


def show(v):
    if v is None:
        return "nil"
    if isinstance(v, bytes):
        return v.decode()
    return str(v)


def lockinfo(v):
    if v is None:
        return "nil"
    if isinstance(v, dict):
        d = {show(k): v[k] for k in v}
        owner, token, ttl = d.get("owner"), d.get("token"), d.get("ttl_ms")
        form = "map"
    else:
        owner, token, ttl = v
        form = "array"
    return "form=%s owner=%s token=%s ttl=%s" % (form, show(owner), show(token), show(ttl))


def run(r, proto, name):
    p = lambda step, v: print(proto, step, v, flush=True)
    p("ping", "PONG" if r.ping() is True else show(r.ping()))
    p("lock", show(r.execute_command("LOCK", name, "py-owner", "PX", 30000)))
    p("relock", show(r.execute_command("LOCK", name, "py-owner", "PX", 30000)))
    p("other", show(r.execute_command("LOCK", name, "someone-else")))
    p("owner", show(r.execute_command("OWNER", name)))
    p("lockinfo", lockinfo(r.execute_command("LOCKINFO", name)))
    p("renew", show(r.execute_command("RENEW", name, "py-owner", "PX", 60000)))
    p("lockinfo-renewed", lockinfo(r.execute_command("LOCKINFO", name)))
    p("unlock-other", show(r.execute_command("UNLOCK", name, "someone-else")))
    p("unlock", show(r.execute_command("UNLOCK", name, "py-owner")))
    p("owner-after", show(r.execute_command("OWNER", name)))
    p("lockinfo-after", lockinfo(r.execute_command("LOCKINFO", name)))
    p("lock-next", show(r.execute_command("LOCK", name, "someone-else")))
    p("unlock-next", show(r.execute_command("UNLOCK", name, "someone-else")))
    try:
        r.execute_command("LOCK", name)
        p("error", "none")
    except redis.ResponseError as e:
        p("error", e)
    # A pipeline (no MULTI): 20 LOCKs, then UNLOCK and LOCK by someone else
    # of the first name, then its OWNER.
    pipe = r.pipeline(transaction=False)
    for i in range(20):
        pipe.execute_command("LOCK", "%s-p%d" % (name, i), "py-owner", "PX", 30000)
    pipe.execute_command("UNLOCK", name + "-p0", "py-owner")
    pipe.execute_command("LOCK", name + "-p0", "someone-else", "PX", 30000)
    pipe.execute_command("OWNER", name + "-p0")
    res = pipe.execute()
    toks = [t for t in res[:20] if isinstance(t, int) and t > 0]
    p("pipeline", "granted=%d distinct=%d unlock=%s relock=%s owner=%s" % (
        len(toks), len(set(toks)), show(res[20]),
        "granted" if isinstance(res[21], int) and res[21] > max(toks, default=0) else show(res[21]),
        show(res[22])))


def main():
    host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    password = sys.argv[4] if len(sys.argv) > 4 else None
    print("meta version", redis.__version__, flush=True)
    if password is not None:
        try:
            redis.Redis(host=host, port=port).execute_command("OWNER", name)
            print("meta noauth none", flush=True)
        except redis.exceptions.RedisError as e:
            print("meta noauth", type(e).__name__, e, flush=True)
    run(redis.Redis(host=host, port=port, password=password), "resp2", name + "-2")
    # redis-py speaks RESP3 (HELLO 3) from 5.0 on, with protocol=3.
    if "protocol" in inspect.signature(redis.Redis.__init__).parameters:
        run(redis.Redis(host=host, port=port, password=password, protocol=3), "resp3", name + "-3")
    else:
        print("meta resp3 unsupported", flush=True)
    print("meta done ok", flush=True)


if __name__ == "__main__":
    main()
