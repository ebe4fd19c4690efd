#!/usr/bin/env bash
# Signs a mirror for `eks-node-agent install --from` (docs/install.md, "Signed mirrors"):
# manifest.json.minisig is written next to manifest.json with minisign (Ed25519 over the
# BLAKE2b hash of the manifest; the SHA-256 sums inside it then cover every artifact).
#
#   scripts/sign-mirror.sh --new-key DIR [--no-password]   # DIR/mirror.key (secret), DIR/mirror.pub
#   scripts/sign-mirror.sh MIRROR_DIR SECRET_KEY           # sign MIRROR_DIR/manifest.json
#
# Pin mirror.pub on every node as /etc/eks-node-agent/mirror.pub (or pass --trusted-key).
# Keep mirror.key off the mirror. Needs minisign (Debian/Ubuntu: apt-get install minisign).
set -euo pipefail
command -v minisign >/dev/null || { echo "sign-mirror.sh: minisign is not installed (apt-get install minisign)" >&2; exit 2; }

if [ "${1:-}" = "--new-key" ]; then
    dir="${2:?usage: sign-mirror.sh --new-key DIR [--no-password]}"
    mkdir -p "$dir"
    flags=()
    [ "${3:-}" = "--no-password" ] && flags=(-W)
    minisign -G "${flags[@]}" -p "$dir/mirror.pub" -s "$dir/mirror.key"
    chmod 600 "$dir/mirror.key"
    echo "public key (pin it on the nodes as /etc/eks-node-agent/mirror.pub): $dir/mirror.pub" >&2
    exit 0
fi

mirror="${1:?usage: sign-mirror.sh MIRROR_DIR SECRET_KEY}"
key="${2:?usage: sign-mirror.sh MIRROR_DIR SECRET_KEY}"
manifest="$mirror/manifest.json"
[ -f "$manifest" ] || { echo "sign-mirror.sh: $manifest does not exist (docs/install.md has its format)" >&2; exit 2; }
# The trusted comment is signed too: it records what was signed and when.
minisign -S -s "$key" -m "$manifest" -x "$mirror/manifest.json.minisig" \
    -t "eks-node-agent mirror manifest, signed $(date -u +%Y-%m-%dT%H:%M:%SZ)" >/dev/null
echo "signed: $mirror/manifest.json.minisig" >&2
