#!/usr/bin/env bash
# gpu-check.sh: gsp against the NVIDIA GPUs of this machine. Needs the NVIDIA
# driver (nvidia-smi, libcuda.so.1) and a Rust toolchain (cargo and its C
# compiler `cc`); nothing else. Not part of CI: CI machines have no GPU (the
# tests use the mock NVML in tests/mock_nvml/ instead).
#
#   scripts/gpu-check.sh
#
# It builds gsp (release; GSP_BIN picks a built binary instead), starts a
# single node on 127.0.0.1 with --exec, and checks:
#
#   1. inventory: every device `nvidia-smi --query-gpu=...` lists is in
#      `gsp peers --detailed --json` with the same index, UUID, model name
#      and memory total (to 1 MiB), and memory used within 1 GiB + 2% of the
#      total (the two read at different moments, and nvidia-smi may count
#      memory the driver reserves); a GPU in MIG mode is listed as its MIG
#      instances, each UUID one `nvidia-smi -L` shows; the driver version
#      matches; gsp lists no device nvidia-smi does not.
#   2. binding: one `gsp run --gpu 1` job per free device, all at once; inside
#      each, CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES name exactly one
#      device, GSP_GPUS its index, the CUDA driver (asked through libcuda.so.1,
#      which honours CUDA_VISIBLE_DEVICES) sees exactly that one device, and
#      `nvidia-smi -L` run in the job lists it (nvidia-smi itself shows every
#      device whatever CUDA_VISIBLE_DEVICES says, so it cannot show the
#      isolation alone); no two jobs got the same device.
#   3. a job that asked for no GPU sees no CUDA device.
#   4. every hold is released once the jobs end.
#
# Devices that are busy (a process gsp did not start is using them) are
# listed but get no job; with no free device, 2 cannot be checked and the
# script fails.
#
# Exit codes: 0 every check passed; 1 a mismatch (each printed as
# "MISMATCH: ..."); 2 the machine lacks something it needs, or setup failed.
#
# To exercise it on a machine without a GPU, point it at the mock NVML and
# the stand-ins next to it:
#   lib=$(scripts/build-mock-nvml.sh)
#   cc -shared -fPIC -o target/mock-nvml/libcuda.so.1 tests/mock_nvml/fake_libcuda.c
#   GSP_MOCK_NVML=tests/mock_nvml/eight-h100.txt GSP_NVML_LIBRARY=$lib \
#     NVIDIA_SMI=tests/mock_nvml/fake-nvidia-smi \
#     GSP_CHECK_LIBCUDA=target/mock-nvml/libcuda.so.1 scripts/gpu-check.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

die() {
  echo "gpu-check.sh: $*" >&2
  exit 2
}
failed=0
mismatch() {
  echo "MISMATCH: $*"
  failed=1
}

smi=$(command -v "${NVIDIA_SMI:-nvidia-smi}") || die "no nvidia-smi: install the NVIDIA driver"
libcuda=${GSP_CHECK_LIBCUDA:-libcuda.so.1}
cc=${CC:-cc}
command -v "$cc" >/dev/null || die "no C compiler ($cc): it comes with the Rust toolchain's build essentials"

