#!/usr/bin/env bash
# netns-cluster.sh: a multi-host gsp cluster on one Linux machine, one network
# namespace per host, for fault-injection tests and experiments. Root only.
#
#   scripts/netns-cluster.sh up N [-- EXTRA_NODE_ARGS...]   start hosts h0..h{N-1}
#   scripts/netns-cluster.sh down [--purge]                 stop everything (idempotent)
#   scripts/netns-cluster.sh status                         hosts, IPs, pids, links, faults
#   scripts/netns-cluster.sh wait [SECS]                    until every live node sees all live hosts alive (jq)
#   scripts/netns-cluster.sh cut HOSTS | heal HOSTS         isolate a host completely / reconnect it
#   scripts/netns-cluster.sh loss PCT [HOSTS]               drop PCT% of packets arriving at each host (0 removes)
#   scripts/netns-cluster.sh shape RATE [HOSTS] | unshape [HOSTS]   tc tbf both ways, e.g. 200mbit
#   scripts/netns-cluster.sh kill HOST [SIGNAL]             KILL (default), TERM, STOP, CONT, HUP or INT
#   scripts/netns-cluster.sh stop HOST | cont HOST          SIGSTOP / SIGCONT
#   scripts/netns-cluster.sh restart HOST                   start the node again with its saved args
#   scripts/netns-cluster.sh exec HOST CMD...               run CMD in the host's namespace (`gsp` means $GSP_BIN)
#   scripts/netns-cluster.sh peers HOST [ARGS...]           gsp peers --addr IP:50005 ARGS, from that host
#   scripts/netns-cluster.sh ip HOST | log HOST | dir       the host's IP, its log's path, the state dir
#
# HOST is 3 or h3; HOSTS is a list such as 1,2,3 or 5-7 or 0,4-6 or all (the default
# where it is optional). Host i is namespace ${PREFIX}-hI with IP ${SUBNET}.(10+i)/24 on
# eth0, a veth whose peer vI sits on a bridge in namespace ${PREFIX}-hub; its node
# listens on IP:50005 (gRPC) and IP:50080 (HTTP), is named hI, keeps its data in
# $DIR/hI/data and appends to $DIR/hI/node.log. Every host but h0 joins h0. `up`
# waits until every node answers `gsp peers` (at most GSP_NETNS_WAIT seconds, 0 skips)
# and tears a half-built cluster down on any failure. A detached watchdog runs `down`
# after GSP_NETNS_TTL seconds so nothing outlives it. Nothing is created in the root
# namespace but the namespace handles. One kernel setting is shared by every
# namespace: the IPv4 neighbour (ARP) table, whose limit counts the entries of all
# namespaces together (default 1,024: one 32-host mesh fills it, and a host that
# cannot add an entry cannot reach anyone; the kernel logs "neighbor table
# overflow"). `up` raises net.ipv4.neigh.default.gc_thresh2/3 to fit the clusters
# already up plus this one (where it may), and never lowers them.
#
# Environment:
#   GSP_BIN            gsp binary [default: target/release/gsp under the repo root; never built
#                      here]; `up` records it and `restart` reuses it unless GSP_BIN is set
#   GSP_NETNS_PREFIX   namespace prefix, so clusters never collide [default: gsp]
#   GSP_NETNS_DIR      state: pids, args, logs, data dirs [default: /tmp/gsp-netns-$PREFIX]
#   GSP_NETNS_SUBNET   first three octets of the /24 [default: 10.77.0]
#   GSP_NETNS_TTL      seconds before the watchdog runs `down` [default: 1800]
#   GSP_NETNS_WAIT     seconds `up` waits for the nodes to answer [default: 20]
#
# Example:
#   sudo GSP_BIN=target/release/gsp scripts/netns-cluster.sh up 8 -- --gossip-interval 0.2
#   sudo scripts/netns-cluster.sh cut 5-7; sleep 10; sudo scripts/netns-cluster.sh heal 5-7
#   sudo scripts/netns-cluster.sh peers 0 --json
#   sudo scripts/netns-cluster.sh down --purge
#
# Exit codes: 0 success, 1 failure, 2 usage error (or no binary).
set -euo pipefail

