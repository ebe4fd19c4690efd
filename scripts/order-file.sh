#!/usr/bin/env bash
# Regenerates agent/link/symbol-order.txt, the code layout of the release binary (see
# agent/build.rs): the functions `run` and `token` execute, recorded with valgrind's callgrind
# while the integration tests drive them down their real paths:
# - `run`: real containerd, systemd, the Kubernetes API and IMDS emulators, promtool scrapes;
# - `token`: presigning against botocore and moto;
# - `run` on a host where nothing is up yet (every check failing), with scrapes.
#
#   scripts/order-file.sh            # ends with the release build laid out by the new list
#
# Rerun it after a dependency upgrade. Symbol names carry a hash of their crate's version and
# build settings, so names that went stale are skipped by the linker: the layout gets worse,
# nothing breaks. Needs valgrind (installed here as root) and the test peers
# (scripts/test.sh installs them). Takes about 15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
    else
        echo "order-file.sh: valgrind is needed (apt-get install valgrind)" >&2
        exit 1
    fi
fi

# The shipped profile, with its symbols kept (same names as the shipped binary).
EKS_NODE_AGENT_KEEP_SYMBOLS=1 cargo build --release --locked -p eks-node-agent
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp target/release/eks-node-agent "$work/eks-node-agent"

cat > "$work/agent" <<EOF
#!/bin/sh
# Dumps every 2M basic blocks: the tests stop daemons with SIGKILL, which loses the final dump.
exec valgrind -q --tool=callgrind --demangle=no --dump-instr=no --dump-every-bb=2000000 \\
    --callgrind-out-file="$work/cg.%p" "$work/eks-node-agent" "\$@"
EOF
chmod +x "$work/agent"

# Under valgrind the agent is ~50x slower and some tests time out: what ran is recorded anyway.
EKS_NODE_AGENT_TEST_BIN="$work/agent" cargo test --locked -p eks-node-agent --test integration -- \
    --test-threads 1 \
    daemon::sd_notify daemon::promtool daemon::all_checks daemon::cri_status daemon::unit_state \
    daemon::iam_credentials daemon::sighup daemon::vpc_cni daemon::kernel_log auth::token \
    >"$work/tests.log" 2>&1 || echo "order-file.sh: some tests failed under valgrind (expected); see the counts below" >&2
grep -E '^test result' "$work/tests.log" >&2 || true

# `run` on a host where nothing it watches is up yet (as at boot, before containerd and the
# kubelet start; and the README example): every check takes its failure path.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '' > "$work/daemon.toml"
AWS_EC2_METADATA_DISABLED=true "$work/agent" run --no-kubernetes --node-name order-file \
    --listen "127.0.0.1:$port" --config "$work/daemon.toml" >/dev/null 2>&1 &
daemon=$!
for _ in $(seq 60); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/metrics" 2>/dev/null || true
    sleep 0.5
done
kill -TERM "$daemon"
wait "$daemon" || true

mkdir -p agent/link
python3 - "$work" agent/link/symbol-order.txt <<'PY'
# Functions of `run` first, those that the most daemon processes ran (start-up, scrapes, the
# checks' common paths) leading, so that what every daemon needs is packed together; then
# what only `token` and the other commands ran.
import collections, glob, re, sys
work, out = sys.argv[1], sys.argv[2]
pat = re.compile(r"^c?fn=\((\d+)\) (.+)$")
per_process = collections.defaultdict(set)  # pid -> names
run_pids = set()
dumps = sorted(glob.glob(f"{work}/cg.*"))
for path in dumps:
    pid = path.rsplit("/", 1)[1].split(".")[1]  # cg.PID or cg.PID.N
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("cmd:") and "run" in line.split()[2:]:
                run_pids.add(pid)
            m = pat.match(line.rstrip("\n"))
            if m:
                per_process[pid].add(re.sub(r"'\d+$", "", m.group(2)))  # recursion: foo'2
daemon, other = collections.Counter(), collections.Counter()
for pid, names in per_process.items():
    (daemon if pid in run_pids else other).update(names)
def usable(n):  # symbol names only (callgrind writes "0x..." for code without one)
    return not n.startswith("0x") and " " not in n
first = [n for n, _ in sorted(daemon.items(), key=lambda kv: (-kv[1], kv[0])) if usable(n)]
seen = set(first)
rest = sorted(n for n in other if usable(n) and n not in seen)
with open(out, "w") as f:
    f.write("\n".join(first + rest) + "\n")
print(f"order-file.sh: {len(first)} functions of `run` ({len(run_pids)} daemons), then {len(rest)} of the other commands ({len(per_process) - len(run_pids)} processes), from {len(dumps)} callgrind dumps -> {out}", file=sys.stderr)
PY

# The shipped build: stripped, laid out with the new list.
cargo build --release --locked -p eks-node-agent
