#!/usr/bin/env bash
# Validates the deployment examples under scripts/deploy/ as far as this
# machine allows, and says what it checked and what it skipped.
#
#   scripts/deploy/check.sh [GSP_BINARY]      # default: target/debug/gsp
#
# GSP_BINARY is an already built gsp (this script builds nothing itself,
# except the Docker image where a daemon is reachable). It is used to:
#   - stand in for /usr/local/bin/gsp in a temporary copy of the unit, since
#     `systemd-analyze verify` requires ExecStart's binary to exist;
#   - run `gsp node --check-config` with the exact arguments the unit, the
#     Dockerfile's CMD and the Kubernetes manifests pass (flag names, values
#     and the example config are resolved as a start would; binds nothing,
#     touches no data dir).
#
# Checks:
#   systemd   systemd-analyze verify (any warning fails), the exposure score
#             of systemd-analyze security (printed), and the ExecStart flags;
#   docker    the Dockerfile's CMD flags, ports and ignore file (python3);
#             `docker build` only where a daemon answers (GSP_CHECK_DOCKER=0
#             skips it: it compiles the whole project);
#   k8s       every YAML document parses, kinds are as expected, selectors,
#             ports, env and volumes fit together, the node's flags resolve
#             (python3 with PyYAML); `kubectl apply --dry-run=client` only
#             where a cluster answers (GSP_CHECK_KUBECTL=0 skips it).
#
# Exit status: 0 when every check that ran passed (skips are not failures),
# 1 when one failed, 2 for a bad invocation.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

