#!/usr/bin/env bash
# Measures how long a maintenance change takes to reach every node (N nodes, default gossip interval).
set -u
N=${1:-5}; G="$(cd "$(dirname "$0")/.." && pwd)/target/release/gsp"; T=$(mktemp -d)
pids=()
for i in $(seq 0 $((N-1))); do
  port=$((52000+i))
  join=""; [ $i -gt 0 ] && join="--join 127.0.0.1:52000"
  $G node --listen 127.0.0.1:$port --http-listen off --data-dir $T/n$i --name n$i $join 2>$T/log$i &
  pids+=($!)
done
trap 'kill ${pids[@]} 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT
for i in $(seq 0 $((N-1))); do
  until [ "$($G peers --addr 127.0.0.1:$((52000+i)) --json --state alive 2>/dev/null | jq .total)" = "$N" ]; do sleep 0.1; done
done
start=$(date +%s.%N)
$G maint set maintenance --addr 127.0.0.1:52000 --reason bench >/dev/null
for i in $(seq 1 $((N-1))); do
  until [ "$($G peers --addr 127.0.0.1:$((52000+i)) --json | jq -r '.nodes[] | select(.node_name=="n0") | .maintenance')" = "maintenance" ]; do sleep 0.05; done
  now=$(date +%s.%N); echo "n$i sees it after $(echo "$now - $start" | bc) s"
done
end=$(date +%s.%N); echo "all $N nodes: $(echo "$end - $start" | bc) s"