PROG=${0##*/}
SELF=$(readlink -f "$0")
REPO_ROOT=$(cd "$(dirname "$SELF")/.." && pwd)
PREFIX=${GSP_NETNS_PREFIX:-gsp}
DIR=${GSP_NETNS_DIR:-/tmp/gsp-netns-$PREFIX}
HUB="$PREFIX-hub"
GRPC_PORT=50005
HTTP_PORT=50080
LOSS_CHAIN=GSP_NETNS_LOSS

die() { echo "$PROG: $*" >&2; exit 1; }
usage_err() { echo "$PROG: $*" >&2; echo "run '$PROG help' for usage" >&2; exit 2; }
say() { echo "$PROG: $*"; }

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$SELF"; }

[[ $PREFIX =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,20}$ ]] || usage_err "GSP_NETNS_PREFIX '$PREFIX': use 1-21 letters, digits, . _ -"
case $DIR in /*) ;; *) DIR="$PWD/$DIR" ;; esac
[ "$DIR" != / ] || usage_err "GSP_NETNS_DIR must not be /"

# ---------------------------------------------------------------- state

is_up() { [ -f "$DIR/cluster-id" ]; }
host_count() {
  if [ -f "$DIR/n" ]; then cat "$DIR/n"; else echo 0; fi
}
subnet() {
  if [ -f "$DIR/subnet" ]; then cat "$DIR/subnet"; else echo "${GSP_NETNS_SUBNET:-10.77.0}"; fi
}
ns_of() { echo "$PREFIX-h$1"; }
ip_of() { echo "$(subnet).$(($1 + 10))"; }
hdir() { echo "$DIR/h$1"; }

require_root() { [ "$(id -u)" -eq 0 ] || die "must run as root (network namespaces)"; }
require_up() { is_up || die "cluster '$PREFIX' is not up (state dir $DIR); run '$PROG up N' first"; }

# The gsp binary: GSP_BIN, else (with the argument `recorded`) the one `up` recorded,
# else target/release/gsp under the repo root. Never builds.
resolve_bin() {
  local b=${GSP_BIN:-}
  if [ -z "$b" ] && [ "${1:-}" = recorded ] && [ -f "$DIR/bin" ]; then b=$(cat "$DIR/bin"); fi
  [ -n "$b" ] || b="$REPO_ROOT/target/release/gsp"
  if [ ! -x "$b" ] || [ -d "$b" ]; then
    echo "$PROG: no gsp binary at '$b': build it (cargo build --release) or set GSP_BIN; this script never builds" >&2
    exit 2
  fi
  readlink -f "$b"
}

# Parses HOST (3 or h3) against the cluster size.
parse_host() {
  local h=${1:-} n
  n=$(host_count)
  [ -n "$h" ] || usage_err "missing HOST"
  h=${h#h}
  [[ $h =~ ^[0-9]+$ ]] || usage_err "bad HOST '$1': use a number such as 3 or h3"
  h=$((10#$h))
  [ "$h" -lt "$n" ] || usage_err "no host h$h: the cluster has $n hosts (h0..h$((n - 1)))"
  echo "$h"
}

# Parses HOSTS (1,2,3 / 5-7 / all / mixes) into a space-separated sorted list.
parse_hosts() {
  local spec=${1:-all} n part a b i out=() parts=()
  n=$(host_count)
  if [ "$spec" = all ]; then
    seq 0 $((n - 1)) | tr '\n' ' '
    return
  fi
  IFS=, read -r -a parts <<<"$spec"
  [ "${#parts[@]}" -gt 0 ] || usage_err "empty HOSTS"
  for part in "${parts[@]}"; do
    part=${part//h/}
    if [[ $part =~ ^[0-9]+$ ]]; then
      a=$((10#$part)); b=$a
    elif [[ $part =~ ^([0-9]+)-([0-9]+)$ ]]; then
      a=$((10#${BASH_REMATCH[1]})); b=$((10#${BASH_REMATCH[2]}))
    else
      usage_err "bad HOSTS '$spec': use a list such as 1,2,3 or 5-7 or all"
    fi
    [ "$a" -le "$b" ] || usage_err "bad range '$part' in HOSTS"
    [ "$b" -lt "$n" ] || usage_err "no host h$b: the cluster has $n hosts (h0..h$((n - 1)))"
    for ((i = a; i <= b; i++)); do out+=("$i"); done
  done
  printf '%s\n' "${out[@]}" | sort -nu | tr '\n' ' '
}

names_of() { local i s=""; for i in "$@"; do s+="h$i "; done; echo "${s% }"; }

# The pid of host i's node if that process still exists and is the node we started.
node_pid() {
  local f p
  f="$(hdir "$1")/pid"
  [ -f "$f" ] || return 1
  p=$(cat "$f")
  [[ $p =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$p/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$p/cmdline" | grep -q -- "--name h$1 " || return 1
  echo "$p"
}

proc_state() {
  # third field of /proc/PID/stat, after the parenthesised command name
  local s
  s=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
  echo "${s%% *}"
}

# ---------------------------------------------------------------- nodes

start_node() {
  local i=$1 bin=$2 hd ns pid
  local -a args=()
  hd=$(hdir "$i")
  ns=$(ns_of "$i")
  mapfile -d '' args <"$hd/args"
  mkdir -p "$hd/data"
  {
    printf '# %s: starting h%s at %s: %s node' "$PROG" "$i" "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "$bin"
    printf ' %q' "${args[@]}"
    echo
  } >>"$hd/node.log"
  setsid ip netns exec "$ns" "$bin" node "${args[@]}" </dev/null >>"$hd/node.log" 2>&1 &
  pid=$!
  echo "$pid" >"$hd/pid"
}

# TERM (CONT too, in case it is stopped), then KILL after $2 seconds.
stop_pid() {
  local p=$1 grace=${2:-3} t
  kill -TERM "$p" 2>/dev/null || return 0
  kill -CONT "$p" 2>/dev/null || true
  for ((t = 0; t < grace * 10; t++)); do
    [ -d "/proc/$p" ] && [ "$(proc_state "$p" || echo X)" != Z ] || return 0
    sleep 0.1
  done
  kill -KILL "$p" 2>/dev/null || true
  sleep 0.1
}

answers() {
  local i=$1 bin=$2
  ip netns exec "$(ns_of "$i")" "$bin" peers --addr "$(ip_of "$i"):$GRPC_PORT" --timeout 1 --json >/dev/null 2>&1
}

# ---------------------------------------------------------------- topology

existing_ns() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${PREFIX//./\\.}-(hub|h[0-9]+)$" || true
}

teardown() {
  local purge=${1:-0} p wd ns pids killed=0 nsc=0
  # the watchdog, unless we are it
  if [ -f "$DIR/watchdog.pid" ]; then
    wd=$(cat "$DIR/watchdog.pid")
    if [[ $wd =~ ^[0-9]+$ ]] && [ "$wd" != "$$" ] && [ -r "/proc/$wd/cmdline" ] &&
      tr '\0' ' ' <"/proc/$wd/cmdline" | grep -q -- "_watchdog"; then
      kill -TERM -- "-$wd" 2>/dev/null || kill -TERM "$wd" 2>/dev/null || true
    fi
    rm -f "$DIR/watchdog.pid"
  fi
  rm -f "$DIR/cluster-id"
  # every process inside our host namespaces: the nodes and anything run with exec
  pids=()
  for ns in $(existing_ns); do
    for p in $(ip netns pids "$ns" 2>/dev/null); do pids+=("$p"); done
  done
  if [ "${#pids[@]}" -gt 0 ]; then
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; kill -CONT "$p" 2>/dev/null || true; done
    for _ in $(seq 30); do
      local alive=0
      for p in "${pids[@]}"; do [ -d "/proc/$p" ] && [ "$(proc_state "$p" || echo X)" != Z ] && alive=1; done
      [ "$alive" -eq 1 ] || break
      sleep 0.1
    done
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    killed=${#pids[@]}
  fi
  for ns in $(existing_ns); do
    ip netns delete "$ns" 2>/dev/null || true
    nsc=$((nsc + 1))
  done
  rm -f "$DIR"/h*/pid
  if [ "$purge" -eq 1 ] && [ -f "$DIR/.gsp-netns" ]; then
    rm -rf -- "$DIR"
    say "down: stopped $killed processes, deleted $nsc namespaces, purged $DIR"
  else
    say "down: stopped $killed processes, deleted $nsc namespaces; logs kept in $DIR"
  fi
}

