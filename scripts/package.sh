#!/usr/bin/env bash
# Builds the eks-node-agent .deb and .rpm from the workspace.
#
#   scripts/package.sh [--profile release|dev] [--no-build] [--deb-only|--rpm-only]
#                      [--out DIR] [--lint]
#
# --profile   Cargo profile of the packaged binary (default: release; the tests package the
#             dev binary they already built).
# --no-build  Package the binary already in the target directory.
# --out DIR   Where the packages go (default: target/packages).
# --lint      Run lintian on the .deb (errors fail) and rpmlint on the .rpm (reported).
# --tools-only  Only install cargo-deb, cargo-generate-rpm and cargo-cyclonedx (scripts/test.sh
#             does this first).
#
# Both packages ship a CycloneDX SBOM of the binary (its normal dependency graph on this
# target: no dev- or build-dependencies) at /usr/share/doc/eks-node-agent/sbom.cdx.json, made
# by cargo-cyclonedx from Cargo.lock.
#
# Installs cargo-deb, cargo-generate-rpm and cargo-cyclonedx (pinned versions that build with
# the workspace's Rust) with `cargo install --locked` when they are missing. CARGO_TARGET_DIR is
# honoured.
# Prints the path of each package built, one per line, on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.21.1
CARGO_CYCLONEDX_VERSION=0.5.9

profile=release
build=yes
formats=(deb rpm)
out=""
lint=no
tools_only=no
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="${2:?--profile needs release or dev}"; shift 2 ;;
        --profile=*) profile="${1#--profile=}"; shift ;;
        --no-build) build=no; shift ;;
        --deb-only) formats=(deb); shift ;;
        --rpm-only) formats=(rpm); shift ;;
        --out) out="${2:?--out needs a directory}"; shift 2 ;;
        --lint) lint=yes; shift ;;
        --tools-only) tools_only=yes; shift ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "package.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$profile" in
    release) profile_dir=release ;;
    dev) profile_dir=debug ;;
    *) echo "package.sh: --profile must be release or dev, not '$profile'" >&2; exit 2 ;;
esac

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
out="${out:-$target_dir/packages}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

need_tool() { # <cargo subcommand binary> <crate> <version>
    local have
    have=$("$1" --version 2>/dev/null | awk '{print $NF}') || true
    if [ "$have" != "$3" ]; then
        echo "package.sh: installing $2 $3 (cargo install --locked)" >&2
        cargo install --locked --quiet "$2" --version "$3" >&2
    fi
}
for f in "${formats[@]}"; do
    case "$f" in
        deb) need_tool cargo-deb cargo-deb "$CARGO_DEB_VERSION" ;;
        rpm) need_tool cargo-generate-rpm cargo-generate-rpm "$CARGO_GENERATE_RPM_VERSION" ;;
    esac
done
need_tool cargo-cyclonedx cargo-cyclonedx "$CARGO_CYCLONEDX_VERSION"
[ "$tools_only" = yes ] && exit 0

if [ "$build" = yes ]; then
    cargo build --locked --profile "$profile" -p eks-node-agent >&2
fi
binary="$target_dir/$profile_dir/eks-node-agent"
if [ ! -x "$binary" ]; then
    echo "package.sh: $binary is missing; build it or drop --no-build" >&2
    exit 1
fi

# The SBOM: agent/eks-node-agent_bin.cdx.json (an asset of both packages, see agent/Cargo.toml).
cargo cyclonedx --manifest-path agent/Cargo.toml --format json --describe binaries \
    --spec-version 1.5 --no-build-deps --quiet >&2
[ -s agent/eks-node-agent_bin.cdx.json ] || { echo "package.sh: cargo cyclonedx wrote no SBOM" >&2; exit 1; }

version=$(cargo metadata --no-deps --format-version 1 --locked |
    python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="eks-node-agent"))')

for f in "${formats[@]}"; do
    case "$f" in
        deb)
            deb="$out/eks-node-agent_${version}-1_$(dpkg --print-architecture 2>/dev/null || echo amd64).deb"
            # The binary is stripped either way: the dev profile's debug info would make the
            # package ten times larger and is of no use on a node.
            # The dev profile gets fast compression: it is the test suite's package.
            fast=(); [ "$profile" = dev ] && fast=(--fast)
            cargo deb -p eks-node-agent --no-build --profile "$profile" --strip "${fast[@]}" \
                --deb-version "${version}-1" --output "$deb" >&2
            echo "$deb"
            if [ "$lint" = yes ]; then
                # Overrides, each with its reason, ship in the package
                # (packaging/debian/lintian-overrides). Errors fail; warnings are reported.
                lintian --fail-on error "$deb" >&2
            fi
            ;;
        rpm)
            # The dev profile's package is uncompressed: it exists for the tests only.
            compress=zstd; [ "$profile" = dev ] && compress=none
            rpm_out=$(cargo generate-rpm -p agent --profile "$profile" --target-dir "$target_dir" \
                --payload-compress "$compress" -o "$out/" 2>&1 >/dev/null) || { echo "$rpm_out" >&2; exit 1; }
            rpm=$(ls -t "$out"/eks-node-agent-"$version"-*.rpm | head -n1)
            echo "$rpm"
            if [ "$lint" = yes ] && command -v rpmlint >/dev/null; then
                # Findings are reviewed in packaging/README.md; rpmlint exits non-zero on any.
                rpmlint "$rpm" >&2 || true
            fi
            ;;
    esac
done
