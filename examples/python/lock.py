"""Take a lock on lockd with redis-py, use its fencing token, release it.

    python3 examples/python/lock.py [port]
"""
import sys
import uuid

import redis

r = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 6379)
owner = str(uuid.uuid4())
token = r.execute_command("LOCK", "orders-42", owner, "PX", 30000)
if token is None:
    print("held by", r.execute_command("OWNER", "orders-42"))
else:
    print("locked orders-42 with fencing token", token)
    print("released:", r.execute_command("UNLOCK", "orders-42", owner) == 1)