# EXIT trap of `up`: a half-built cluster is torn down (logs kept).
up_exit() {
  local rc=$?
  if [ "${UP_DONE:-1}" -eq 0 ]; then
    echo "$PROG: up failed; tearing down" >&2
    teardown 0 >&2 || true
  fi
  exit "$rc"
}

# The kernel's neighbour table is one for all namespaces: room for every host of
# this cluster to know every other (and its bridge), on top of what is there.
raise_neigh_table() {
  local n=$1 used need cur2 cur3
  used=$(ip -all netns exec ip -4 neigh show 2>/dev/null | grep -cE '^[0-9]' || true)
  used=$((used + $(ip -4 neigh show | grep -cE '^[0-9]' || true)))
  need=$((used + (n + 1) * (n + 1)))
  cur3=$(sysctl -n net.ipv4.neigh.default.gc_thresh3)
  cur2=$(sysctl -n net.ipv4.neigh.default.gc_thresh2)
  # The hard limit with room to spare; the garbage collector's threshold
  # above what the clusters hold, so that it does not evict live entries.
  if [ "$cur3" -lt $((need + 256)) ]; then
    # Where the kernel's settings are read-only (a container), say so and go on.
    if sysctl -qw net.ipv4.neigh.default.gc_thresh3=$((need + 256)) 2>/dev/null; then
      say "up: raised the kernel's neighbour table (shared by all namespaces) from $cur3 to $((need + 256)) entries"
    else
      say "up: cannot raise net.ipv4.neigh.default.gc_thresh3 ($cur3, $((need + 256)) wanted): hosts past it cannot reach their peers"
    fi
  fi
  if [ "$cur2" -lt "$need" ]; then
    sysctl -qw net.ipv4.neigh.default.gc_thresh2="$need" 2>/dev/null || true
  fi
}