if [[ $# -gt 1 ]]; then
    echo "usage: $0 [GSP_BINARY]" >&2
    exit 2
fi
bin_given=${1:-}
bin=${bin_given:-$root/target/debug/gsp}
[[ $bin == /* ]] || bin=$PWD/$bin

passed=()
failed=()
skipped=()
pass() { passed+=("$1"); echo "PASS  $1"; }
fail() { failed+=("$1"); echo "FAIL  $1"; }
skip() { skipped+=("$1"); echo "SKIP  $1"; }
indent() { sed 's/^/      /'; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

have_bin=false
if [[ -x $bin ]]; then
    have_bin=true
    echo "using $bin ($("$bin" --version 2>/dev/null || echo 'version unknown'))"
elif [[ -n $bin_given ]]; then
    echo "error: $bin is not an executable file" >&2
    exit 2
else
    echo "note: $bin not found: checks that run the binary are skipped (pass a built gsp as \$1)"
fi

# `gsp node --check-config ARGS...` in a clean environment (no GSP_* from the
# caller's shell), from the repository root. $1: what is checked.
check_node_args() {
    local what=$1
    shift
    local out
    if out=$(cd "$root" && env -i PATH="$PATH" HOME="$tmp" "$bin" node --check-config "$@" 2>&1); then
        pass "$what: gsp node --check-config $*"
    else
        fail "$what: gsp node --check-config $* (exit $?)"
        printf '%s\n' "$out" | indent
    fi
}

have_python=false
have_yaml=false
if command -v python3 >/dev/null 2>&1; then
    have_python=true
    python3 -c 'import yaml' 2>/dev/null && have_yaml=true
fi

# --- systemd -------------------------------------------------------------
echo "== systemd: scripts/deploy/systemd/gsp.service"
unit=$here/systemd/gsp.service
if ! command -v systemd-analyze >/dev/null 2>&1; then
    skip "systemd: systemd-analyze not installed"
elif ! $have_bin; then
    skip "systemd: systemd-analyze verify (needs a gsp binary for ExecStart)"
else
    # The copy differs from the unit in two ways only:
    # - ExecStart's /usr/local/bin/gsp becomes the given binary (verify
    #   fails when ExecStart's program does not exist);
    # - User=gsp and Group=gsp become root, since the gsp user exists only on
    #   hosts where the unit was installed (some systemd versions complain
    #   about a missing user; this checks the unit, not this host's users).
    mkdir -p "$tmp/systemd"
    sed -e "s#^ExecStart=/usr/local/bin/gsp #ExecStart=$bin #" \
        -e 's/^User=gsp$/User=root/' \
        -e 's/^Group=gsp$/Group=root/' \
        "$unit" >"$tmp/systemd/gsp.service"
    if ! grep -q "^ExecStart=$bin " "$tmp/systemd/gsp.service"; then
        fail "systemd: ExecStart does not start with /usr/local/bin/gsp (the check's substitution found nothing)"
    elif out=$(systemd-analyze verify --man=no "$tmp/systemd/gsp.service" 2>&1) && [[ -z $out ]]; then
        pass "systemd: systemd-analyze verify (no errors, no warnings; User/Group=root and ExecStart=$bin in the checked copy)"
    else
        fail "systemd: systemd-analyze verify"
        printf '%s\n' "$out" | indent
    fi
    # The exposure score of the unit as installed (User=gsp): a copy with
    # only the binary substituted (the score does not need the user).
    mkdir -p "$tmp/security"
    sed -e "s#^ExecStart=/usr/local/bin/gsp #ExecStart=$bin #" "$unit" >"$tmp/security/gsp.service"
    if out=$(systemd-analyze security --offline=yes "$tmp/security/gsp.service" 2>&1); then
        echo "      systemd-analyze security (User=gsp):$(printf '%s\n' "$out" | grep -i 'overall exposure' | sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^[^O]*Overall/ overall/')"
    else
        echo "      (systemd-analyze security --offline not supported here; exposure not printed)"
    fi
fi
if $have_bin; then
    # ExecStart's arguments after the binary, with the example config for
    # /etc/gsp/gsp.yaml and $GSP_NODE_ARGS (empty by default) dropped.
    exec_line=$(sed -n 's/^ExecStart=//p' "$unit")
    read -r -a words <<<"$exec_line"
    args=()
    for w in "${words[@]:1}"; do
        # shellcheck disable=SC2016 # the unit's literal text, not expanded here
        case $w in
            '$GSP_NODE_ARGS' | '${GSP_NODE_ARGS}') ;;
            /etc/gsp/gsp.yaml) args+=("$here/systemd/gsp.yaml") ;;
            *) args+=("$w") ;;
        esac
    done
    if [[ ${args[0]:-} != node ]]; then
        fail "systemd: ExecStart does not run \`gsp node\`"
    else
        check_node_args "systemd ExecStart (config: systemd/gsp.yaml)" "${args[@]:1}"
    fi
else
    skip "systemd: ExecStart flags (needs a gsp binary)"
fi

# --- docker --------------------------------------------------------------
echo "== docker: scripts/deploy/docker/Dockerfile"
dockerfile=$here/docker/Dockerfile
if $have_python; then
    if out=$(python3 - "$dockerfile" "$here/docker/Dockerfile.dockerignore" 2>&1 >"$tmp/cmd" <<'PY'
import json, re, sys

dockerfile, ignore = sys.argv[1], sys.argv[2]
text = open(dockerfile).read()
# Join continuation lines, drop comments.
lines, cur = [], ""
for raw in text.splitlines():
    if raw.lstrip().startswith("#") and not cur:
        continue
    if raw.rstrip().endswith("\\"):
        cur += raw.rstrip()[:-1] + " "
        continue
    cur += raw
    if cur.strip():
        lines.append(cur.strip())
    cur = ""
instr = [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if " " in l else "") for l in lines]
problems = []
def one(name):
    found = [v for k, v in instr if k == name]
    if not found:
        problems.append(f"no {name}")
        return None
    return found[-1]

entry = one("ENTRYPOINT")
if entry is not None and json.loads(entry) != ["gsp"]:
    problems.append(f'ENTRYPOINT is {entry}, expected ["gsp"]')
cmd = one("CMD")
cmd = json.loads(cmd) if cmd is not None else []
if cmd[:1] != ["node"]:
    problems.append(f"CMD does not start with node: {cmd}")
def flag(name):
    for i, a in enumerate(cmd):
        if a == name and i + 1 < len(cmd):
            return cmd[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None
listen, http = flag("--listen"), flag("--http-listen")
exposed = set()
for k, v in instr:
    if k == "EXPOSE":
        exposed |= {p.split("/")[0] for p in v.split()}
for what, addr in (("--listen", listen), ("--http-listen", http)):
    if addr is None:
        problems.append(f"CMD has no {what}")
        continue
    host, port = addr.rsplit(":", 1)
    if host != "0.0.0.0":
        problems.append(f"CMD {what} {addr} does not listen on 0.0.0.0")
    if port not in exposed:
        problems.append(f"CMD {what} port {port} is not EXPOSEd ({sorted(exposed)})")
if flag("--data-dir") is None:
    problems.append("CMD has no --data-dir")
else:
    vol = one("VOLUME") or "[]"
    vols = json.loads(vol) if vol.startswith("[") else vol.split()
    if flag("--data-dir") not in vols:
        problems.append(f"--data-dir {flag('--data-dir')} is not a VOLUME ({vols})")
hc = one("HEALTHCHECK") or ""
if http and f":{http.rsplit(':', 1)[1]}/healthz" not in hc:
    problems.append(f"HEALTHCHECK does not probe /healthz on the side port: {hc}")
# Every COPY source from the context must survive the ignore file (an
# allowlist: `*` then `!path` lines).
allowed = set()
for l in open(ignore):
    l = l.strip()
    if l.startswith("!"):
        allowed.add(l[1:].rstrip("/"))
for k, v in instr:
    if k == "COPY" and "--from=" not in v:
        srcs = [s for s in v.split() if not s.startswith("--")][:-1]
        for s in srcs:
            s = s.rstrip("/")
            if s not in allowed:
                problems.append(f"COPY {s}: excluded by Dockerfile.dockerignore")
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print("\n".join(cmd))
PY
    ); then
        pass "docker: Dockerfile structure (ENTRYPOINT gsp, CMD listens on 0.0.0.0, ports EXPOSEd, data dir a VOLUME, HEALTHCHECK on /healthz, COPY sources kept by Dockerfile.dockerignore)"
        if $have_bin; then
            mapfile -t cmd_args <"$tmp/cmd"
            check_node_args "docker CMD" "${cmd_args[@]:1}"
        else
            skip "docker: CMD flags (needs a gsp binary)"
        fi
    else
        fail "docker: Dockerfile structure"
        printf '%s\n' "$out" | indent
    fi
else
    skip "docker: Dockerfile structure (python3 not installed)"
fi
if [[ ${GSP_CHECK_DOCKER:-1} == 0 ]]; then
    skip "docker: docker build (GSP_CHECK_DOCKER=0)"
elif ! command -v docker >/dev/null 2>&1; then
    skip "docker: docker build (docker not installed)"
elif ! docker info >/dev/null 2>&1; then
    skip "docker: docker build (docker is installed but no daemon answers)"
else
    tag=gsp:deploy-check
    if docker build -f "$dockerfile" -t "$tag" "$root" >"$tmp/docker.log" 2>&1; then
        pass "docker: docker build -f scripts/deploy/docker/Dockerfile ."
        if out=$(docker run --rm "$tag" node --check-config --listen 0.0.0.0:50005 --http-listen 0.0.0.0:50080 --data-dir /var/lib/gsp 2>&1); then
            pass "docker: the image runs gsp (node --check-config)"
        else
            fail "docker: the image runs gsp (node --check-config)"
            printf '%s\n' "$out" | indent
        fi
    else
        fail "docker: docker build (last lines below)"
        tail -n 30 "$tmp/docker.log" | indent
    fi
fi

# --- kubernetes ----------------------------------------------------------
echo "== kubernetes: scripts/deploy/kubernetes/*.yaml"
if ! $have_yaml; then
    skip "k8s: YAML checks (python3 with PyYAML not installed)"
else
    for spec in "gsp.yaml:Service,StatefulSet" "gsp-daemonset.yaml:DaemonSet"; do
        file=${spec%%:*}
        kinds=${spec#*:}
        if out=$(python3 - "$here/kubernetes/$file" "$kinds" "$here/docker/Dockerfile" "$tmp/k8s-$file" 2>&1 <<'PY'
import re, sys, yaml

path, want, dockerfile, argsfile = sys.argv[1], sys.argv[2].split(","), sys.argv[3], sys.argv[4]
docs = [d for d in yaml.safe_load_all(open(path)) if d is not None]
problems = []
kinds = [d.get("kind") for d in docs]
if kinds != want:
    problems.append(f"kinds {kinds}, expected {want}")
api = {"Service": "v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1"}
services = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Service"}
uid = re.search(r"--uid\s+(\d+)", open(dockerfile).read())
uid = int(uid.group(1)) if uid else None
# Sample values for the Downward API fields the manifests use.
samples = {"status.podIP": "10.244.0.7", "status.hostIP": "10.0.0.7",
           "metadata.name": "gsp-0", "metadata.namespace": "default",
           "spec.nodeName": "worker-1"}
out_args = []
for d in docs:
    kind, name = d.get("kind"), d.get("metadata", {}).get("name")
    where = f"{kind}/{name}"
    if api.get(kind) and d.get("apiVersion") != api[kind]:
        problems.append(f"{where}: apiVersion {d.get('apiVersion')}, expected {api[kind]}")
    spec = d.get("spec", {})
    if kind == "Service":
        if spec.get("clusterIP") != "None":
            problems.append(f"{where}: not headless (clusterIP: None)")
        if spec.get("publishNotReadyAddresses") is not True:
            problems.append(f"{where}: publishNotReadyAddresses is not true")
        continue
    tpl = spec["template"]
    labels = tpl["metadata"]["labels"]
    sel = spec["selector"]["matchLabels"]
    if any(labels.get(k) != v for k, v in sel.items()):
        problems.append(f"{where}: selector {sel} does not match the pod labels {labels}")
    pod = tpl["spec"]
    if kind == "StatefulSet":
        svc = services.get(spec.get("serviceName"))
        if svc is None:
            problems.append(f"{where}: serviceName {spec.get('serviceName')} is not a Service in this file")
        elif any(labels.get(k) != v for k, v in svc["spec"]["selector"].items()):
            problems.append(f"{where}: the Service's selector does not match the pod labels")
        claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
        if not claims:
            problems.append(f"{where}: no volumeClaimTemplates (the data dir must persist)")
    else:
        claims = set()
    if kind == "DaemonSet":
        if pod.get("hostNetwork") is not True:
            problems.append(f"{where}: hostNetwork is not true")
        if pod.get("dnsPolicy") != "ClusterFirstWithHostNet":
            problems.append(f"{where}: dnsPolicy must be ClusterFirstWithHostNet to resolve the service with hostNetwork")
    volumes = {v["name"] for v in pod.get("volumes", [])} | claims
    for c in pod.get("initContainers", []) + pod["containers"]:
        cw = f"{where} container {c['name']}"
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes:
                problems.append(f"{cw}: mounts unknown volume {m['name']}")
    for c in pod["containers"]:
        cw = f"{where} container {c['name']}"
        ctx = {**pod.get("securityContext", {}), **c.get("securityContext", {})}
        if ctx.get("runAsNonRoot") is not True:
            problems.append(f"{cw}: runAsNonRoot is not true")
        if uid is not None and ctx.get("runAsUser") != uid:
            problems.append(f"{cw}: runAsUser {ctx.get('runAsUser')} is not the image's gsp UID {uid}")
        if not any(m["mountPath"] == "/var/lib/gsp" for m in c.get("volumeMounts", [])):
            problems.append(f"{cw}: nothing mounted at the data dir /var/lib/gsp")
        cports = {p["name"]: p["containerPort"] for p in c.get("ports", []) if "name" in p}
        for probe in ("readinessProbe", "livenessProbe"):
            get = c.get(probe, {}).get("httpGet")
            if not get:
                problems.append(f"{cw}: no {probe} with httpGet")
                continue
            port = get["port"]
            if isinstance(port, str) and port not in cports:
                problems.append(f"{cw}: {probe} names port {port}, not a container port")
            want_path = "/readyz" if probe == "readinessProbe" else "/healthz"
            if get.get("path") != want_path:
                problems.append(f"{cw}: {probe} path {get.get('path')}, expected {want_path}")
        env = {}
        for e in c.get("env", []):
            if "value" in e:
                env[e["name"]] = str(e["value"])
            else:
                field = e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
                if field not in samples:
                    problems.append(f"{cw}: env {e['name']}: no sample value for {field or e.get('valueFrom')}")
                env[e["name"]] = samples.get(field, "x")
        args = c.get("args", [])
        if args[:1] != ["node"]:
            problems.append(f"{cw}: args do not start with node: {args}")
        def subst(a):
            def one(m):
                if m.group(1) not in env:
                    problems.append(f"{cw}: $({m.group(1)}) in args is not an env var of the container")
                return env.get(m.group(1), "")
            return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", one, a)
        resolved = [subst(a) for a in args[1:]]
        # The probes must reach the side port where the node binds it.
        http = next((a.split("=", 1)[1] for a in resolved if a.startswith("--http-listen=")), None)
        if http is None:
            problems.append(f"{cw}: no --http-listen= (the probes need the side port)")
        else:
            hhost, hport = http.rsplit(":", 1)
            for probe in ("readinessProbe", "livenessProbe"):
                get = c.get(probe, {}).get("httpGet") or {}
                port = cports.get(get.get("port"), get.get("port"))
                if str(port) != hport:
                    problems.append(f"{cw}: {probe} port {port} is not the side port {hport}")
                if hhost == "127.0.0.1" and get.get("host") != "127.0.0.1":
                    problems.append(f"{cw}: the side port binds loopback but {probe} has no host: 127.0.0.1")
                if hhost == "127.0.0.1" and pod.get("hostNetwork") is not True:
                    problems.append(f"{cw}: a loopback side port is probed only with hostNetwork")
        gsp_envs = {k: v for k, v in env.items() if k.startswith("GSP_")}
        out_args.append((cw, gsp_envs, resolved))
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
with open(argsfile, "w") as f:
    for cw, envs, args in out_args:
        f.write("\x1f".join([cw, " ".join(f"{k}={v}" for k, v in envs.items())] + args) + "\n")
print(f"{len(docs)} documents: {', '.join(kinds)}")
PY
        ); then
            pass "k8s: $file parses; $out; selectors, ports, probes, env and volumes consistent"
            if $have_bin; then
                while IFS= read -r line; do
                    # Fields: where, the container's GSP_* env, then the args.
                    IFS=$'\x1f' read -r -a fields <<<"$line"
                    # shellcheck disable=SC2206 # GSP_* assignments, no spaces in values
                    envs=(${fields[1]})
                    out=""
                    if out=$(cd "$root" && env -i PATH="$PATH" HOME="$tmp" "${envs[@]}" "$bin" node --check-config "${fields[@]:2}" 2>&1); then
                        pass "k8s: $file ${fields[0]}: gsp node --check-config ${fields[*]:2}"
                    else
                        fail "k8s: $file ${fields[0]}: gsp node --check-config ${fields[*]:2}"
                        printf '%s\n' "$out" | indent
                    fi
                done <"$tmp/k8s-$file"
            else
                skip "k8s: $file node flags (needs a gsp binary)"
            fi
        else
            fail "k8s: $file"
            printf '%s\n' "$out" | indent
        fi
    done
fi
if [[ ${GSP_CHECK_KUBECTL:-1} == 0 ]]; then
    skip "k8s: kubectl dry run (GSP_CHECK_KUBECTL=0)"
elif ! command -v kubectl >/dev/null 2>&1; then
    skip "k8s: kubectl dry run (kubectl not installed)"
elif ! kubectl version --request-timeout=5s >/dev/null 2>&1; then
    skip "k8s: kubectl dry run (kubectl is installed but no cluster answers; it needs one even for --dry-run=client)"
else
    for file in gsp.yaml gsp-daemonset.yaml; do
        if out=$(kubectl apply --dry-run=client --validate=strict -o name -f "$here/kubernetes/$file" 2>&1); then
            pass "k8s: kubectl apply --dry-run=client --validate=strict -f $file"
        else
            fail "k8s: kubectl apply --dry-run=client --validate=strict -f $file"
            printf '%s\n' "$out" | indent
        fi
    done
fi

echo
echo "${#passed[@]} passed, ${#failed[@]} failed, ${#skipped[@]} skipped"
[[ ${#failed[@]} -eq 0 ]]
