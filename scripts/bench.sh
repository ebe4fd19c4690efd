#!/usr/bin/env bash
# Every performance comparison in one command; writes docs/PERFORMANCE.md from scratch.
#
#   scripts/bench.sh                        # everything
#   scripts/bench.sh --only token,init      # some sections (then the file holds only those)
#   scripts/bench.sh --runs 30 --rounds 5   # more runs per measurement
#
# Installs the peers it compares against (Debian's prometheus-node-exporter, GNU time,
# iproute2..., as root) and the Python venv with awscli and moto (shared with scripts/test.sh),
# builds the release binary and the harness (tests/src/bin/bench-all), then runs it. The growth
# experiments on `run` need root (network and mount namespaces); without root they are written
# as "not measured" with the reason. Nothing is sent outside 127.0.0.0/8.
#
# Cost on the 2-core development machine: the measurements take about 1.5 minutes. The first
# time, the two release builds take much longer (each resolves features on its own, so each
# compiles the dependencies once: roughly 20-30 minutes apiece); later runs reuse them.
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH_PACKAGES=(python3-venv prometheus-node-exporter time iproute2 util-linux binutils file coreutils)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=()
    for p in "${BENCH_PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "bench.sh: installing Debian packages: ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi

. scripts/test-venv.sh bench.sh

# The shipped binary (release profile of the root Cargo.toml), then the harness.
cargo build --release --locked -p eks-node-agent
cargo build --release --locked -p eks-node-agent-tests --bin bench-all --bin bench-discovery

exec target/release/bench-all --agent "$PWD/target/release/eks-node-agent" --out "$PWD/docs/PERFORMANCE.md" "$@"