cmd_up() {
  local n=${1:-} bin i ip id ttl wait_s hub_ip
  [ -n "$n" ] || usage_err "usage: up N [-- EXTRA_NODE_ARGS...]"
  if ! [[ $n =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt 200 ]; then usage_err "bad N '$n': use 1..200"; fi
  n=$((10#$n))
  shift
  if [ $# -gt 0 ]; then
    [ "$1" = -- ] || usage_err "extra node args go after --: up $n -- $*"
    shift
  fi
  local sub=${GSP_NETNS_SUBNET:-10.77.0}
  [[ $sub =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || usage_err "GSP_NETNS_SUBNET '$sub': give three octets such as 10.77.0"
  ttl=${GSP_NETNS_TTL:-1800}
  wait_s=${GSP_NETNS_WAIT:-20}
  if ! [[ $ttl =~ ^[0-9]+$ ]] || [ "$ttl" -eq 0 ]; then usage_err "GSP_NETNS_TTL '$ttl': give whole seconds > 0"; fi
  [[ $wait_s =~ ^[0-9]+$ ]] || usage_err "GSP_NETNS_WAIT '$wait_s': give whole seconds"
  bin=$(resolve_bin)
  require_root
  if is_up || [ -n "$(existing_ns)" ]; then
    die "cluster '$PREFIX' is already up ($(host_count) hosts, state in $DIR); run '$PROG down' first"
  fi

  mkdir -p "$DIR"
  touch "$DIR/.gsp-netns"
  rm -f "$DIR"/h*/pid
  echo "$n" >"$DIR/n"
  echo "$sub" >"$DIR/subnet"
  echo "$bin" >"$DIR/bin"
  id="$(date +%s%N)-$$"
  echo "$id" >"$DIR/cluster-id"

  # from here on, any failure (or Ctrl-C) tears the half-built cluster down
  UP_DONE=0
  trap up_exit EXIT
  trap 'exit 130' INT TERM

  raise_neigh_table "$n"
  ip netns add "$HUB"
  ip -n "$HUB" link set lo up
  ip -n "$HUB" link add br0 type bridge
  ip -n "$HUB" link set br0 up
  for ((i = 0; i < n; i++)); do
    local ns
    ns=$(ns_of "$i")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$HUB" link add "v$i" type veth peer name eth0 netns "$ns"
    ip -n "$HUB" link set "v$i" master br0
    ip -n "$HUB" link set "v$i" up
    ip -n "$ns" addr add "$(ip_of "$i")/24" dev eth0
    ip -n "$ns" link set eth0 up
  done

  hub_ip=$(ip_of 0)
  for ((i = 0; i < n; i++)); do
    ip=$(ip_of "$i")
    mkdir -p "$(hdir "$i")/data"
    local -a args=(--listen "$ip:$GRPC_PORT" --http-listen "$ip:$HTTP_PORT" --name "h$i"
      --data-dir "$(hdir "$i")/data" --insecure)
    [ "$i" -eq 0 ] || args+=(--join "$hub_ip:$GRPC_PORT")
    args+=("$@")
    printf '%s\0' "${args[@]}" >"$(hdir "$i")/args"
    start_node "$i" "$bin"
  done

  # the watchdog: its own session, so `down` can end it and its sleep as a group
  GSP_NETNS_PREFIX=$PREFIX GSP_NETNS_DIR=$DIR setsid "$SELF" _watchdog "$id" "$ttl" \
    </dev/null >>"$DIR/watchdog.log" 2>&1 &
  echo "$!" >"$DIR/watchdog.pid"

  if [ "$wait_s" -gt 0 ]; then
    local deadline=$((SECONDS + wait_s)) pending
    while :; do
      pending=()
      for ((i = 0; i < n; i++)); do
        node_pid "$i" >/dev/null || {
          tail -n 5 "$(hdir "$i")/node.log" >&2 || true
          die "node h$i exited during start; see $(hdir "$i")/node.log"
        }
        answers "$i" "$bin" || pending+=("$i")
      done
      [ "${#pending[@]}" -gt 0 ] || break
      [ "$SECONDS" -lt "$deadline" ] || die "nodes $(names_of "${pending[@]}") did not answer within ${wait_s}s; see their logs under $DIR"
      sleep 0.5
    done
  fi
  UP_DONE=1
  trap - EXIT INT TERM
  say "up: $n hosts h0..h$((n - 1)) on $sub.0/24 (prefix $PREFIX, state $DIR, watchdog down in ${ttl}s)"
}

cmd_watchdog() {
  local id=$1 ttl=$2
  sleep "$ttl" &
  wait $! || true
  if [ -f "$DIR/cluster-id" ] && [ "$(cat "$DIR/cluster-id")" = "$id" ]; then
    echo "$(date -u +%FT%TZ) watchdog: TTL ${ttl}s reached; running down"
    teardown 0
  fi
}

cmd_down() {
  local purge=0
  case ${1:-} in
    "") ;;
    --purge) purge=1 ;;
    *) usage_err "usage: down [--purge]" ;;
  esac
  require_root
  teardown "$purge"
}

# ---------------------------------------------------------------- faults

cmd_cut() {
  local what=$1 state hosts i
  [ $# -eq 2 ] || usage_err "usage: $what HOSTS (e.g. 1,2,3 or 5-7 or all)"
  require_root; require_up
  hosts=$(parse_hosts "$2")
  if [ "$what" = cut ]; then state=down; else state=up; fi
  for i in $hosts; do ip -n "$HUB" link set "v$i" "$state"; done
  # shellcheck disable=SC2086
  say "$what: $(names_of $hosts): hub-side link $state"
}

cmd_loss() {
  local pct=${1:-} hosts i ns prob
  if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage_err "usage: loss PCT [HOSTS]  (PCT 0..100; 0 removes)"; fi
  [[ $pct =~ ^[0-9]+(\.[0-9]+)?$ ]] || usage_err "bad PCT '$pct': a number 0..100"
  awk -v p="$pct" 'BEGIN{exit !(p >= 0 && p <= 100)}' || usage_err "bad PCT '$pct': a number 0..100"
  require_root; require_up
  hosts=$(parse_hosts "${2:-all}")
  prob=$(awk -v p="$pct" 'BEGIN{printf "%.4f", p / 100}')
  for i in $hosts; do
    ns=$(ns_of "$i")
    if ! ip netns exec "$ns" iptables -w -n -L "$LOSS_CHAIN" >/dev/null 2>&1; then
      ip netns exec "$ns" iptables -w -N "$LOSS_CHAIN"
      ip netns exec "$ns" iptables -w -I INPUT -i eth0 -j "$LOSS_CHAIN"
    fi
    ip netns exec "$ns" iptables -w -F "$LOSS_CHAIN"
    if [ "$prob" != 0.0000 ]; then
      ip netns exec "$ns" iptables -w -A "$LOSS_CHAIN" -m statistic --mode random --probability "$prob" -j DROP
    fi
  done
  # shellcheck disable=SC2086
  if [ "$prob" = 0.0000 ]; then say "loss: removed on $(names_of $hosts)"
  else say "loss: dropping ${pct}% of packets arriving at $(names_of $hosts)"; fi
}

loss_of() {
  local p
  p=$(ip netns exec "$(ns_of "$1")" iptables -w -S "$LOSS_CHAIN" 2>/dev/null |
    sed -n 's/.*--probability \([0-9.]*\).*/\1/p' | head -n 1)
  if [ -n "$p" ]; then awk -v p="$p" 'BEGIN{printf "%g%%", p * 100}'; else echo "-"; fi
}

# Bytes per second of a tc rate such as 200mbit, 10Mbit, 1gbit, 500kbit, 1000000bit.
rate_bytes() {
  local r=${1,,} num unit mul
  [[ $r =~ ^([0-9]+(\.[0-9]+)?)(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)$ ]] || return 1
  num=${BASH_REMATCH[1]}; unit=${BASH_REMATCH[3]}
  case $unit in
    bit) mul=0.125 ;; kbit) mul=125 ;; mbit) mul=125000 ;; gbit) mul=125000000 ;;
    bps) mul=1 ;; kbps) mul=1000 ;; mbps) mul=1000000 ;; gbps) mul=1000000000 ;;
  esac
  awk -v n="$num" -v m="$mul" 'BEGIN{printf "%d", n * m}'
}

