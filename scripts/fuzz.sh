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
ALL_TARGETS=(user_data nodeconfig bootstrap_flags kmsg imds_responses host_text cluster_info
    x509_identity mirror_manifest max_pods_expression lifecycle_notices daemon_config ecs_agent)
# FUZZ_TARGETS="a b" runs some of them (one at a time, one job, as on a shared machine).
read -r -a TARGETS <<< "${FUZZ_TARGETS:-${ALL_TARGETS[*]}}"
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
        host_text)
            printf 'Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/swapfile                               file\t\t1048572\t\t0\t\t-2\n' > "$dir/swaps"
            printf 'proc /proc proc rw,nosuid 0 0\n/dev/sda1 / ext4 rw,relatime 0 0\n' > "$dir/mounts"
            printf 'Kubernetes v1.33.1-eks-1234\ncontainerd github.com/containerd/containerd v1.7.27 05044ec0a9a75232cad458027ca83437aae3f4da\n' > "$dir/versions"
            printf 'm5.large i-0123456789abcdef0 us-west-2a my-cluster node-1 us-west-2 1.33.1 abcdef.0123456789abcdef sha256:04e58bf21ceff0a3df962ae3651ed69177457769f22858dcf1b0988a66dedfa2 v1.18.3-eksbuild.1\n' > "$dir/words"
            printf 'some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n' > "$dir/pressure" ;;
        cluster_info)
            printf '{"kind":"ConfigMap","apiVersion":"v1","data":{"kubeconfig":"apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: AAAA\n    server: https://10.0.0.10:6443\n  name: \"\"\n","jws-kubeconfig-abcdef":"eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9..AAAA"}}' > "$dir/cluster-info" ;;
        x509_identity)
            find tests/fixtures/bad-config -name 'ca-*.yaml' -exec cp -f {} "$dir/" \; 2>/dev/null || true
            printf '{"credentialSet":[{"credentials":{"accessKeyId":"AKIA","secretAccessKey":"s","sessionToken":"t","expiration":"2026-01-01T00:00:00Z"}}]}' > "$dir/session"
            printf '{"message":"Untrusted certificate. Insufficient certificate"}' > "$dir/error" ;;
        mirror_manifest)
            printf '{"version": 1, "artifacts": [{"name": "kubelet", "file": "bin/kubelet", "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "size": 4}]}\0untrusted comment: signature from minisign secret key\nRUTCtqoeNnTRgFNZeS1+mF5WMJW1T7WhF06LyfA74paErzJnIgMdhQ3QpoNqRzBElCOp+jZqPXKWCh8d2my+Zm7CC7TIm7Bu1wI=\ntrusted comment: eks-node-agent mirror manifest\nwBrI56M3jahFXNqA9bIWoYb1pAkS7I1gwSs2muCG1TsGC/PwqmsitmT6qH8C3a6UUdV5JF0CKSu/foXLZI8gBQ==\n' > "$dir/signed" ;;
        max_pods_expression)
            for e in 'max_pods' '(default_enis * (ips_per_eni - 1)) + 2' 'max_pods > 100 ? 100 : max_pods * 2' "int(double(max_pods) * 0.9)" "[1, 2].map(x, x * max_pods).size()"; do
                printf '%s' "$e" > "$dir/$(printf '%s' "$e" | sha256sum | cut -c1-12)"
            done ;;
        lifecycle_notices)
            printf '{"action": "terminate", "time": "2026-12-06T08:22:00Z"}' > "$dir/spot"
            printf '{"noticeTime": "2026-12-06T08:02:00Z"}' > "$dir/rebalance"
            printf '[{"NotBefore": "21 Jan 2027 09:00:43 GMT", "Code": "system-reboot", "Description": "scheduled reboot", "EventId": "instance-event-0d59937288b749b32", "NotAfter": "21 Jan 2027 09:17:23 GMT", "State": "active"}]' > "$dir/scheduled" ;;
        daemon_config)
            printf '[checks.kernel]\ninterval_secs = 30\n[severity]\nSoftLockup = "fatal"\n[taints.KernelReady]\neffect = "NoSchedule"\n[coexistence]\nnode_monitoring_agent = "auto"\n[lifecycle]\nenabled = "auto"\n[lifecycle.drain]\ndelete_before_deadline_secs = 30\n' > "$dir/basic"
            find tests -name '*.toml' -path '*daemon*' -exec cp -f {} "$dir/" \; 2>/dev/null || true ;;
        ecs_agent)
            printf '{"Cluster":"prod","ContainerInstanceArn":"arn:aws:ecs:us-west-2:123456789012:container-instance/prod/0123456789abcdef","Version":"Amazon ECS Agent - v1.90.0 (abcdef12)"}' > "$dir/metadata"
            printf '{"Tasks":[{"Arn":"arn:aws:ecs:us-west-2:123456789012:task/prod/1","DesiredStatus":"RUNNING","KnownStatus":"RUNNING","Family":"web","Version":"3"}]}' > "$dir/tasks"
            printf 'ECS_CLUSTER=prod\nECS_ENABLE_TASK_IAM_ROLE=true\nECS_RESERVED_MEMORY=256\nECS_ENGINE_AUTH_TYPE=dockercfg\nECS_INSTANCE_ATTRIBUTES={"stack":"prod"}\n' > "$dir/ecs.config" ;;
    esac
}

# 16 codegen units: a build that fits the machine, at a small cost in executions per second.
FUZZ_BUILD=(-O --codegen-units 16)
cargo fuzz build "${FUZZ_BUILD[@]}" >&2
echo "| target | seconds | inputs tried | coverage (edges) | corpus | crashes |"
echo "|---|---|---|---|---|---|"
for t in "${TARGETS[@]}"; do
    seed "$t"
    log="fuzz/artifacts/$t.log"
    mkdir -p "fuzz/artifacts/$t"
    set +e
    cargo fuzz run "${FUZZ_BUILD[@]}" "$t" "fuzz/corpus/$t" -- -max_total_time="$BUDGET" -rss_limit_mb=1024 \
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
