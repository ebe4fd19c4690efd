#!/usr/bin/env bash
# Runs every cargo-fuzz target for a fixed time budget and prints a Markdown table row per
# target (inputs tried, coverage, crashes). Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]
# Needs cargo-fuzz (`cargo install --locked cargo-fuzz`). The toolchain is stable Rust 1.95:
# libFuzzer's instrumentation flags are nightly-only, so RUSTC_BOOTSTRAP=1 enables them for
# this build only. Seeds come from the repository's examples and test fixtures; crashes land
# in fuzz/artifacts/<target>/ and become regression tests.
set -euo pipefail
cd "$(dirname "$0")/.."
BUDGET="${1:-60}"
TARGETS=(user_data nodeconfig bootstrap_flags kmsg imds_responses)
export RUSTC_BOOTSTRAP=1

seed() {
    local t="$1" dir="fuzz/corpus/$1"
    mkdir -p "$dir"
    case "$t" in
        user_data|nodeconfig)
            cp -f examples/*.yaml examples/*.mime "$dir/" 2>/dev/null || true
            find tests/fixtures/bad-config tests/golden/config -type f \( -name '*.yaml' -o -name '*.json' -o -name '*.mime' -o -name '*.txt' \) \
                -exec cp -f {} "$dir/" \; 2>/dev/null || true ;;
        bootstrap_flags)
            printf 'my-cluster\0--b64-cluster-ca\0Zm9v\0--apiserver-endpoint\0https://x.example.com\0--kubelet-extra-args\0--node-labels=a=b --max-pods=20' > "$dir/basic" ;;
        kmsg)
            printf '3,1234,5678901,-;Out of memory: Killed process 4242 (java) total-vm:1234kB' > "$dir/oom"
            printf '6,99,1,-;nf_conntrack: nf_conntrack: table full, dropping packet' > "$dir/conntrack"
            printf '3,7,8,-;INFO: task kworker/0:1:42 blocked for more than 120 seconds.' > "$dir/hung" ;;
        imds_responses)
            printf '{"accountId":"123456789012","architecture":"x86_64","availabilityZone":"us-west-2a","imageId":"ami-1","instanceId":"i-0123456789abcdef0","instanceType":"m5.large","pendingTime":"2026-01-01T00:00:00Z","privateIp":"10.0.0.1","region":"us-west-2","version":"2017-09-30"}' > "$dir/identity"
            printf '{"ManagedInstanceID":"mi-0123456789abcdef0","Region":"us-west-2"}' > "$dir/ssm" ;;
    esac
}

cargo fuzz build -O >&2
echo "| target | seconds | inputs tried | coverage (edges) | corpus | crashes |"
echo "|---|---|---|---|---|---|"
for t in "${TARGETS[@]}"; do
    seed "$t"
    log="fuzz/artifacts/$t.log"
    mkdir -p "fuzz/artifacts/$t"
    set +e
    cargo fuzz run -O "$t" "fuzz/corpus/$t" -- -max_total_time="$BUDGET" -rss_limit_mb=1024 \
        -max_len=65536 -timeout=10 -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" > "$log" 2>&1
    rc=$?
    set -e
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
    corpus=$(ls "fuzz/corpus/$t" | wc -l)
    crashes=$(find "fuzz/artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
    [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ] && crashes="exit $rc (see $log)"
    echo "| $t | $BUDGET | ${runs:-?} | ${cov:-?} | $corpus | $crashes |"
done