cmd_shape() {
  local rate=${1:-} hosts i bps burst
  if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage_err "usage: shape RATE [HOSTS]  (RATE like 200mbit, 10mbit, 1gbit)"; fi
  bps=$(rate_bytes "$rate") || usage_err "bad RATE '$rate': use a number with bit, kbit, mbit or gbit (e.g. 200mbit)"
  [ "$bps" -gt 0 ] || usage_err "bad RATE '$rate': must be > 0"
  require_root; require_up
  hosts=$(parse_hosts "${2:-all}")
  # burst: 10 ms at the rate, at least 32 KiB (several full-size frames); queue: 50 ms
  burst=$((bps / 100))
  [ "$burst" -ge 32768 ] || burst=32768
  for i in $hosts; do
    tc -n "$(ns_of "$i")" qdisc replace dev eth0 root tbf rate "$rate" burst "$burst" latency 50ms
    tc -n "$HUB" qdisc replace dev "v$i" root tbf rate "$rate" burst "$burst" latency 50ms
  done
  # shellcheck disable=SC2086
  say "shape: $(names_of $hosts) limited to $rate each way (tbf burst ${burst}B latency 50ms)"
}

cmd_unshape() {
  local hosts i
  [ $# -le 1 ] || usage_err "usage: unshape [HOSTS]"
  require_root; require_up
  hosts=$(parse_hosts "${1:-all}")
  for i in $hosts; do
    tc -n "$(ns_of "$i")" qdisc del dev eth0 root 2>/dev/null || true
    tc -n "$HUB" qdisc del dev "v$i" root 2>/dev/null || true
  done
  # shellcheck disable=SC2086
  say "unshape: $(names_of $hosts) unlimited"
}

shape_of() {
  local r
  r=$(tc -n "$(ns_of "$1")" qdisc show dev eth0 2>/dev/null | sed -n 's/.*tbf .*rate \([^ ]*\).*/\1/p' | head -n 1)
  echo "${r:--}"
}

link_of() {
  if ip -n "$HUB" -o link show "v$1" 2>/dev/null | grep -q '<[^>]*,UP[,>]'; then echo up; else echo down; fi
}

# ---------------------------------------------------------------- processes

cmd_kill() {
  local h sig=${2:-KILL} p
  if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage_err "usage: kill HOST [KILL|TERM|STOP|CONT|HUP|INT]"; fi
  sig=${sig#SIG}; sig=${sig^^}
  case $sig in KILL | TERM | STOP | CONT | HUP | INT) ;; *) usage_err "bad SIGNAL '$2': use KILL, TERM, STOP, CONT, HUP or INT" ;; esac
  require_root; require_up
  h=$(parse_host "$1")
  p=$(node_pid "$h") || die "h$h has no running node"
  kill -s "$sig" "$p"
  say "kill: sent SIG$sig to h$h (pid $p)"
}

