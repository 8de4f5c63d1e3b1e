#!/usr/bin/env bash
# Starts a local cluster of N gsp nodes on 127.0.0.1 (gRPC ports 50005.., HTTP
# ports 50080..), each with its own data dir under ${GSP_CLUSTER_DIR:-./gsp-cluster},
# all joining node 0. Ctrl-C stops them gracefully (each announces its leave).
#
#   scripts/cluster.sh 3            # then: gsp peers --addr 127.0.0.1:50006
#   GSP_BIN=target/release/gsp scripts/cluster.sh 5 --gossip-interval 0.2
set -euo pipefail
n=${1:-3}
shift || true
bin=${GSP_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --quiet
  bin=target/release/gsp
fi
dir=${GSP_CLUSTER_DIR:-./gsp-cluster}
mkdir -p "$dir"
pids=()
stop() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait
}
trap stop INT TERM
for i in $(seq 0 $((n - 1))); do
  join=()
  [ "$i" -gt 0 ] && join=(--join 127.0.0.1:50005)
  "$bin" node --listen "127.0.0.1:$((50005 + i))" --http-listen "127.0.0.1:$((50080 + i))" \
    --name "node-$i" --data-dir "$dir/node-$i" "${join[@]}" "$@" >"$dir/node-$i.log" 2>&1 &
  pids+=($!)
done
echo "started $n nodes; logs in $dir/*.log; Ctrl-C stops them"
echo "  $bin peers --addr 127.0.0.1:50005"
echo "  $bin watch --addr 127.0.0.1:50005 --json"
echo "  curl -s 127.0.0.1:50080/api/resource/discovery/nodes"
wait
