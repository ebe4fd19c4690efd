#!/usr/bin/env bash
# Security checks that are not unit tests (docs/RELIABILITY.md, "Security review"):
#   1. cargo deny: RustSec advisories (offline, against the snapshot of the advisory database
#      in ../shared/reference/advisory-db, or EKS_AGENT_ADVISORY_DB), licenses, banned crates
#      (OpenSSL), sources;
#   2. no shell is ever spawned by the agent, and TLS verification is never turned off;
#   3. every process the agent starts is listed, with where its arguments come from.
# Installs cargo-deny (pinned, --locked) when it is missing. No network is needed for the
# advisories: the snapshot is read in place and laid out under target/advisory-dbs/ as a git
# repository, the form cargo-deny reads with --offline (see its SNAPSHOT.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
CARGO_DENY_VERSION=0.20.2
# cargo-deny's directory name for the default https://github.com/rustsec/advisory-db URL.
DB_NAME=advisory-db-3157b0e258782691
SNAPSHOT="${EKS_AGENT_ADVISORY_DB:-../shared/reference/advisory-db}"
DB_ROOT=target/advisory-dbs

if ! command -v cargo-deny >/dev/null || [ "$(cargo deny --version | awk '{print $2}')" != "$CARGO_DENY_VERSION" ]; then
    echo "== installing cargo-deny $CARGO_DENY_VERSION" >&2
    cargo install --locked "cargo-deny@$CARGO_DENY_VERSION" >&2
fi
deny=(cargo deny --offline --exclude eks-node-agent-tests)

echo "== RustSec advisories (offline snapshot)" >&2
if [ ! -f "$SNAPSHOT/SNAPSHOT.txt" ]; then
    echo "advisories NOT CHECKED: no snapshot at $SNAPSHOT (set EKS_AGENT_ADVISORY_DB to the advisory-db directory)" >&2
    status=1
else
    snapshot_line=$(head -n1 "$SNAPSHOT/SNAPSHOT.txt")
    db="$DB_ROOT/$DB_NAME"
    # Rebuilt when the snapshot changes; a plain copy of the files, committed once.
    if [ "$(cat "$db/.snapshot" 2>/dev/null || true)" != "$snapshot_line" ]; then
        rm -rf "$db"
        mkdir -p "$DB_ROOT"
        cp -r "$SNAPSHOT" "$db"
        git -C "$db" init -q
        git -C "$db" add -A
        git -C "$db" -c user.name=security.sh -c user.email=security.sh@localhost \
            commit -q -m "$snapshot_line"
        echo "$snapshot_line" > "$db/.snapshot"
    fi
    # cargo-deny's --offline also makes its `cargo metadata` offline: the crates must be in
    # cargo's cache (they are after a build; `cargo fetch` otherwise, from crates.io).
    cargo fetch --locked >/dev/null 2>&1 || true
    echo "advisory database: $snapshot_line" >&2
    if "${deny[@]}" check advisories; then
        echo "advisories checked against the snapshot: $snapshot_line" >&2
    else
        status=1
    fi
fi

echo "== cargo deny check licenses bans sources (the shipped crate; the tests crate links OpenSSL through josekit)" >&2
"${deny[@]}" check licenses bans sources || status=1

echo "== no shell spawned by the agent" >&2
# Shipped code only: a file's top-level `#[cfg(test)] mod tests { ... }` (rustfmt puts its
# closing brace in column 0) is skipped, so a test may run `sh -c` to fake a tool's output.
shipped_lines() {
    find agent/src -name '*.rs' -print0 | sort -z | xargs -0 awk '
        FNR == 1 { skip = 0; pending = 0 }
        pending && /^mod [a-z_]+ \{/ { skip = 1 }
        { pending = 0 }
        /^#\[cfg\(test\)\]$/ { pending = 1 }
        !skip { printf "%s:%d:%s\n", FILENAME, FNR, $0 }
        skip && /^\}$/ { skip = 0 }'
}
if shipped_lines | grep -E 'Command::new\("(/bin/|/usr/bin/)?(ba)?sh"\)|"-c"'; then
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
shipped_lines | grep 'Command::new' >&2 || true

exit "$status"
