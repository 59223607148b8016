#!/usr/bin/env bash
# bench.sh — compare lockd with Redis and etcd under the same lock workload, on loopback only.
#
# Builds ./cmd/lockd and ./cmd/lockbench, then runs lockbench against:
#   redis         one redis-server (no persistence)
#   redis-repl    a redis primary with two replicas (--replicaof); every write is
#                 followed by WAIT 1 1000 (lockbench -wait-replicas 1)
#   redis-aof     (only if BENCH_REDIS_AOF=1) one redis-server, appendfsync always
#   etcd          a three-member etcd cluster (default fsync behaviour), the
#                 standard etcd lock recipe (lockbench -mode etcd: one session
#                 per client, Mutex.TryLock / Unlock), clients spread round-robin
#                 over all three members
#   lockd         a three-node lockd cluster (default fsync policy), the clients
#                 spread round-robin over all three nodes
#   lockd-leader  the same cluster with every client on the leader, so that the
#                 followers have no clients: their CPU per raft entry is the
#                 replication's own cost, to set beside BenchmarkMinimalLoop
#                 (go test -run - -bench MinimalLoop ./cmd/lockbench)
# and prints a table: target, acquires/s, p50, p99, lockd's throughput divided
# by each target's, and the CPU time its server processes spent in the
# measured window per granted acquire (lockbench -server-pids, every server
# process of the target); for lockd also the CPU per raft entry, summed over
# the nodes and per node, and the commands per entry.
#
# Usage: scripts/bench.sh            (from anywhere; it works in the repo root)
# Environment (defaults in brackets):
#   BENCH_CLIENTS [50]  BENCH_NAMES [10000]  BENCH_SECONDS [10]  BENCH_WARMUP [1]
#   BENCH_TTL [30s]  BENCH_TARGETS [redis,redis-repl,etcd,lockd,lockd-leader] (comma list, any order)
#   BENCH_REDIS_AOF [0]  set to 1 to add the redis-aof target
#   BENCH_PORT_BASE [random free block in 20000-31999]; ports BASE..BASE+16 are used
#   BENCH_STARTUP_TIMEOUT [30] seconds to wait for servers, leader, replicas
#   BENCH_KEEP [0]  set to 1 to keep the temp dir (logs, JSON results)
#   LOCKD_EXTRA_ARGS []  extra flags for every lockd node (e.g. --fsync=always)
#   BENCH_LOCKD_BIN []  use this lockd binary instead of building ./cmd/lockd
# Needs go, redis-server, redis-cli, jq, and etcd for the etcd target; installs
# the Debian packages redis-server / jq / etcd-server with apt-get when missing.
set -euo pipefail

CLIENTS=${BENCH_CLIENTS:-50}
NAMES=${BENCH_NAMES:-10000}
SECONDS_RUN=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-1}
TTL=${BENCH_TTL:-30s}
TARGETS=${BENCH_TARGETS:-redis,redis-repl,etcd,lockd,lockd-leader}
STARTUP_TIMEOUT=${BENCH_STARTUP_TIMEOUT:-30}
if [[ ${BENCH_REDIS_AOF:-0} == 1 ]]; then TARGETS="$TARGETS,redis-aof"; fi
for v in CLIENTS NAMES SECONDS_RUN WARMUP STARTUP_TIMEOUT; do
	[[ ${!v} =~ ^[0-9]+$ ]] || { echo "bench: $v must be a whole number, not '${!v}'" >&2; exit 2; }
done

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
want() { [[ ",$TARGETS," == *",$1,"* ]]; }

cd "$(dirname "$0")/.."

