#!/usr/bin/env bash
# Security checks that are not unit tests (docs/RELIABILITY.md, "Security review"):
#   1. cargo deny: licenses, RustSec advisories, banned crates (OpenSSL), sources;
#   2. no shell is ever spawned by the agent, and TLS verification is never turned off;
#   3. every process the agent starts is listed, with where its arguments come from.
# Needs cargo-deny (`cargo install --locked cargo-deny`); the advisory database is fetched
# from GitHub by cargo-deny, so run it where that is reachable (not in the offline CI).
set -euo pipefail
cd "$(dirname "$0")/.."
status=0

echo "== cargo deny check" >&2
if command -v cargo-deny >/dev/null; then
    if [ "${1:-}" = "--offline" ]; then
        cargo deny --offline check licenses bans sources || status=1
    else
        cargo deny check || status=1
    fi
else
    echo "cargo-deny is not installed: cargo install --locked cargo-deny" >&2
    status=1
fi

echo "== no shell spawned by the agent" >&2
if grep -rnE 'Command::new\("(/bin/|/usr/bin/)?(ba)?sh"\)|"-c"' agent/src; then
    echo "the agent must not spawn a shell" >&2
    status=1
fi

echo "== TLS verification never disabled" >&2
if grep -rnE 'danger_accept_invalid|dangerous\(\)|NoCertificateVerification|accept_invalid_hostnames' agent/src \
    | grep -v 'TLS-BYPASS-REVIEWED'; then
    echo "TLS verification must stay on (mark a reviewed exception with TLS-BYPASS-REVIEWED)" >&2
    status=1
fi

echo "== processes the agent starts" >&2
grep -rn 'Command::new' agent/src | grep -v '#\[cfg(test)\]' >&2 || true

exit "$status"
