#!/usr/bin/env bash
# bench-broadcast-netns.sh: one broadcast to N hosts on real, shaped links, timed
# against the per-host floor S/R; `gsp bench broadcast --shaped RATE` runs it.
# Root only (network namespaces, tc tbf).
#
#   scripts/bench-broadcast-netns.sh [HOSTS] [RATE] [SIZE] [RUNS] [-- EXTRA_NODE_ARGS...]
#
#   HOSTS  hosts in the cluster (namespaces h0..), h0 sends   [default: 16]
#   RATE   each host's link, both ways, tc tbf syntax          [default: 200mbit]
#   SIZE   payload, bytes with an optional K/M suffix          [default: 16M]
#   RUNS   sends, one after another                            [default: 3]
#
# Brings a cluster up with scripts/netns-cluster.sh (prefix GSP_NETNS_PREFIX,
# default gspbench; subnet GSP_NETNS_SUBNET, default 10.79.0), shapes every link,
# sends RUNS payloads of random bytes from h0 and prints one JSON line per run:
#   {"run":1,"hosts":16,"bytes":16777216,"rate_bit_s":200000000,"floor_ms":671.1,
#    "first_ms":..,"p50_ms":..,"last_ms":..,"ratio":..,"acked":16,"missing":0,
#    "departed":0,"suspect_events":0,"dead_events":0,"swarm":true}
# `ratio` is last_ms / floor_ms: the time until every host confirmed delivery over
# the time one host needs to download the payload. `suspect_events` and
# `dead_events` count membership events on all hosts during the run: bulk data
# must not make healthy members look dead. The cluster is taken down at the end.
#
# With GSP_BENCH_KILL=HOST@MS, the node on HOST is killed (SIGKILL) MS
# milliseconds into each send, and started again (and waited for) before the
# next: a relay lost mid-swarm. Each line then also has "killed":HOST; the
# killed host counts as departed, and `ratio` covers the live hosts.
#
# Exit codes: 0 every run converged, 1 a run did not, 2 usage error or the
# cluster could not be set up (not root, no namespaces, no binary).
set -euo pipefail

PROG=bench-broadcast-netns.sh
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NETNS="$ROOT/scripts/netns-cluster.sh"
export GSP_NETNS_PREFIX=${GSP_NETNS_PREFIX:-gspbench}
export GSP_NETNS_SUBNET=${GSP_NETNS_SUBNET:-10.79.0}
export GSP_NETNS_WAIT=${GSP_NETNS_WAIT:-60}