# --- tools ------------------------------------------------------------------
need_pkgs=()
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || need_pkgs+=(redis-server)
command -v jq >/dev/null || need_pkgs+=(jq)
if want etcd; then command -v etcd >/dev/null || need_pkgs+=(etcd-server); fi
if ((${#need_pkgs[@]})); then
	log "installing ${need_pkgs[*]} with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	timeout 300 apt-get install -y -q "${need_pkgs[@]}" >/dev/null 2>&1 ||
		{ timeout 300 apt-get update -q >/dev/null && timeout 300 apt-get install -y -q "${need_pkgs[@]}" >/dev/null; } ||
		die "could not install ${need_pkgs[*]}"
fi
# The Debian packages may start a system redis on 6379 and etcd on 2379/2380;
# we never use those ports.

# --- temp dir, process list, cleanup ----------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/lockd-bench.XXXXXX")
PIDS=()
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if ((${#PIDS[@]})); then
		kill -TERM "${PIDS[@]}" 2>/dev/null || true
		local deadline=$((SECONDS + 5))
		while ((SECONDS < deadline)); do
			local alive=0
			for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
			((alive)) || break
			sleep 0.1
		done
		kill -KILL "${PIDS[@]}" 2>/dev/null || true
		wait 2>/dev/null || true
	fi
	if [[ ${BENCH_KEEP:-0} == 1 || $rc != 0 ]]; then
		log "kept $TMP (logs in $TMP/logs)"
	else
		rm -rf "$TMP"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$TMP/bin" "$TMP/logs" "$TMP/results"

# --- build ------------------------------------------------------------------
log "building lockbench"
go build -o "$TMP/bin/lockbench" ./cmd/lockbench
if want lockd || want lockd-leader; then
	if [[ -n ${BENCH_LOCKD_BIN:-} ]]; then
		cp "$BENCH_LOCKD_BIN" "$TMP/bin/lockd"
	else
		log "building lockd"
		go build -o "$TMP/bin/lockd" ./cmd/lockd
	fi
fi

# --- ports ------------------------------------------------------------------
NPORTS=17
ports_free() { # base: true when no TCP socket uses a port in BASE..BASE+NPORTS-1
	local used
	used=$(ss -Htan 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -u)
	for ((p = $1; p < $1 + NPORTS; p++)); do
		grep -qx "$p" <<<"$used" && return 1
	done
	return 0
}
if [[ -n ${BENCH_PORT_BASE:-} ]]; then
	BASE=$BENCH_PORT_BASE
	ports_free "$BASE" || die "ports $BASE..$((BASE + NPORTS - 1)) are not all free"
else
	# Below Linux's ephemeral range (32768-60999 by default), so that no
	# outgoing connection takes one of our ports between the check and the bind.
	BASE=
	for _ in $(seq 20); do
		b=$((20000 + RANDOM % 600 * 20))
		if ports_free "$b"; then BASE=$b; break; fi
	done
	[[ -n $BASE ]] || die "found no free block of $NPORTS ports"
fi
P_REDIS=$BASE
P_PRIMARY=$((BASE + 1)) P_REPLICA1=$((BASE + 2)) P_REPLICA2=$((BASE + 3))
P_LOCKD=($((BASE + 4)) $((BASE + 5)) $((BASE + 6)))
P_CLUSTER=($((BASE + 7)) $((BASE + 8)) $((BASE + 9)))
P_AOF=$((BASE + 10))
P_ETCD=($((BASE + 11)) $((BASE + 12)) $((BASE + 13)))      # client URLs
P_ETCD_PEER=($((BASE + 14)) $((BASE + 15)) $((BASE + 16))) # peer URLs
log "ports $BASE..$((BASE + NPORTS - 1)), temp dir $TMP"

# --- helpers ----------------------------------------------------------------
cli() { # port args...: one bounded redis-cli call
	local port=$1
	shift
	timeout 3 redis-cli -h 127.0.0.1 -p "$port" "$@" 2>/dev/null
}

start_redis() { # name port extra-args...
	local name=$1 port=$2
	shift 2
	mkdir -p "$TMP/$name"
	redis-server --bind 127.0.0.1 --port "$port" --dir "$TMP/$name" --save '' --appendonly no \
		--protected-mode yes --daemonize no --logfile "$TMP/logs/$name.log" "$@" &
	PIDS+=($!)
	LIVE+=($!)
}

LIVE=() # the servers of the current target; wait_until fails when one dies
wait_until() { # description command...: poll until the command succeeds, bounded
	local what=$1
	shift
	local deadline=$((SECONDS + STARTUP_TIMEOUT)) dead=
	until "$@"; do
		for p in "${LIVE[@]}"; do kill -0 "$p" 2>/dev/null || dead=$p; done
		if [[ -n $dead ]] || ((SECONDS >= deadline)); then
			if [[ -n $dead ]]; then
				log "a server (pid $dead) exited while waiting for $what"
			else
				log "timed out after ${STARTUP_TIMEOUT}s waiting for $what"
			fi
			for f in "$TMP"/logs/*.log; do
				[[ -f $f ]] || continue
				log "--- tail of $f"
				tail -n 20 "$f" >&2
			done
			exit 1
		fi
		sleep 0.2
	done
}

pings() { [[ $(cli "$1" PING) == PONG ]]; }
replicas_online() { # primary: both replicas attached and caught up
	local info
	info=$(cli "$1" INFO replication | tr -d '\r')
	grep -q '^connected_slaves:2$' <<<"$info" &&
		[[ $(grep -c '^slave[0-9]*:.*state=online' <<<"$info") == 2 ]] &&
		for p in "${@:2}"; do
			cli "$p" INFO replication | tr -d '\r' | grep -q '^master_link_status:up$' || return 1
		done
}
has_leader() { # port: INFO replication shows a non-zero leader_id
	cli "$1" INFO replication | tr -d '\r' | grep -Eq '^leader_id:[1-9][0-9]*$'
}
all_have_leader() {
	for p in "${P_LOCKD[@]}"; do has_leader "$p" || return 1; done
}
etcd_serves() { # port: a lease grant, a TryLock and an Unlock through this member succeed
	"$TMP/bin/lockbench" -mode etcd -endpoints "127.0.0.1:$1" -clients 1 -names 1 \
		-duration 100ms -warmup 0s -timeout 2s -prefix bench-probe: >/dev/null 2>&1
}

run_bench() { # target endpoints server-pids extra-args...
	local target=$1 endpoints=$2 server_pids=$3
	shift 3
	log "running $target: $CLIENTS clients, $NAMES names, ${SECONDS_RUN}s (+${WARMUP}s warm-up) against $endpoints"
	local rc=0
	timeout $((SECONDS_RUN + WARMUP + 60)) "$TMP/bin/lockbench" -endpoints "$endpoints" \
		-clients "$CLIENTS" -names "$NAMES" -duration "${SECONDS_RUN}s" -warmup "${WARMUP}s" \
		-ttl "$TTL" -server-pids "$server_pids" -json "$@" >"$TMP/results/$target.json" 2>"$TMP/logs/lockbench-$target.log" || rc=$?
	if ((rc != 0)) || ! jq -e . "$TMP/results/$target.json" >/dev/null 2>&1; then
		cat "$TMP/logs/lockbench-$target.log" >&2
		die "lockbench against $target failed (exit $rc)"
	fi
	jq -r --arg t "$target" '"bench: \($t) acquires/s=\(.acquires_per_sec) busy/s=\(.busy_per_sec) releases/s=\(.releases_per_sec) errors=\(.errors) wait_short=\(.wait_short) token_regressions=\(.token_regressions) server_cpu_us/acquire=\(.server_cpu.cpu_us_per_acquire) (\([.server_cpu.servers[] | "\(.name)=\(.comm)"] | join(" ")))" + (if .errors > 0 then " first errors: " + ([.error_samples[] | "\(.count)x \(.text)"] | join("; ")) else "" end)' \
		"$TMP/results/$target.json" >&2
	RAN+=("$target")
}

stop_pids() { # stop the servers of a finished target, to give the next one the CPUs
	LIVE=()
	kill -TERM "$@" 2>/dev/null || true
	local deadline=$((SECONDS + 10))
	for p in "$@"; do
		while kill -0 "$p" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
	done
}

RAN=()

# --- 1. single redis --------------------------------------------------------
if want redis; then
	start_redis redis "$P_REDIS"
	pid=${PIDS[-1]}
	wait_until "redis on $P_REDIS" pings "$P_REDIS"
	run_bench redis "127.0.0.1:$P_REDIS" "redis=$pid" -mode redis
	stop_pids "$pid"
fi

# --- 2. redis primary + 2 replicas, WAIT 1 ----------------------------------
if want redis-repl; then
	start_redis redis-primary "$P_PRIMARY"
	p0=${PIDS[-1]}
	start_redis redis-replica1 "$P_REPLICA1" --replicaof 127.0.0.1 "$P_PRIMARY"
	p1=${PIDS[-1]}
	start_redis redis-replica2 "$P_REPLICA2" --replicaof 127.0.0.1 "$P_PRIMARY"
	p2=${PIDS[-1]}
	for p in "$P_PRIMARY" "$P_REPLICA1" "$P_REPLICA2"; do wait_until "redis on $p" pings "$p"; done
	wait_until "both replicas online" replicas_online "$P_PRIMARY" "$P_REPLICA1" "$P_REPLICA2"
	run_bench redis-repl "127.0.0.1:$P_PRIMARY" "primary=$p0,replica1=$p1,replica2=$p2" -mode redis -wait-replicas 1
	stop_pids "$p0" "$p1" "$p2"
fi

# --- 3. redis with appendfsync always (opt-in) ------------------------------
if want redis-aof; then
	start_redis redis-aof "$P_AOF" --appendonly yes --appendfsync always
	pid=${PIDS[-1]}
	wait_until "redis on $P_AOF" pings "$P_AOF"
	run_bench redis-aof "127.0.0.1:$P_AOF" "redis-aof=$pid" -mode redis
	stop_pids "$pid"
fi

# --- 4. three-member etcd cluster -------------------------------------------
if want etcd; then
	cluster=
	for i in 0 1 2; do cluster+="${cluster:+,}etcd$((i + 1))=http://127.0.0.1:${P_ETCD_PEER[i]}"; done
	epids=()
	mkdir -p "$TMP/etcd" # each member creates its own data dir (mode 0700)
	for i in 0 1 2; do
		name=etcd$((i + 1))
		etcd --name "$name" --data-dir "$TMP/etcd/$name" \
			--listen-client-urls "http://127.0.0.1:${P_ETCD[i]}" \
			--advertise-client-urls "http://127.0.0.1:${P_ETCD[i]}" \
			--listen-peer-urls "http://127.0.0.1:${P_ETCD_PEER[i]}" \
			--initial-advertise-peer-urls "http://127.0.0.1:${P_ETCD_PEER[i]}" \
			--initial-cluster "$cluster" --initial-cluster-state new \
			--initial-cluster-token "lockd-bench-$BASE" \
			--logger zap --log-level error \
			>"$TMP/logs/$name.log" 2>&1 &
		PIDS+=($!)
		LIVE+=($!)
		epids+=($!)
	done
	for p in "${P_ETCD[@]}"; do wait_until "etcd serving writes on $p" etcd_serves "$p"; done
	run_bench etcd "127.0.0.1:${P_ETCD[0]},127.0.0.1:${P_ETCD[1]},127.0.0.1:${P_ETCD[2]}" \
		"etcd1=${epids[0]},etcd2=${epids[1]},etcd3=${epids[2]}" -mode etcd
	stop_pids "${epids[@]}"
fi

# --- 5. three-node lockd cluster --------------------------------------------
if want lockd || want lockd-leader; then
	peers="1=127.0.0.1:${P_CLUSTER[0]},2=127.0.0.1:${P_CLUSTER[1]},3=127.0.0.1:${P_CLUSTER[2]}"
	(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TMP/lockd-secret")
	lpids=()
	for i in 0 1 2; do
		id=$((i + 1))
		mkdir -p "$TMP/lockd/$id"
		# shellcheck disable=SC2086 # LOCKD_EXTRA_ARGS is a list of flags
		"$TMP/bin/lockd" --id "$id" --listen "127.0.0.1:${P_LOCKD[i]}" \
			--cluster-listen "127.0.0.1:${P_CLUSTER[i]}" --peers "$peers" \
			--cluster-secret-file "$TMP/lockd-secret" --data-dir "$TMP/lockd/$id" ${LOCKD_EXTRA_ARGS:-} \
			>"$TMP/logs/lockd-$id.log" 2>&1 &
		PIDS+=($!)
		LIVE+=($!)
		lpids+=($!)
	done
	for p in "${P_LOCKD[@]}"; do wait_until "lockd on $p" pings "$p"; done
	wait_until "a leader known to all lockd nodes" all_have_leader
	if want lockd; then
		run_bench lockd "127.0.0.1:${P_LOCKD[0]},127.0.0.1:${P_LOCKD[1]},127.0.0.1:${P_LOCKD[2]}" \
			"lockd1=${lpids[0]},lockd2=${lpids[1]},lockd3=${lpids[2]}" -mode lockd
	fi
	if want lockd-leader; then
		lead=$(cli "${P_LOCKD[0]}" INFO replication | tr -d '\r' | sed -n 's/^leader_id://p')
		[[ $lead =~ ^[1-3]$ ]] || die "lockd-leader: no leader id from INFO (got '$lead')"
		run_bench lockd-leader "127.0.0.1:${P_LOCKD[lead - 1]}" \
			"lockd1=${lpids[0]},lockd2=${lpids[1]},lockd3=${lpids[2]}" -mode lockd
	fi
	stop_pids "${lpids[@]}"
fi

# --- table ------------------------------------------------------------------
((${#RAN[@]})) || die "no target ran (BENCH_TARGETS=$TARGETS)"
lockd_rate=
[[ -f $TMP/results/lockd.json ]] && lockd_rate=$(jq -r .acquires_per_sec "$TMP/results/lockd.json")
echo
echo "lockbench: $CLIENTS clients, $NAMES names, ${SECONDS_RUN}s after ${WARMUP}s warm-up, ttl $TTL, $(nproc) cores, loopback"
printf '%-12s %12s %10s %10s %8s %14s %11s %13s\n' target acquires/s p50_ms p99_ms errors lockd/target cpu_us/acq cpu_us/entry
for t in "${RAN[@]}"; do
	jq -r --arg t "$t" --arg l "$lockd_rate" '
		[$t, .acquires_per_sec, (.acquire_us.p50 / 1000), (.acquire_us.p99 / 1000), .errors,
		 (if $l == "" or .acquires_per_sec == 0 then "n/a" else ($l | tonumber) / .acquires_per_sec end),
		 .server_cpu.cpu_us_per_acquire, (.server_cpu.raft.cpu_us_per_entry // "n/a")]
		| @tsv' "$TMP/results/$t.json"
done | while IFS=$'\t' read -r t rate p50 p99 errs ratio cpu_acq cpu_entry; do
	[[ $ratio == n/a ]] || ratio=$(printf '%.2fx' "$ratio")
	[[ $cpu_entry == n/a ]] || cpu_entry=$(printf '%.1f' "$cpu_entry")
	printf '%-12s %12.1f %10.3f %10.3f %8d %14s %11.1f %13s\n' "$t" "$rate" "$p50" "$p99" "$errs" "$ratio" "$cpu_acq" "$cpu_entry"
done
echo "cpu_us/acq: CPU time of the target's server processes in the window (summed) per granted acquire, i.e. per LOCK+UNLOCK cycle"
for t in lockd lockd-leader; do
	[[ -f $TMP/results/$t.json ]] || continue
	jq -r --arg t "$t" '.server_cpu | "\($t) raft: \(.raft.entries_per_sec) entries/s, \(.raft.commands_per_entry) commands/entry; cpu_us/entry (all nodes) \(.raft.cpu_us_per_entry), per node: " +
		([.servers[] | "\(.name) \(.cpu_us_per_entry)"] | join(", "))' "$TMP/results/$t.json"
done