cmd_restart() {
  local h p bin
  [ $# -eq 1 ] || usage_err "usage: restart HOST"
  require_root; require_up
  h=$(parse_host "$1")
  bin=$(resolve_bin recorded)
  local was="was not running"
  if p=$(node_pid "$h"); then
    stop_pid "$p" 5
    was="stopped pid $p"
  fi
  start_node "$h" "$bin"
  say "restart: h$h $was, started pid $(cat "$(hdir "$h")/pid")"
}

cmd_exec() {
  local h
  [ $# -ge 2 ] || usage_err "usage: exec HOST CMD..."
  require_root; require_up
  h=$(parse_host "$1")
  shift
  if [ "$1" = gsp ]; then
    shift
    set -- "$(resolve_bin recorded)" "$@"
  fi
  exec ip netns exec "$(ns_of "$h")" "$@"
}

cmd_peers() {
  local h bin
  [ $# -ge 1 ] || usage_err "usage: peers HOST [ARGS...]"
  require_root; require_up
  h=$(parse_host "$1")
  shift
  bin=$(resolve_bin recorded)
  exec ip netns exec "$(ns_of "$h")" "$bin" peers --addr "$(ip_of "$h"):$GRPC_PORT" "$@"
}

# Until every running node lists every running host alive (stopped or dead hosts are
# left out on both sides). Needs jq.
cmd_wait() {
  local secs=${1:-60} bin n i live deadline ok got
  [[ $secs =~ ^[0-9]+$ ]] || usage_err "usage: wait [SECS]"
  command -v jq >/dev/null || die "wait needs jq"
  require_root; require_up
  bin=$(resolve_bin recorded)
  n=$(host_count)
  deadline=$((SECONDS + secs))
  while :; do
    live=()
    for ((i = 0; i < n; i++)); do
      local p
      if p=$(node_pid "$i") && [ "$(proc_state "$p")" != T ]; then live+=("h$i"); fi
    done
    ok=1
    for name in "${live[@]}"; do
      i=${name#h}
      got=$(ip netns exec "$(ns_of "$i")" "$bin" peers --addr "$(ip_of "$i"):$GRPC_PORT" --timeout 2 --json 2>/dev/null |
        jq -r '[.nodes[] | select(.state == "alive") | .node_name] | unique | join(" ")' 2>/dev/null) || got=""
      for want in "${live[@]}"; do
        [[ " $got " == *" $want "* ]] || { ok=0; break; }
      done
      [ "$ok" -eq 1 ] || break
    done
    if [ "$ok" -eq 1 ]; then
      say "wait: every live node (${#live[@]}) sees all ${#live[@]} alive"
      return 0
    fi
    [ "$SECONDS" -lt "$deadline" ] || die "wait: not converged within ${secs}s"
    sleep 0.5
  done
}

cmd_status() {
  local n i p st
  [ $# -eq 0 ] || usage_err "usage: status"
  require_root
  if ! is_up; then
    say "status: cluster '$PREFIX' is down (state dir $DIR)"
    return 0
  fi
  n=$(host_count)
  printf '%-5s %-15s %-8s %-8s %-5s %-6s %s\n' HOST IP PID NODE LINK LOSS SHAPE
  for ((i = 0; i < n; i++)); do
    p=$(cat "$(hdir "$i")/pid" 2>/dev/null || echo -)
    if node_pid "$i" >/dev/null; then
      case $(proc_state "$p") in T | t) st=stopped ;; Z) st=dead ;; *) st=running ;; esac
    else
      st=dead
    fi
    printf '%-5s %-15s %-8s %-8s %-5s %-6s %s\n' "h$i" "$(ip_of "$i")" "$p" "$st" "$(link_of "$i")" "$(loss_of "$i")" "$(shape_of "$i")"
  done
}

# ---------------------------------------------------------------- main

cmd=${1:-}
[ $# -eq 0 ] || shift
case $cmd in
  up) cmd_up "$@" ;;
  down) cmd_down "$@" ;;
  status) cmd_status "$@" ;;
  wait) cmd_wait "$@" ;;
  cut | heal) cmd_cut "$cmd" "$@" ;;
  loss) cmd_loss "$@" ;;
  shape) cmd_shape "$@" ;;
  unshape) cmd_unshape "$@" ;;
  kill) cmd_kill "$@" ;;
  stop) [ $# -eq 1 ] || usage_err "usage: stop HOST"; cmd_kill "$1" STOP ;;
  cont) [ $# -eq 1 ] || usage_err "usage: cont HOST"; cmd_kill "$1" CONT ;;
  restart) cmd_restart "$@" ;;
  exec) cmd_exec "$@" ;;
  peers) cmd_peers "$@" ;;
  ip | log)
    [ $# -eq 1 ] || usage_err "usage: $cmd HOST"
    [ -f "$DIR/n" ] || die "cluster '$PREFIX' has no state in $DIR"
    h=$(parse_host "$1")
    if [ "$cmd" = ip ]; then ip_of "$h"; else echo "$(hdir "$h")/node.log"; fi
    ;;
  dir) [ $# -eq 0 ] || usage_err "usage: dir"; echo "$DIR" ;;
  _watchdog) cmd_watchdog "$@" ;;
  help | -h | --help) usage ;;
  "") usage >&2; exit 2 ;;
  *) usage_err "unknown command '$cmd'" ;;
esac