work=$(mktemp -d) || die "cannot make a temporary directory"
node_pid=
cleanup() {
  [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${GSP_BIN:-}" ]; then
  gsp=$GSP_BIN
else
  echo "== building gsp (release)"
  cargo build --release --locked -q || die "cargo build failed"
  gsp=target/release/gsp
fi
[ -x "$gsp" ] || die "no gsp binary at $gsp"
gsp=$(cd "$(dirname "$gsp")" && pwd)/$(basename "$gsp")

# What CUDA sees: the devices the CUDA driver offers this process, by UUID.
cat >"$work/cuda-devices.c" <<'EOF'
#include <dlfcn.h>
#include <stdio.h>
typedef struct { unsigned char b[16]; } uuid_t_;
int main(int argc, char **argv) {
    void *lib = dlopen(argc > 1 ? argv[1] : "libcuda.so.1", RTLD_NOW);
    if (!lib) { printf("cuda-error cannot load %s: %s\n", argv[1], dlerror()); return 1; }
    int (*init)(unsigned) = (int (*)(unsigned))dlsym(lib, "cuInit");
    int (*count)(int *) = (int (*)(int *))dlsym(lib, "cuDeviceGetCount");
    int (*get)(int *, int) = (int (*)(int *, int))dlsym(lib, "cuDeviceGet");
    int (*uuid)(uuid_t_ *, int) = (int (*)(uuid_t_ *, int))dlsym(lib, "cuDeviceGetUuid_v2");
    if (!uuid) uuid = (int (*)(uuid_t_ *, int))dlsym(lib, "cuDeviceGetUuid");
    if (!init || !count || !get || !uuid) { printf("cuda-error missing functions\n"); return 1; }
    int rc = init(0), n = 0;
    if (rc == 100) { printf("cuda-count 0\n"); return 0; } /* CUDA_ERROR_NO_DEVICE */
    if (rc) { printf("cuda-error cuInit %d\n", rc); return 1; }
    if (count(&n)) { printf("cuda-error cuDeviceGetCount\n"); return 1; }
    printf("cuda-count %d\n", n);
    for (int i = 0; i < n; i++) {
        int dev; uuid_t_ u;
        if (get(&dev, i) || uuid(&u, dev)) { printf("cuda-error device %d\n", i); return 1; }
        printf("cuda-device ");
        for (int k = 0; k < 16; k++) printf("%02x", u.b[k]);
        printf("\n");
    }
    return 0;
}
EOF
"$cc" -O1 -o "$work/cuda-devices" "$work/cuda-devices.c" -ldl || die "$cc failed on the CUDA device lister"

smi_rows=$("$smi" --query-gpu=index,uuid,name,memory.total,memory.used,mig.mode.current,driver_version \
  --format=csv,noheader,nounits) || die "nvidia-smi --query-gpu failed"
smi_list=$("$smi" -L) || die "nvidia-smi -L failed"
[ -n "$smi_rows" ] || die "nvidia-smi lists no GPU"
echo "== nvidia-smi"
echo "$smi_list"

echo "== starting a node"
"$gsp" node --name gpu-check --listen 127.0.0.1:0 --http-listen off --data-dir "$work/data" \
  --exec --exec-max-jobs 256 --resource-interval 1 >"$work/node.log" 2>&1 &
node_pid=$!
addr=
for _ in $(seq 100); do
  addr=$(sed -n 's/.*node serving.* listen=\([^ ]*\).*/\1/p' "$work/node.log" | head -n 1)
  [ -n "$addr" ] && break
  kill -0 "$node_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$addr" ] || {
  cat "$work/node.log" >&2
  die "the node did not start"
}

# The devices gsp lists, one line each: index|uuid|name|total|used|mig_parent|free
# (from the pretty-printed `gsp peers --json`, whose keys are one a line).
gsp_devices() {
  "$gsp" peers --addr "$addr" --detailed --json | awk '
    /"gpus": \[/ { on = 1; next }
    on && /^ *\]/ { on = 0 }
    on && /"[a-z_]+": / {
      key = $1; gsub(/[":]/, "", key)
      val = $0; sub(/^[^:]*: /, "", val); sub(/,$/, "", val); gsub(/^"|"$/, "", val)
      d[key] = val
    }
    on && /^ *\}/ {
      print d["index"] "|" d["uuid"] "|" d["name"] "|" d["memory_total_bytes"] "|" \
        d["memory_used_bytes"] "|" d["mig_parent"] "|" d["free"]
      delete d
    }'
}
expected=$(echo "$smi_rows" | awk -F', ' '{ n += ($6 == "Enabled") ? 0 : 1 } END { print n + 0 }')
expected=$((expected + $(echo "$smi_list" | grep -c 'MIG.*UUID: MIG-')))
devices=
for _ in $(seq 30); do
  devices=$(gsp_devices)
  [ "$(echo "$devices" | grep -c .)" -ge "$expected" ] && break
  sleep 0.5
done

echo "== 1. inventory ($expected devices expected)"
echo "$devices" | awk -F'|' '{ printf "  gsp: %s %s %s total %d MiB used %d MiB%s%s\n", $1, $2, $3,
  $4 / 1048576, $5 / 1048576, ($6 == "" ? "" : " on " $6), ($7 == "true" ? " free" : " not free") }'
driver=$("$gsp" peers --addr "$addr" --detailed --json | sed -n 's/.*"gpu_driver": "\(.*\)".*/\1/p' | head -n 1)
listed=0
while IFS=', ' read -r index uuid rest; do
  name=$(echo "$rest" | awk -F', ' '{ print $1 }')
  total=$(echo "$rest" | awk -F', ' '{ print $2 }')
  used=$(echo "$rest" | awk -F', ' '{ print $3 }')
  mig=$(echo "$rest" | awk -F', ' '{ print $4 }')
  want_driver=$(echo "$rest" | awk -F', ' '{ print $5 }')
  [ "$driver" = "$want_driver" ] || mismatch "driver: gsp says '$driver', nvidia-smi '$want_driver'"
  if [ "$mig" = "Enabled" ]; then
    instances=$(echo "$devices" | awk -F'|' -v p="$uuid" '$6 == p')
    [ -n "$instances" ] || mismatch "GPU $index ($uuid) is in MIG mode but gsp lists none of its instances"
    while IFS='|' read -r i u _; do
      [ -z "$u" ] && continue
      listed=$((listed + 1))
      [ "$i" = "$index" ] || mismatch "MIG instance $u: gsp index $i, its GPU's $index"
      echo "$smi_list" | grep -q "UUID: $u)" || mismatch "MIG instance $u: not in nvidia-smi -L"
    done <<<"$instances"
    continue
  fi
  row=$(echo "$devices" | awk -F'|' -v u="$uuid" '$2 == u')
  if [ -z "$row" ]; then
    mismatch "GPU $index ($uuid, $name): not listed by gsp"
    continue
  fi
  listed=$((listed + 1))
  IFS='|' read -r g_index _ g_name g_total g_used _ <<<"$row"
  [ "$g_index" = "$index" ] || mismatch "GPU $uuid: index $g_index in gsp, $index in nvidia-smi"
  [ "$g_name" = "$name" ] || mismatch "GPU $index: model '$g_name' in gsp, '$name' in nvidia-smi"
  g_total_mib=$((g_total / 1048576))
  d=$((g_total_mib - total))
  [ "${d#-}" -le 1 ] || mismatch "GPU $index: memory total $g_total_mib MiB in gsp, $total MiB in nvidia-smi"
  g_used_mib=$((g_used / 1048576))
  d=$((g_used_mib - used))
  slack=$((1024 + total / 50))
  [ "${d#-}" -le "$slack" ] ||
    mismatch "GPU $index: memory used $g_used_mib MiB in gsp, $used MiB in nvidia-smi (slack $slack MiB)"
done <<<"$smi_rows"
count=$(echo "$devices" | grep -c .)
[ "$count" -eq "$listed" ] || mismatch "gsp lists $count devices, $listed of them matched nvidia-smi's"

echo "== 2. binding: one job per free device"
free=$(echo "$devices" | awk -F'|' '$7 == "true"' | grep -c .)
if [ "$free" -eq 0 ]; then
  mismatch "no free device: every GPU is busy, binding cannot be checked"
fi
job_script='echo "cvd=[$CUDA_VISIBLE_DEVICES]"; echo "nvd=[$NVIDIA_VISIBLE_DEVICES]"; echo "idx=[$GSP_GPUS]"
"$0" "$1"; "$2" -L; sleep 3'
pids=()
for n in $(seq "$free"); do
  "$gsp" run --addr "$addr" --gpu 1 --wait 30 -- sh -c "$job_script" "$work/cuda-devices" "$libcuda" "$smi" \
    >"$work/job$n.out" 2>"$work/job$n.err" &
  pids+=($!)
done
for n in $(seq "$free"); do
  wait "${pids[$((n - 1))]}" || mismatch "job $n: gsp run failed: $(cat "$work/job$n.err")"
done
seen=
for n in $(seq "$free"); do
  out=$(cat "$work/job$n.out")
  cvd=$(echo "$out" | sed -n 's/^cvd=\[\(.*\)\]$/\1/p')
  nvd=$(echo "$out" | sed -n 's/^nvd=\[\(.*\)\]$/\1/p')
  idx=$(echo "$out" | sed -n 's/^idx=\[\(.*\)\]$/\1/p')
  echo "  job $n: CUDA_VISIBLE_DEVICES=$cvd GSP_GPUS=$idx; CUDA sees $(echo "$out" | sed -n 's/^cuda-count //p')"
  case "$cvd" in
  '' | *,*)
    mismatch "job $n: CUDA_VISIBLE_DEVICES='$cvd', not one device"
    continue
    ;;
  esac
  [ "$nvd" = "$cvd" ] || mismatch "job $n: NVIDIA_VISIBLE_DEVICES='$nvd', CUDA_VISIBLE_DEVICES='$cvd'"
  row=$(echo "$devices" | awk -F'|' -v u="$cvd" '$2 == u')
  [ -n "$row" ] || mismatch "job $n: got $cvd, which gsp does not list"
  [ "$idx" = "${row%%|*}" ] || mismatch "job $n: GSP_GPUS='$idx', the device's index is '${row%%|*}'"
  [ "$(echo "$out" | sed -n 's/^cuda-count //p')" = 1 ] ||
    mismatch "job $n: CUDA sees $(echo "$out" | grep -c '^cuda-device') devices, not 1: $(echo "$out" | grep '^cuda-')"
  want_hex=$(echo "${cvd#*-}" | tr -d '-' | tr 'A-F' 'a-f')
  echo "$out" | grep -qx "cuda-device $want_hex" ||
    mismatch "job $n: CUDA's device is not $cvd: $(echo "$out" | grep '^cuda-device')"
  echo "$out" | grep -q "UUID: $cvd)" || mismatch "job $n: nvidia-smi -L in the job does not list $cvd"
  case " $seen " in *" $cvd "*) mismatch "job $n: $cvd was given to two jobs at once" ;; esac
  seen="$seen $cvd"
done

echo "== 3. a job that asked for no GPU"
none=$("$gsp" run --addr "$addr" -- "$work/cuda-devices" "$libcuda" 2>"$work/none.err")
echo "  $none"
[ "$none" = "cuda-count 0" ] || mismatch "a job without --gpu sees CUDA devices: $none"

echo "== 4. holds released"
held=
for _ in $(seq 20); do
  held=$("$gsp" peers --addr "$addr" --json | grep -c '"held": true')
  [ "$held" -eq 0 ] && break
  sleep 0.5
done
[ "$held" -eq 0 ] || mismatch "$held devices still held after every job ended"

if [ "$failed" -eq 0 ]; then
  echo "gpu-check: every check passed ($count devices, $free jobs bound)"
else
  echo "gpu-check: mismatches above; node log: tail of it follows"
  tail -n 20 "$work/node.log"
fi
exit "$failed"
