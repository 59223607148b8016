#!/usr/bin/env bash
# Runs a local three-node lockd cluster on 127.0.0.1:6379-6381 (cluster ports
# 7379-7381), data and logs under ./lockd-cluster/<id>, and a cluster secret
# made on first start in ./lockd-cluster/secret.
#
#   scripts/cluster.sh start     build ./cmd/lockd and start nodes 1-3, wait for a leader
#   scripts/cluster.sh status    role and leader of each node
#   scripts/cluster.sh kill N    kill -9 node N (try a failover by hand)
#   scripts/cluster.sh restart N start node N again on its data
#   scripts/cluster.sh stop      SIGTERM every node
#   scripts/cluster.sh clean     stop, then delete ./lockd-cluster
set -euo pipefail
cd "$(dirname "$0")/.."
dir=./lockd-cluster
bin=$dir/lockd
peers=1=127.0.0.1:7379,2=127.0.0.1:7380,3=127.0.0.1:7381

port() { echo $((6378 + $1)); }
cport() { echo $((7378 + $1)); }

# pid_of N prints node N's pid if that process is running (not a zombie).
pid_of() {
  local f=$dir/$1/pid pid state
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] || return 1
  echo "$pid"
}
alive() { pid_of "$1" >/dev/null; }

# port_busy P succeeds when something listens on 127.0.0.1:P.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# info N FIELD prints FIELD of node N's INFO, only if the process answering
# on node N's port is node N as this script started it.
info() {
  local out pid
  pid=$(pid_of "$1") || return 0
  out=$(redis-cli -p "$(port "$1")" INFO 2>/dev/null | tr -d '\r') || return 0
  grep -qx "process_id:$pid" <<<"$out" || return 0
  grep -E "^$2:" <<<"$out" | cut -d: -f2-
}

start_node() {
  local id=$1
  for p in "$(port "$id")" "$(cport "$id")"; do
    if port_busy "$p"; then
      echo "port $p is in use by another process (a lockd started by hand? stop it first)" >&2
      return 1
    fi
  done
  mkdir -p "$dir/$id"
  nohup "$bin" --id "$id" --listen "127.0.0.1:$(port "$id")" --cluster-listen "127.0.0.1:$(cport "$id")" \
    --peers "$peers" --cluster-secret-file "$dir/secret" --data-dir "$dir/$id" >>"$dir/$id/lockd.log" 2>&1 &
  echo $! >"$dir/$id/pid"
}

wait_leader() {
  for _ in $(seq 1 100); do
    for id in 1 2 3; do
      if [ "$(info "$id" role)" = leader ]; then
        echo "leader: node $id (127.0.0.1:$(port "$id"))"; return 0
      fi
    done
    sleep 0.1
  done
  echo "no leader after 10s; see $dir/*/lockd.log" >&2; return 1
}

case "${1:-}" in
start)
  command -v redis-cli >/dev/null || { echo "needs redis-cli (apt-get install redis-tools)" >&2; exit 1; }
  mkdir -p "$dir"
  go build -o "$bin" ./cmd/lockd
  [ -s "$dir/secret" ] || (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/secret")
  for id in 1 2 3; do alive "$id" || start_node "$id"; done
  wait_leader
  ;;
status)
  for id in 1 2 3; do
    if alive "$id"; then
      echo "node $id 127.0.0.1:$(port "$id") role=$(info "$id" role) leader=$(info "$id" leader_id) term=$(info "$id" raft_term) applied=$(info "$id" applied_index)"
    else
      echo "node $id 127.0.0.1:$(port "$id") down"
    fi
  done
  ;;
kill)
  id=${2:?node id}
  if pid=$(pid_of "$id"); then
    kill -9 "$pid"
    while alive "$id"; do sleep 0.05; done
    echo "killed node $id"
  else
    echo "node $id is not running"
  fi
  ;;
restart)
  id=${2:?node id}
  if alive "$id"; then
    echo "node $id is running; kill or stop it first" >&2; exit 1
  fi
  start_node "$id"
  wait_leader
  ;;
stop)
  for id in 1 2 3; do
    if pid=$(pid_of "$id"); then kill -TERM "$pid"; fi
  done
  for id in 1 2 3; do
    for _ in $(seq 1 100); do alive "$id" || break; sleep 0.1; done
  done
  echo stopped
  ;;
clean)
  "$0" stop
  rm -rf "$dir"
  ;;
*)
  sed -n '2,13p' "$0"; exit 2
  ;;
esac
