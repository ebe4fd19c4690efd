#!/usr/bin/env bash
# Runs every test, after installing what the tests need:
#   - Debian packages for the real peers (when running as root),
#   - a Python venv in .venv with moto server, botocore and awscli,
#   - then `cargo test` for the whole workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(python3-venv dbus-daemon dbus-user-session systemd containerd runc prometheus prometheus-node-exporter
    debootstrap systemd-container lintian rpm rpmlint socat iproute2 util-linux mount
    libssl-dev pkg-config minisign docker.io qemu-system-x86 e2fsprogs nftables)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=()
    for p in "${DEBIAN_PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "test.sh: installing Debian packages: ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi

# The package and end-to-end tests need cargo-deb and cargo-generate-rpm: install the pinned
# versions now rather than under a test's timeout.
if [ "$(id -u)" = 0 ]; then
    scripts/package.sh --tools-only
fi

. scripts/test-venv.sh test.sh

cargo test --workspace --locked "$@"
