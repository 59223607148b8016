#!/usr/bin/env bash
# rolling-bench.sh — a rolling restart under lockbench load, on loopback only.
#
# Starts a three-node cluster of the given lockd binary, puts 50 lockbench
# clients on one follower (never restarted, so that what they see is the
# cluster's stall, not their own node's downtime), then stops the leader with
# the given signal and starts it again, waits 10 s, and does the same to the
# other follower. Prints lockbench's result: acquires/s, errors and the
# acquire latency percentiles; "max" is the longest any LOCK waited, which
# spans the longest write stall.
#
# Usage: scripts/rolling-bench.sh LOCKD_BIN LOCKBENCH_BIN [TERM|KILL]
#   (go build -o /tmp/lockd ./cmd/lockd && go build -o /tmp/lockbench ./cmd/lockbench)
# Environment: ROLLING_PORT_BASE [25479]; ports BASE..BASE+2 and BASE+1000..BASE+1002.
set -euo pipefail
BIN=${1:?lockd binary}; LOCKBENCH=${2:?lockbench binary}; SIG=${3:-TERM}
BASE=${ROLLING_PORT_BASE:-25479}
D=$(mktemp -d /tmp/lockd-rolling.XXXX)
pids=()
cleanup() { for i in 1 2 3; do [[ -f $D/pid$i ]] && kill "$(cat "$D/pid$i")" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$D"; }
trap cleanup EXIT
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$D/secret"
PEERS="1=127.0.0.1:$((BASE+1000)),2=127.0.0.1:$((BASE+1001)),3=127.0.0.1:$((BASE+1002))"
start() {
	"$BIN" --id "$1" --listen "127.0.0.1:$((BASE+$1-1))" --cluster-listen "127.0.0.1:$((BASE+999+$1))" --peers "$PEERS" \
		--cluster-secret-file "$D/secret" --data-dir "$D/$1" --log-level warn >> "$D/log$1" 2>&1 &
	echo $! > "$D/pid$1"
}
leader() { redis-cli -p "$BASE" INFO replication 2>/dev/null | sed -n 's/^leader_id:\([0-9]*\).*/\1/p'; }
for i in 1 2 3; do start "$i"; done
for _ in $(seq 100); do L=$(leader); [[ -n $L && $L != 0 ]] && break; sleep 0.2; done
[[ -n ${L:-} && $L != 0 ]] || { echo "rolling-bench: no leader" >&2; exit 1; }
F=$((L % 3 + 1)) # the clients' node
O=$((6 - L - F)) # the other follower
echo "rolling-bench: leader $L; clients on node $F; restarting $L, then $O, with SIG$SIG" >&2
"$LOCKBENCH" -endpoints "127.0.0.1:$((BASE+F-1))" -clients 50 -duration 30s -warmup 1s -json > "$D/out.json" 2> "$D/err" &
lb=$!
sleep 6
for i in "$L" "$O"; do
	kill "-$SIG" "$(cat "$D/pid$i")"
	while kill -0 "$(cat "$D/pid$i")" 2>/dev/null; do sleep 0.01; done
	start "$i"
	sleep 10
done
wait "$lb"
jq -c '{acquires_per_sec, errors, acquire_us}' "$D/out.json"
