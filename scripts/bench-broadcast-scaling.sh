#!/usr/bin/env bash
# bench-broadcast-scaling.sh: does a broadcast take as long to 32 hosts as to 16?
# Runs scripts/bench-broadcast-netns.sh on SMALL and LARGE clusters in turn
# (ROUNDS clusters of each, alternating, RUNS sends per cluster, so drift on a
# shared machine hits both sizes alike) and compares the medians of the time to
# the last delivery confirmation. Root only (network namespaces, tc tbf).
#
#   scripts/bench-broadcast-scaling.sh [SMALL] [LARGE] [RATE] [SIZE] [ROUNDS] [RUNS] [-- NODE_ARGS...]
#
#   SMALL, LARGE  hosts in the two clusters          [default: 16 32]
#   RATE          each host's link, both ways         [default: 200mbit]
#   SIZE          payload                             [default: 16M]
#   ROUNDS        clusters of each size, alternating  [default: 2]
#   RUNS          sends per cluster                   [default: 4]
#
# Prints each run's JSON line (from bench-broadcast-netns.sh, with "hosts"),
# then one summary line:
#   {"small_hosts":16,"large_hosts":32,"rate":"200mbit","bytes":16777216,
#    "small_median_ms":..,"large_median_ms":..,"ratio":..,"goal":1.1,"goal_met":..,
#    "suspect_events":0,"dead_events":0,"departed":0}
# The goal (issue 12) is LARGE's median within 10% of SMALL's, with no healthy
# member suspected, declared dead or reported departed during any send.
#
# Exit codes: 0 goal met, 1 goal missed or a run did not converge, 2 usage
# error or a cluster could not be set up.
set -euo pipefail

PROG=bench-broadcast-scaling.sh
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/scripts/bench-broadcast-netns.sh"

SMALL=16 LARGE=32 RATE=200mbit SIZE=16M ROUNDS=2 RUNS=4
args=()
while [[ $# -gt 0 && $1 != -- ]]; do args+=("$1"); shift; done
[[ ${1:-} == -- ]] && shift
[[ ${#args[@]} -ge 1 ]] && SMALL=${args[0]}
[[ ${#args[@]} -ge 2 ]] && LARGE=${args[1]}
[[ ${#args[@]} -ge 3 ]] && RATE=${args[2]}
[[ ${#args[@]} -ge 4 ]] && SIZE=${args[3]}
[[ ${#args[@]} -ge 5 ]] && ROUNDS=${args[4]}
[[ ${#args[@]} -ge 6 ]] && RUNS=${args[5]}
for v in "$SMALL" "$LARGE" "$ROUNDS" "$RUNS"; do
  [[ $v =~ ^[0-9]+$ && $v -ge 1 ]] || { echo "$PROG: SMALL, LARGE, ROUNDS and RUNS are positive numbers, got '$v'" >&2; exit 2; }
done
[[ $SMALL -ge 2 && $LARGE -gt $SMALL ]] || { echo "$PROG: need 2 <= SMALL < LARGE, got $SMALL and $LARGE" >&2; exit 2; }
command -v jq >/dev/null || { echo "$PROG: jq is needed" >&2; exit 2; }

out=$(mktemp /tmp/gsp-bench-scaling.XXXXXX)
trap 'rm -f "$out"' EXIT
status=0
for ((round = 1; round <= ROUNDS; round++)); do
  for hosts in "$SMALL" "$LARGE"; do
    echo "$PROG: round $round of $ROUNDS, $hosts hosts" >&2
    rc=0
    "$BENCH" "$hosts" "$RATE" "$SIZE" "$RUNS" -- "$@" >>"$out" || rc=$?
    case $rc in
      0) ;;
      1) status=1 ;;
      *) exit 2 ;;
    esac
  done
done
cat "$out"
summary=$(jq -s -c --argjson small "$SMALL" --argjson large "$LARGE" --arg rate "$RATE" '
  def median: sort | if length == 0 then null
    elif length % 2 == 1 then .[length / 2 | floor]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  ([.[] | select(.hosts == $small) | .last_ms] | median) as $s
  | ([.[] | select(.hosts == $large) | .last_ms] | median) as $l
  | (if $s and $l then ($l / $s * 1000 | round) / 1000 else null end) as $ratio
  | {small_hosts: $small, large_hosts: $large, rate: $rate, bytes: (.[0].bytes),
     small_median_ms: (if $s then ($s * 10 | round) / 10 else null end),
     large_median_ms: (if $l then ($l * 10 | round) / 10 else null end),
     ratio: $ratio, goal: 1.1,
     suspect_events: (map(.suspect_events) | add),
     dead_events: (map(.dead_events) | add),
     departed: (map(.departed) | add),
     missing: (map(.missing) | add)}
  | .goal_met = (.ratio != null and .ratio <= 1.1 and .suspect_events == 0
                 and .dead_events == 0 and .departed == 0 and .missing == 0)' "$out")
echo "$summary"
if [[ $(jq -r .goal_met <<<"$summary") == true ]]; then
  echo "$PROG: $LARGE hosts took $(jq -r .ratio <<<"$summary")x the time of $SMALL (goal <= 1.1: met)" >&2
else
  echo "$PROG: $LARGE hosts took $(jq -r .ratio <<<"$summary")x the time of $SMALL (goal <= 1.1, no suspicions: MISSED)" >&2
  status=1
fi
exit "$status"
