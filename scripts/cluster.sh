#!/usr/bin/env bash
# Runs a local three-node lockd cluster on 127.0.0.1:6379-6381 (cluster ports
# 7379-7381), data and logs under ./lockd-cluster/<id>.
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

start_node() {
  local id=$1
  mkdir -p "$dir/$id"
  nohup "$bin" --id "$id" --listen "127.0.0.1:$(port "$id")" --cluster-listen "127.0.0.1:$((7378 + id))" \
    --peers "$peers" --data-dir "$dir/$id" >>"$dir/$id/lockd.log" 2>&1 &
  echo $! >"$dir/$id/pid"
}

alive() { [ -f "$dir/$1/pid" ] && kill -0 "$(cat "$dir/$1/pid")" 2>/dev/null; }

info() { redis-cli -p "$(port "$1")" INFO replication 2>/dev/null | tr -d '\r' | grep -E "^$2:" | cut -d: -f2-; }

wait_leader() {
  for _ in $(seq 1 100); do
    for id in 1 2 3; do
      if alive "$id" && [ "$(info "$id" role)" = leader ]; then
        echo "leader: node $id (127.0.0.1:$(port "$id"))"; return 0
      fi
    done
    sleep 0.1
  done
  echo "no leader after 10s; see $dir/*/lockd.log" >&2; return 1
}

case "${1:-}" in
start)
  mkdir -p "$dir"
  go build -o "$bin" ./cmd/lockd
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
  alive "$id" && kill -9 "$(cat "$dir/$id/pid")" && echo "killed node $id"
  ;;
restart)
  id=${2:?node id}
  alive "$id" || start_node "$id"
  wait_leader
  ;;
stop)
  for id in 1 2 3; do alive "$id" && kill -TERM "$(cat "$dir/$id/pid")" || true; done
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
  sed -n '2,12p' "$0"; exit 2
  ;;
esac
