#!/usr/bin/env bash
# freeze-data-dir.sh: what a stuck disk under a node's data dir does to the
# node and to a job printing there. Needs root (a loop device, mkfs.ext4,
# fsfreeze). Only this machine: two nodes on 127.0.0.1:53000/53001.
#
#   sudo scripts/freeze-data-dir.sh [SECONDS]
#
# Node n1 keeps its data dir on a small ext4 image on a loop device; a job on
# n1 prints a line every 10 ms (3,000 lines); 2 s in, the file system is
# frozen (`fsfreeze -f`: every write to it blocks, as on a hung mount) for
# SECONDS (default 20) probes. Each second it prints whether n1 answers `gsp
# peers`, how n0 sees n1, and how many lines the client has; then, thawed,
# the client's exit, the lines `gsp logs` replays, and the lines n1 replays
# from its log file after a restart. GSP_BIN picks the binary. With
# START_DURING=1 a second job is started on n1 at the third probe: its
# `gsp run` waits for the job's record to reach the disk (the node's promise
# before it hands out an id), so it times out (5 s, exit 124), while the node
# must keep answering. With FILL_HISTORY=1, 100 jobs that print a line run
# on n1 first, so that a job started during the freeze makes n1 forget its
# oldest job and delete that job's log file.
#
# Exit codes: 0 n1 answered throughout, the client got all 3,000 lines and
# the file replays them all; 1 otherwise; 2 usage error or setup failed.
set -uo pipefail

probes=${1:-20}
case "$probes" in '' | *[!0-9]*)
  echo "freeze-data-dir.sh: SECONDS is a number: $probes" >&2
  exit 2
  ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${GSP_BIN:-$root/target/release/gsp}
[ -x "$bin" ] || { echo "freeze-data-dir.sh: no binary at $bin (cargo build --release, or GSP_BIN)" >&2; exit 2; }
for tool in losetup mkfs.ext4 fsfreeze mount; do
  command -v "$tool" >/dev/null || { echo "freeze-data-dir.sh: needs $tool" >&2; exit 2; }
done
if "$bin" peers --addr 127.0.0.1:53000 --timeout 1 >/dev/null 2>&1; then
  echo "freeze-data-dir.sh: a node already answers at 127.0.0.1:53000; stop it first" >&2
  exit 2
fi

dir=$(mktemp -d)
mnt="$dir/slow"
loop=""
cleanup() {
  fsfreeze -u "$mnt" 2>/dev/null
  pkill -TERM -f -- "--listen 127.0.0.1:5300[01] " 2>/dev/null
  sleep 1
  umount "$mnt" 2>/dev/null
  [ -n "$loop" ] && losetup -d "$loop" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
truncate -s 256M "$dir/slow.img"
loop=$(losetup -f --show "$dir/slow.img") || exit 2
mkfs.ext4 -q "$loop" && mkdir -p "$mnt" && mount "$loop" "$mnt" || exit 2

start_n1() {
  "$bin" node --listen 127.0.0.1:53001 --http-listen 127.0.0.1:53101 --data-dir "$mnt/n1" \
    --name n1 --exec --join 127.0.0.1:53000 >>"$dir/n1.log" 2>&1 &
}
"$bin" node --listen 127.0.0.1:53000 --http-listen 127.0.0.1:53100 --data-dir "$dir/n0" \
  --name n0 >"$dir/n0.log" 2>&1 &
start_n1
for _ in $(seq 1 50); do
  "$bin" run --addr 127.0.0.1:53000 --node n1 -- true >/dev/null 2>&1 && break
  sleep 0.2
done
if [ -n "${FILL_HISTORY:-}" ]; then
  for i in $(seq 1 100); do
    "$bin" run --addr 127.0.0.1:53000 --node n1 -- echo "filler $i" >/dev/null 2>&1 || exit 2
  done
fi
"$bin" run --addr 127.0.0.1:53000 --node n1 -- sh -c \
  'i=0; while [ $i -lt 3000 ]; do echo "line $i ........................................................"; i=$((i+1)); sleep 0.01; done' \
  >"$dir/client.out" 2>"$dir/client.err" &
client=$!
sleep 2
fsfreeze -f "$mnt" || exit 2
echo "data dir of n1 frozen"
fails=0
for k in $(seq 1 "$probes"); do
  if [ "$k" = 3 ] && [ -n "${START_DURING:-}" ]; then
    (timeout 5 "$bin" run --addr 127.0.0.1:53000 --node n1 -- true >/dev/null 2>&1; echo "a job started on n1 during the freeze: exit $?" >"$dir/during.out") &
  fi
  t0=${EPOCHREALTIME/./}
  if "$bin" peers --addr 127.0.0.1:53001 --timeout 2 >/dev/null 2>&1; then r=ok; else r=FAIL; fails=$((fails + 1)); fi
  t1=${EPOCHREALTIME/./}
  seen=$("$bin" peers --addr 127.0.0.1:53000 --json --timeout 2 2>/dev/null |
    grep -A6 '"node_name": "n1"' | grep -o '"status": "[a-z]*"' | cut -d'"' -f4)
  printf 't=%2ds  n1 answers: %-4s (%4d ms)  n0 sees n1: %-8s  client lines: %s\n' \
    "$k" "$r" $(((t1 - t0) / 1000)) "${seen:-?}" "$(wc -l <"$dir/client.out")"
  sleep 0.5
done
fsfreeze -u "$mnt"
echo "thawed"
[ -f "$dir/during.out" ] && cat "$dir/during.out"
wait "$client"
code=$?
got=$(wc -l <"$dir/client.out")
id=$(grep -o 'job [0-9a-f]*' "$dir/client.err" | head -1 | cut -d' ' -f2)
replayed=$("$bin" logs --addr 127.0.0.1:53001 "$id" 2>/dev/null | grep -c '^line ')
pkill -TERM -f -- "--listen 127.0.0.1:53001 " && sleep 1
start_n1
sleep 2
from_file=$("$bin" logs --addr 127.0.0.1:53001 "$id" 2>/dev/null | grep -c '^line ')
echo "client exit $code, $got lines; gsp logs: $replayed lines; after n1 restarted (from its file): $from_file lines"
grep -E 'WARN|ERROR' "$dir/n1.log" | tail -3
if [ "$fails" -eq 0 ] && [ "$code" -eq 0 ] && [ "$got" -eq 3000 ] && [ "$from_file" -eq 3000 ]; then
  echo "n1 answered throughout; nothing lost"
  exit 0
fi
echo "n1 failed $fails of $probes probes, or output was lost"
exit 1
