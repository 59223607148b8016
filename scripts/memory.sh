#!/usr/bin/env bash
# Memory of a three-node lockd cluster under a long lockbench load, and after.
#
#   scripts/memory.sh [DURATION] [CLIENTS] [INTERVAL]     e.g. scripts/memory.sh 1h 50 60
#
# Builds lockd and lockbench, starts three nodes on loopback (ports 26379-26381,
# cluster 27379-27381, data in a temporary directory), runs lockbench -mode lockd
# for DURATION (LOCK with PX 30s then UNLOCK, 10,000 names; plus one client that
# queues LOCK ... WAIT on held names, so waits are granted and cancelled too),
# and prints each node's RSS and Go heap (INFO memory) every INTERVAL seconds,
# then for five more minutes after the load stops, to show memory given back.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10m}
clients=${2:-50}
interval=${3:-60}
# seconds turns 90s, 10m or 1h into seconds.
seconds() {
	case "$1" in
	*h) echo $((${1%h} * 3600)) ;;
	*m) echo $((${1%m} * 60)) ;;
	*s) echo "${1%s}" ;;
	*) echo "duration $1: use Ns, Nm or Nh" >&2; exit 2 ;;
	esac
}
seconds "$duration" >/dev/null
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/lockd" ./cmd/lockd
go build -o "$tmp/lockbench" ./cmd/lockbench
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/secret"
peers=1=127.0.0.1:27379,2=127.0.0.1:27380,3=127.0.0.1:27381
for id in 1 2 3; do
	"$tmp/lockd" --id "$id" --listen "127.0.0.1:$((26378 + id))" --cluster-listen "127.0.0.1:$((27378 + id))" \
		--peers "$peers" --cluster-secret-file "$tmp/secret" --data-dir "$tmp/$id" --log-level warn \
		>"$tmp/lockd-$id.log" 2>&1 &
	pids+=($!)
done
nodes=("${pids[@]}")
for port in 26379 26380 26381; do
	for _ in $(seq 1 100); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done
done
sleep 2
sample() {
	local line="$(date +%H:%M:%S) $1"
	for i in 0 1 2; do
		rss=$(awk '/VmRSS/{print $2}' "/proc/${nodes[i]}/status")
		heap=$(redis-cli -p $((26379 + i)) INFO memory | tr -d '\r' | awk -F: '/^used_memory:/{print $2}')
		line+=$(printf '  node%d rss=%dMB heap=%dMB' $((i + 1)) $((rss / 1024)) $((heap / 1048576)))
	done
	echo "$line"
}
"$tmp/lockbench" -endpoints 127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381 -clients "$clients" \
	-duration "$duration" -warmup 1s -mode lockd >"$tmp/bench.out" 2>&1 &
bench=$!
pids+=($bench)
# One client that waits on held names: its LOCK ... WAIT requests are queued,
# then granted or cancelled when their wait runs out.
(
	end=$((SECONDS + $(seconds "$duration")))
	while [ $SECONDS -lt $end ]; do
		redis-cli -p 26380 LOCK "lockbench:$((RANDOM % 10000))" waiter PX 100 WAIT 50 >/dev/null 2>&1 || true
	done
) &
pids+=($!)
echo "load: $duration, $clients clients; sampling every ${interval}s"
while kill -0 "$bench" 2>/dev/null; do
	sample load
	sleep "$interval"
done
tail -5 "$tmp/bench.out"
for _ in $(seq 1 $((300 / interval))); do
	sample idle
	sleep "$interval"
done
sample idle
