"""Drive lockd over TLS with redis-py; TestTLSClientLibraries checks what
this prints.

usage: python3 tls_check.py HOST PORT CA_FILE [CERT_FILE KEY_FILE]

Prints "lock <token>", "owner <owner>" and "unlock <n>", or "error <class>
<message>" when the connection is refused.
"""
import sys

import redis

host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
kw = dict(ssl=True, ssl_ca_certs=ca, ssl_cert_reqs="required",
          socket_timeout=10, socket_connect_timeout=10)
if len(sys.argv) > 5:
    kw.update(ssl_certfile=sys.argv[4], ssl_keyfile=sys.argv[5])
r = redis.Redis(host=host, port=port, **kw)
try:
    print("lock", r.execute_command("LOCK", "py-tls", "py-owner", "PX", "30000"))
    print("owner", r.execute_command("OWNER", "py-tls").decode())
    print("unlock", r.execute_command("UNLOCK", "py-tls", "py-owner"))
except redis.exceptions.ConnectionError as e:
    print("error", type(e).__name__, e)
