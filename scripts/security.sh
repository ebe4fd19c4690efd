#!/usr/bin/env bash
# Security checks that are not unit tests (docs/RELIABILITY.md, "Security review"):
#   1. cargo deny: licenses, RustSec advisories, banned crates (OpenSSL), sources;
#   2. no shell is ever spawned by the agent, and TLS verification is never turned off;
#   3. every process the agent starts is listed, with where its arguments come from.
# Needs cargo-deny (`cargo install --locked cargo-deny`); the advisory database is fetched
# from GitHub by cargo-deny, so advisories are only checked where that is reachable.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0

echo "== cargo deny check (the shipped crate; the tests crate links OpenSSL through josekit)" >&2
if command -v cargo-deny >/dev/null; then
    deny=(cargo deny --exclude eks-node-agent-tests)
    "${deny[@]}" check licenses bans sources || status=1
    # Advisories need the RustSec database from GitHub; report when it cannot be fetched.
    if ! "${deny[@]}" check advisories; then
        if [ -d "$HOME/.cargo/advisory-dbs" ] && ls "$HOME/.cargo/advisory-dbs"/*/crates >/dev/null 2>&1; then
            status=1
        else
            echo "advisories NOT CHECKED: the RustSec database could not be fetched (no access to github.com)" >&2
        fi
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
# A bypass is allowed only with a reviewed justification in the four lines above it.
bypasses=$(grep -rlE 'danger_accept_invalid|dangerous\(\)|NoCertificateVerification|accept_invalid_hostnames' agent/src || true)
for f in $bypasses; do
    if awk '/TLS-BYPASS-REVIEWED/ { ok = NR }
            /danger_accept_invalid|dangerous\(\)|NoCertificateVerification|accept_invalid_hostnames/ {
                if (!ok || NR - ok > 4) { printf "%s:%d: %s\n", FILENAME, NR, $0; bad = 1 } }
            END { exit bad }' "$f"; then
        echo "reviewed exception: $f" >&2
    else
        echo "TLS verification must stay on (justify a reviewed exception with TLS-BYPASS-REVIEWED)" >&2
        status=1
    fi
done

echo "== processes the agent starts" >&2
grep -rn 'Command::new' agent/src | grep -v '#\[cfg(test)\]' >&2 || true

exit "$status"
