#!/usr/bin/env bash
# bench-run-all.sh: `gsp run --all -- true` on a local cluster of N nodes, timed
# against `gsp run --node node-1 -- true` (one node's round trip and process
# start) on the same cluster; the goal is --all under twice that.
#
#   scripts/bench-run-all.sh [NODES] [RUNS]
#
#   NODES  nodes in the cluster, started by scripts/cluster.sh --exec  [default: 8]
#   RUNS   runs of each command, interleaved (after 5 warm-up runs)    [default: 100]
#
# Each run is timed from the client's start to its exit. Prints the p50 and p99
# of both, their ratio at p50 and whether the goal was met, then one JSON line:
#   {"nodes":8,"runs":100,"all_p50_ms":..,"all_p99_ms":..,"node_p50_ms":..,
#    "node_p99_ms":..,"ratio":..,"goal_met":false}
# The cluster uses ports 50005.. and 50080.. (as scripts/cluster.sh) and a
# temporary data dir, and is stopped at the end. GSP_BIN picks the binary.
#
# Exit codes: 0 goal met, 1 goal missed, 2 usage error or the cluster did not
# come up (or a run failed).
set -euo pipefail

n=${1:-8}
runs=${2:-100}
case "$n$runs" in *[!0-9]*)
  echo "bench-run-all.sh: NODES and RUNS are numbers: $n $runs" >&2
  exit 2
  ;;
esac
if [ "$n" -lt 2 ] || [ "$runs" -lt 1 ]; then
  echo "bench-run-all.sh: at least 2 nodes and 1 run" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${GSP_BIN:-}
if [ -z "$bin" ]; then
  (cd "$root" && cargo build --release --quiet)
  bin="$root/target/release/gsp"
fi
addr=127.0.0.1:50005
# Another cluster on these ports would be measured in place of this one.
if "$bin" peers --addr "$addr" --timeout 1 >/dev/null 2>&1; then
  echo "bench-run-all.sh: a node already answers at $addr (scripts/cluster.sh running?); stop it first" >&2
  exit 2
fi
dir=$(mktemp -d)
GSP_BIN="$bin" GSP_CLUSTER_DIR="$dir" "$root/scripts/cluster.sh" "$n" --exec >"$dir/cluster.out" 2>&1 &
cluster=$!
stop() {
  kill -TERM "$cluster" 2>/dev/null || true
  wait "$cluster" 2>/dev/null || true
  rm -rf "$dir"
}
trap stop EXIT

# Up when the first node lists every node alive.
for _ in $(seq 1 100); do
  alive=$("$bin" peers --addr "$addr" --json 2>/dev/null | grep -o '"state": *"alive"' | wc -l || true)
  [ "$alive" -ge "$n" ] && break
  sleep 0.2
done
if [ "${alive:-0}" -lt "$n" ]; then
  echo "bench-run-all.sh: the cluster did not come up ($alive of $n alive); see $dir/*.log" >&2
  trap - EXIT
  kill -TERM "$cluster" 2>/dev/null || true
  exit 2
fi

# Microseconds one command took, from $EPOCHREALTIME (no fork to time it).
took() {
  local t0 t1
  t0=${EPOCHREALTIME/./}
  if ! "$@" >/dev/null 2>&1; then
    echo "bench-run-all.sh: failed: $*" >&2
    exit 2
  fi
  t1=${EPOCHREALTIME/./}
  echo $((t1 - t0))
}
all=(run --addr "$addr" --all -- true)
one=(run --addr "$addr" --node node-1 -- true)
for _ in 1 2 3 4 5; do took "$bin" "${all[@]}" >/dev/null; done
: >"$dir/all.us"
: >"$dir/one.us"
for _ in $(seq 1 "$runs"); do
  took "$bin" "${all[@]}" >>"$dir/all.us"
  took "$bin" "${one[@]}" >>"$dir/one.us"
done

# The p-th percentile (nearest rank) of a file of microseconds, in ms.
pct() {
  sort -n "$1" | awk -v p="$2" '{ v[NR] = $1 } END {
    i = int(p * NR + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR
    printf "%.2f", v[i] / 1000 }'
}
a50=$(pct "$dir/all.us" 0.5)
a99=$(pct "$dir/all.us" 0.99)
o50=$(pct "$dir/one.us" 0.5)
o99=$(pct "$dir/one.us" 0.99)
ratio=$(awk -v a="$a50" -v o="$o50" 'BEGIN { printf "%.2f", a / o }')
met=$(awk -v r="$ratio" 'BEGIN { print (r < 2) ? "true" : "false" }')
echo "gsp run --all -- true on $n nodes:      p50 $a50 ms, p99 $a99 ms ($runs runs)"
echo "gsp run --node node-1 -- true:          p50 $o50 ms, p99 $o99 ms ($runs runs)"
if [ "$met" = true ]; then
  echo "--all / --node at p50: $ratio (goal < 2: met)"
else
  echo "--all / --node at p50: $ratio (goal < 2: MISSED)"
fi
printf '{"nodes":%d,"runs":%d,"all_p50_ms":%s,"all_p99_ms":%s,"node_p50_ms":%s,"node_p99_ms":%s,"ratio":%s,"goal_met":%s}\n' \
  "$n" "$runs" "$a50" "$a99" "$o50" "$o99" "$ratio" "$met"
[ "$met" = true ]