HOSTS=16 RATE=200mbit SIZE=16M RUNS=3
args=()
while [[ $# -gt 0 && $1 != -- ]]; do args+=("$1"); shift; done
[[ ${1:-} == -- ]] && shift
[[ ${#args[@]} -ge 1 ]] && HOSTS=${args[0]}
[[ ${#args[@]} -ge 2 ]] && RATE=${args[1]}
[[ ${#args[@]} -ge 3 ]] && SIZE=${args[2]}
[[ ${#args[@]} -ge 4 ]] && RUNS=${args[3]}
[[ $HOSTS =~ ^[0-9]+$ && $HOSTS -ge 2 ]] || { echo "$PROG: HOSTS must be a number >= 2, got $HOSTS" >&2; exit 2; }
[[ $RUNS =~ ^[0-9]+$ && $RUNS -ge 1 ]] || { echo "$PROG: RUNS must be a number >= 1, got $RUNS" >&2; exit 2; }
command -v jq >/dev/null || { echo "$PROG: jq is needed" >&2; exit 1; }

bytes=$(numfmt --from=iec "${SIZE%B}" 2>/dev/null) || { echo "$PROG: SIZE must look like 16M, got $SIZE" >&2; exit 2; }
bits=$(numfmt --from=si "$(sed -E 's/bit$//; s/([0-9.]+)([kKmMgG])$/\1\U\2/' <<<"${RATE}")" 2>/dev/null) \
  || { echo "$PROG: RATE must look like 200mbit, got $RATE" >&2; exit 2; }
floor_ms=$(awk -v b="$bytes" -v r="$bits" 'BEGIN { printf "%.1f", b * 8 / r * 1000 }')

payload=$(mktemp /tmp/gsp-bench-payload.XXXXXX)
cleanup() { rm -f "$payload"; "$NETNS" down >/dev/null 2>&1 || true; }
trap cleanup EXIT
head -c "$bytes" /dev/urandom >"$payload"

setup_failed() { echo "$PROG: setting up the cluster failed (see above)" >&2; exit 2; }
"$NETNS" down >/dev/null 2>&1 || true
"$NETNS" up "$HOSTS" -- --max-payload 64MiB "$@" >&2 || setup_failed
"$NETNS" wait "$GSP_NETNS_WAIT" >&2 || setup_failed
"$NETNS" shape "$RATE" >&2 || setup_failed

# Sum of a counter sample over every host's /metrics.
metric_sum() {
  local pattern=$1 total=0 i v
  for ((i = 0; i < HOSTS; i++)); do
    v=$("$NETNS" exec "$i" curl -s --max-time 2 "http://$("$NETNS" ip "$i"):50080/metrics" \
      | awk -v p="$pattern" 'index($0, p) == 1 { s += $NF } END { print s + 0 }') || v=0
    total=$((total + v))
  done
  echo "$total"
}

addr="$("$NETNS" ip 0):50005"
kill_host="" kill_ms=0
if [[ -n ${GSP_BENCH_KILL:-} ]]; then
  [[ $GSP_BENCH_KILL =~ ^h?([0-9]+)@([0-9]+)$ ]] \
    || { echo "$PROG: GSP_BENCH_KILL must look like 9@500, got $GSP_BENCH_KILL" >&2; exit 2; }
  kill_host=${BASH_REMATCH[1]} kill_ms=${BASH_REMATCH[2]}
  [[ $kill_host -ge 1 && $kill_host -lt $HOSTS ]] \
    || { echo "$PROG: GSP_BENCH_KILL's host must be 1..$((HOSTS - 1))" >&2; exit 2; }
fi
status=0
for ((run = 1; run <= RUNS; run++)); do
  if [[ -n $kill_host && $run -gt 1 ]]; then
    "$NETNS" restart "$kill_host" >&2 || setup_failed
    "$NETNS" wait "$GSP_NETNS_WAIT" >&2 || setup_failed
  fi
  sus0=$(metric_sum 'gsp_membership_events_total{kind="suspect"}')
  dead0=$(metric_sum 'gsp_membership_events_total{kind="dead"}')
  swarm0=$(metric_sum 'gsp_broadcast_swarms_started_total')
  if [[ -n $kill_host ]]; then
    ( sleep "$(awk -v m="$kill_ms" 'BEGIN { printf "%.3f", m / 1000 }')"; "$NETNS" kill "$kill_host" >/dev/null ) &
  fi
  out=$("$NETNS" exec 0 gsp send --addr "$addr" --file "$payload" --json --timeout 120) || status=1
  wait
  sus=$(($(metric_sum 'gsp_membership_events_total{kind="suspect"}') - sus0))
  dead=$(($(metric_sum 'gsp_membership_events_total{kind="dead"}') - dead0))
  swarm=$(($(metric_sum 'gsp_broadcast_swarms_started_total') - swarm0))
  jq -c --argjson run "$run" --argjson hosts "$HOSTS" --argjson bytes "$bytes" \
    --argjson rate "$bits" --argjson floor "$floor_ms" --argjson sus "$sus" \
    --argjson dead "$dead" --argjson swarm "$swarm" --arg killed "$kill_host" '
    ([.acks[].latency_ms] | sort) as $l
    | {run: $run, hosts: $hosts, bytes: $bytes, rate_bit_s: $rate, floor_ms: $floor,
       first_ms: $l[1], p50_ms: $l[($l | length) / 2 | floor], last_ms: $l[-1],
       ratio: (($l[-1] / $floor * 100 | round) / 100),
       acked: (.acks | length), missing: (.missing | length), departed: (.departed | length),
       suspect_events: $sus, dead_events: $dead, swarm: ($swarm > 0)}
    + (if $killed == "" then {} else {killed: ($killed | tonumber)} end)' <<<"$out"
  sleep 1
done
exit "$status"
