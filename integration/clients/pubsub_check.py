"""Subscribe with redis-py on one node, publish and lock on another;
TestPubSubClients checks what this prints.

usage: python3 pubsub_check.py SUBHOST SUBPORT PUBHOST PUBPORT NAME

Prints "confirmed N", then one line per message received in order:
"message CHANNEL DATA" or "event CHANNEL" (a keyevent about NAME), then
"done ok".
"""
import sys
import time

import redis

subhost, subport, pubhost, pubport, name = sys.argv[1:6]
sub = redis.Redis(host=subhost, port=int(subport), socket_timeout=10)
pub = redis.Redis(host=pubhost, port=int(pubport), socket_timeout=10)
p = sub.pubsub()
p.subscribe("news")
p.psubscribe("__keyevent@0__:*")
confirmed = 0
deadline = time.time() + 10
while confirmed < 2 and time.time() < deadline:
    m = p.get_message(timeout=1)
    if m and m["type"] in ("subscribe", "psubscribe"):
        confirmed += 1
print("confirmed", confirmed, flush=True)
pub.publish("news", "hello from py")
pub.execute_command("LOCK", name, "py", "PX", 100)
seen = 0
deadline = time.time() + 15
while seen < 3 and time.time() < deadline:
    m = p.get_message(timeout=1)
    if m is None:
        continue
    if m["type"] == "message":
        print("message", m["channel"].decode(), m["data"].decode(), flush=True)
        seen += 1
    elif m["type"] == "pmessage" and m["data"].decode() == name:
        print("event", m["channel"].decode(), flush=True)
        seen += 1
print("done ok", flush=True)
