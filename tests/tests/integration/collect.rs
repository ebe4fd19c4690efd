//! `eks-node-agent collect`: the support bundle on this machine, with a REAL systemd-journald
//! in a private mount namespace (tests/src/journald.rs) for the journal lines, the IMDS
//! emulator for the identity document, and loopback endpoints for /metrics, ipamd's and the
//! ECS agent's introspection. Every kind of secret is planted in configs, env files, logs,
//! journald lines and kernel lines (a FIFO on the namespace's /dev/kmsg), and none is found
//! in any file of the extracted bundle; the manifest lists every
//! source; a 1 GiB journal leaves the bundle under its cap; bad flags are exit 2.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use eks_node_agent_tests::imds::{ImdsEmulator, Instance, RoleCredentials};
use eks_node_agent_tests::journald;
use eks_node_agent_tests::loopback_http::{Answer, Routes};
use serde_json::Value;

use crate::agent_bin;

/// The caps of `collect` (docs/collect.md).
const MAX_SOURCE_BYTES: u64 = 32 * 1024 * 1024;
const MAX_BUNDLE_BYTES: u64 = 256 * 1024 * 1024;

/// Each secret, by kind, as planted (the part that must not appear in the bundle).
const AWS_KEY_ID: &str = "AKIAZ7QZ3PLANTED0001";
const AWS_SECRET: &str = "q8Xv2Lr9Tn4Wb7Yc1Ze6Ud3Mf5Kg0Hj/PlantedA";
const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEPlantedSessionToken0123456789abcdefXYZ==";
const EKS_TOKEN: &str = "aHR0cHM6Ly9zdHMuUGxhbnRlZEVrc1Rva2Vu";
const BOOTSTRAP_SECRET: &str = "0123456789plantd";
const ACTIVATION_CODE: &str = "Pl4ntedActivationC0de";
const PRIVATE_KEY_LINE: &str = "MIIEplantedPrivateKeyBodyLine0123456789abcdefABCDEF";
const BASIC_AUTH: &str = "cGxhbnRlZDpwYXNzd29yZA==";
const BEARER: &str = "eyJplanted.bearer.tokenValue";
const REGISTRY_PASSWORD: &str = "pl4nted-registry-passw0rd";
const IMDS_SECRET: &str = "imds-secret-key-never-in-a-bundle";
const IMDS_TOKEN: &str = "imds-session-token-never-in-a-bundle";
/// A dockercfg `auth` (base64 of user:password) in ECS_ENGINE_AUTH_DATA.
const DOCKER_AUTH: &str = "cGxhbnRlZDpkb2NrZXJjZmc=";

fn put(root: &Path, path: &str, text: &str) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A node's files with every kind of secret in them.
fn planted_root(root: &Path) {
    put(
        root,
        "/etc/eks/kubelet/environment",
        &format!(
            "NODEADM_KUBELET_ARGS=--node-ip=10.0.0.5\nAWS_ACCESS_KEY_ID={AWS_KEY_ID}\nAWS_SECRET_ACCESS_KEY={AWS_SECRET}\nAWS_SESSION_TOKEN={SESSION_TOKEN}\n"
        ),
    );
    put(
        root,
        "/var/lib/kubelet/kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nusers:\n- name: kubelet\n  user:\n    token: k8s-aws-v1.{EKS_TOKEN}\n"
        ),
    );
    put(
        root,
        "/var/lib/kubelet/bootstrap-kubeconfig",
        &format!("users:\n- name: tls-bootstrap\n  user:\n    token: plant1.{BOOTSTRAP_SECRET}\n"),
    );
    put(
        root,
        "/etc/eks-node-agent/config.d/node.yaml",
        &format!(
            "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: collect-cluster\n    region: us-west-2\n  hybrid:\n    ssm:\n      activationCode: {ACTIVATION_CODE}\n      activationId: 00000000-1111-2222-3333-444444444444\n  kubelet:\n    config:\n      staticPodURLHeader:\n        Authorization: [\"Basic {BASIC_AUTH}\"]\n"
        ),
    );
    put(
        root,
        "/etc/containerd/config.toml",
        &format!(
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry.configs.\"registry.local\".auth]\n  username = \"node\"\n  password = \"{REGISTRY_PASSWORD}\"\n"
        ),
    );
    put(
        root,
        "/etc/cni/net.d/client.key",
        &format!(
            "-----BEGIN EC PRIVATE KEY-----\n{PRIVATE_KEY_LINE}\n-----END EC PRIVATE KEY-----\n"
        ),
    );
    // An ECS container instance's files too: the agent's config, the secret one that
    // ecs.service reads second, and the agent's own log.
    put(
        root,
        "/etc/ecs/ecs.config",
        "ECS_CLUSTER=collect-ecs\nECS_ENGINE_AUTH_TYPE=dockercfg\n",
    );
    put(
        root,
        "/var/lib/ecs/ecs.config",
        &format!(
            "ECS_ENGINE_AUTH_DATA={{\"https://index.docker.io/v1/\":{{\"auth\":\"{DOCKER_AUTH}\",\"email\":\"ops@example.com\"}}}}\n"
        ),
    );
    put(
        root,
        "/var/log/ecs/ecs-agent.log",
        &format!(
            "level=info msg=\"ecs agent marker\"\nlevel=debug msg=\"credentials refreshed\" secretAccessKey={AWS_SECRET}\n"
        ),
    );
    put(
        root,
        "/var/log/aws-routed-eni/ipamd.log",
        &format!(
            "{{\"level\":\"info\",\"msg\":\"GET /v1/enis Authorization: Bearer {BEARER}\"}}\n{{\"level\":\"debug\",\"msg\":\"creds {AWS_KEY_ID} {SESSION_TOKEN}\"}}\n"
        ),
    );
}

/// Journal lines with every kind of secret, by the units that write them.
fn planted_journal_script() -> String {
    let lines = [
        ("kubelet", "kubelet marker line 42: started".to_owned()),
        (
            "kubelet",
            format!("exec plugin token k8s-aws-v1.{EKS_TOKEN}"),
        ),
        (
            "kubelet",
            format!("using AWS_SECRET_ACCESS_KEY={AWS_SECRET} and {AWS_KEY_ID}"),
        ),
        ("kubelet", format!("session {SESSION_TOKEN}")),
        (
            "kubelet",
            format!("kubeadm join --token plant1.{BOOTSTRAP_SECRET}"),
        ),
        (
            "containerd",
            format!("pull: Authorization: Basic {BASIC_AUTH}"),
        ),
        (
            "containerd",
            format!("registry password=\"{REGISTRY_PASSWORD}\""),
        ),
        (
            "amazon-ssm-agent",
            format!("amazon-ssm-agent -register -code {ACTIVATION_CODE} -id x -region us-west-2"),
        ),
        (
            "eks-node-agent",
            format!("curl -H 'Authorization: Bearer {BEARER}'"),
        ),
        (
            "eks-node-agent",
            format!("-----BEGIN PRIVATE KEY----- {PRIVATE_KEY_LINE}"),
        ),
    ];
    let mut script: String = lines
        .iter()
        .map(|(ident, line)| {
            format!(
                "printf '%s\\n' '{}' | systemd-cat -t {ident}\n",
                line.replace('\'', "'\\''")
            )
        })
        .collect();
    // Kernel lines (through the namespace's /dev/kmsg FIFO, never the host's ring).
    let kernel = [
        "kernel marker: eth0 link up".to_owned(),
        format!("Kernel command line: ro console=ttyS0 token=plant1.{BOOTSTRAP_SECRET}"),
        format!("audit: type=1400 comm=\"aws\" name=\"{AWS_KEY_ID}\" k8s-aws-v1.{EKS_TOKEN}"),
    ];
    for (seq, text) in kernel.iter().enumerate() {
        script.push_str(&journald::kmsg(6, seq as u64, text));
    }
    script
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Extracts `bundle` into `dir`: the bundle's top directory.
pub(crate) fn extract(bundle: &Path, dir: &Path) -> PathBuf {
    let out = Command::new("tar")
        .arg("xzf")
        .arg(bundle)
        .arg("-C")
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut tops: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(tops.len(), 1, "{tops:?}");
    tops.pop().unwrap()
}

/// The manifest of the bundle extracted at `top`, checked: it lists every file of the bundle
/// and nothing else, and every entry names its source.
pub(crate) fn manifest_lists_the_bundle(top: &Path) -> Value {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(top.join("manifest.json")).unwrap()).unwrap();
    let entries = manifest["files"].as_array().unwrap();
    let listed: BTreeSet<String> = entries
        .iter()
        .filter_map(|e| e["file"].as_str().map(str::to_owned))
        .collect();
    let mut in_bundle = files(top);
    in_bundle.remove("manifest.json");
    assert_eq!(listed, in_bundle, "the manifest and the bundle differ");
    for e in entries {
        assert!(!e["source"].as_str().unwrap().is_empty(), "{e}");
        assert!(e["file"].is_string() || e["error"].is_string(), "{e}");
    }
    manifest
}

/// No file under `top` holds any of `secrets` (grep over the extracted files).
pub(crate) fn no_secret_in(top: &Path, secrets: &[&str]) {
    let grep = Command::new("grep")
        .arg("-rlF")
        .args(secrets.iter().flat_map(|s| ["-e", s]))
        .arg(top)
        .output()
        .unwrap();
    assert_eq!(
        grep.status.code(),
        Some(1),
        "secrets found in: {}",
        String::from_utf8_lossy(&grep.stdout)
    );
}

/// Every file under `dir`, relative.
fn files(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out
}

#[test]
fn collect_lists_every_source_and_leaves_no_secret_in_any_file() {
    if let Some(why) = journald::unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    planted_root(&root);
    let mut instance = Instance::example();
    instance.credentials = Some(RoleCredentials {
        role: "node-role".into(),
        access_key_id: "ASIAIMDSNEVERINBUNDLE".into(),
        secret_access_key: IMDS_SECRET.into(),
        token: IMDS_TOKEN.into(),
        expiration: "2099-01-01T00:00:00Z".into(),
        last_updated: "2025-01-01T00:00:00Z".into(),
    });
    let imds = ImdsEmulator::start(instance.clone());
    let endpoints = Routes::start(&[
        (
            "/metrics",
            Answer::Body(
                200,
                "# TYPE eksnode_kubelet_up gauge\neksnode_kubelet_up 1\n".into(),
            ),
        ),
        (
            "/v1/enis",
            Answer::Body(200, "{\"ENIs\":{\"eni-1\":{}}}".into()),
        ),
        ("/v1/eni-configs", Answer::Body(404, "not found".into())),
        (
            "/v1/metadata",
            Answer::Body(
                200,
                "{\"Cluster\":\"collect-ecs\",\"ContainerInstanceArn\":\"arn:aws:ecs:us-west-2:123456789012:container-instance/collect-ecs/0123456789abcdef\",\"Version\":\"Amazon ECS Agent - v1.90.0 (abcdef12)\"}".into(),
            ),
        ),
        ("/v1/tasks", Answer::Body(200, "{\"Tasks\":[]}".into())),
    ]);
    let bundle = tmp.path().join("out/bundle.tar.gz");
    std::fs::create_dir_all(bundle.parent().unwrap()).unwrap();
    let script = format!(
        "{}for i in $(seq 100); do journalctl -t eks-node-agent -o cat | grep -q 'BEGIN PRIVATE KEY' && journalctl --dmesg -o cat | grep -q 'audit: type=1400' && break; sleep 0.1; done\n\"$AGENT\" collect --output \"$BUNDLE\" --since 1h --root \"$ROOT\" -c \"file://$ROOT/etc/eks-node-agent/config.d/\" --metrics-url \"$METRICS\" --ipamd-url \"$IPAMD\" --ecs-introspection \"$IPAMD\"\n",
        planted_journal_script()
    );
    let base = format!("http://127.0.0.1:{}", endpoints.port());
    let out = journald::run(
        tmp.path(),
        journald::BASE_CONF,
        &script,
        &[
            ("AGENT", agent_bin().display().to_string()),
            ("BUNDLE", bundle.display().to_string()),
            ("ROOT", root.display().to_string()),
            ("METRICS", format!("{base}/metrics")),
            ("IPAMD", base.clone()),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint()),
            ("AWS_EC2_METADATA_DISABLED", "false".into()),
            (
                "AWS_CONFIG_FILE",
                "/nonexistent/eks-agent-test/config".into(),
            ),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("wrote "), "{}", stderr(&out));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&bundle).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    let x = tmp.path().join("x");
    std::fs::create_dir(&x).unwrap();
    let top = extract(&bundle, &x);
    let in_bundle = files(&top);

    let manifest = manifest_lists_the_bundle(&top);
    let entries = manifest["files"].as_array().unwrap();
    let source_of = |file: &str| -> &Value {
        entries
            .iter()
            .find(|e| e["file"] == file)
            .unwrap_or_else(|| panic!("{file} not in the manifest: {manifest:#}"))
    };
    for file in [
        "journal/kubelet.log",
        "journal/containerd.log",
        "journal/amazon-ssm-agent.log",
        "journal/eks-node-agent.log",
        "journal/kernel.log",
        "journal/docker.log",
        "config/ecs/ecs.config",
        "config/ecs/var-lib-ecs.config",
        "logs/ecs/ecs-agent.log",
        "ecs/agent-metadata.json",
        "ecs/agent-tasks.json",
        "status.json",
        "metrics.txt",
        "imds/instance-identity.json",
        "cni/ipamd-enis.json",
        "config/kubelet/environment",
        "config/kubelet/kubeconfig",
        "config/containerd/config.toml",
        "config/eks-node-agent/nodeconfig.json",
        "config/eks-node-agent/config.d/node.yaml",
        "config/cni/client.key",
        "logs/aws-routed-eni/ipamd.log",
        "system/sysctl.txt",
        "system/mounts",
        "system/lsblk.json",
        "network/interfaces.txt",
        "network/routes.txt",
        "network/rules.txt",
        "network/conntrack-count",
        "versions/eks-node-agent.txt",
    ] {
        assert!(in_bundle.contains(file), "{file} missing: {in_bundle:#?}");
        let _ = source_of(file);
    }
    assert!(
        source_of("journal/kubelet.log")["source"]
            .as_str()
            .unwrap()
            .starts_with("journalctl")
    );
    // Sources that fail are listed with their error, and the bundle went on.
    let eni_configs = entries
        .iter()
        .find(|e| e["source"].as_str().unwrap().ends_with("/v1/eni-configs"))
        .unwrap();
    assert!(
        eni_configs["error"].as_str().unwrap().contains("404"),
        "{eni_configs}"
    );

    let read = |f: &str| std::fs::read_to_string(top.join(f)).unwrap();
    assert!(read("journal/kubelet.log").contains("kubelet marker line 42: started"));
    assert!(read("journal/kernel.log").contains("kernel marker: eth0 link up"));
    assert!(read("journal/kernel.log").contains("audit: type=1400"));
    assert!(read("logs/ecs/ecs-agent.log").contains("ecs agent marker"));
    assert!(read("ecs/agent-metadata.json").contains("container-instance/collect-ecs"));
    assert!(read("metrics.txt").contains("eksnode_kubelet_up 1"));
    let identity: Value = serde_json::from_str(&read("imds/instance-identity.json")).unwrap();
    assert_eq!(identity["instanceId"], instance.instance_id.as_str());
    let status: Value = serde_json::from_str(&read("status.json")).unwrap();
    assert!(status["checks"].is_array(), "{status}");
    assert!(read("config/eks-node-agent/nodeconfig.json").contains("collect-cluster"));
    assert!(read("config/kubelet/environment").contains("AWS_SECRET_ACCESS_KEY=<redacted>"));

    // No secret in any file (grep over the extracted files).
    let secrets = [
        AWS_KEY_ID,
        AWS_SECRET,
        SESSION_TOKEN,
        EKS_TOKEN,
        BOOTSTRAP_SECRET,
        ACTIVATION_CODE,
        PRIVATE_KEY_LINE,
        BASIC_AUTH,
        BEARER,
        REGISTRY_PASSWORD,
        IMDS_SECRET,
        IMDS_TOKEN,
        DOCKER_AUTH,
    ];
    no_secret_in(&top, &secrets);
    // The secrets were there to find: each source file of the tree holds some.
    let planted = Command::new("grep")
        .arg("-rlF")
        .args(secrets.iter().flat_map(|s| ["-e", s]))
        .arg(&root)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&planted.stdout).lines().count(),
        9,
        "{}",
        String::from_utf8_lossy(&planted.stdout)
    );
}

#[test]
fn a_1_gib_journal_leaves_the_bundle_under_its_cap() {
    if let Some(why) = journald::unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle.tar.gz");
    // 768 MiB of random bytes as base64: 1 GiB of text, stored uncompressed by journald.
    let conf = format!(
        "{}Compress=no\nRuntimeMaxUse=3G\nRuntimeMaxFileSize=512M\nLineMax=1M\n",
        journald::BASE_CONF
    );
    // One stream, so that the marker is the last entry journald stores.
    let script = "{ head -c 805306368 /dev/urandom | base64 -w 16384; printf 'the newest kubelet line\\n'; } | systemd-cat -t kubelet\n\
        for i in $(seq 600); do journalctl -t kubelet -n 1 -o cat | grep -q 'the newest kubelet line' && break; sleep 0.1; done\n\
        du -sb /run/log/journal >&2\n\
        \"$AGENT\" collect --output \"$BUNDLE\" --since 1h --root \"$ROOT\" -c \"file://$ROOT/none.yaml\" --metrics-url http://127.0.0.1:1/metrics --ipamd-url http://127.0.0.1:1\n";
    let out = journald::run(
        tmp.path(),
        &conf,
        script,
        &[
            ("AGENT", agent_bin().display().to_string()),
            ("BUNDLE", bundle.display().to_string()),
            ("ROOT", tmp.path().display().to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let journal_bytes: u64 = stderr(&out)
        .lines()
        .find(|l| l.ends_with("/run/log/journal"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(journal_bytes >= 1024 * 1024 * 1024, "{journal_bytes}");
    let size = std::fs::metadata(&bundle).unwrap().len();
    assert!(size < MAX_BUNDLE_BYTES, "{size}");
    let x = tmp.path().join("x");
    std::fs::create_dir(&x).unwrap();
    let top = extract(&bundle, &x);
    let log = top.join("journal/kubelet.log");
    let len = std::fs::metadata(&log).unwrap().len();
    assert!(
        len <= MAX_SOURCE_BYTES && len > MAX_SOURCE_BYTES / 2,
        "{len}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.trim_end().ends_with("the newest kubelet line"),
        "the newest entries are kept: ...{}",
        &text[text.len().saturating_sub(300)..]
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(top.join("manifest.json")).unwrap()).unwrap();
    let entry = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["file"] == "journal/kubelet.log")
        .unwrap();
    assert!(
        entry["truncated"]
            .as_str()
            .unwrap()
            .contains("older entries left out"),
        "{entry}"
    );
    assert_eq!(manifest["caps"]["bundle_bytes"], MAX_BUNDLE_BYTES);
    assert_eq!(manifest["caps"]["source_bytes"], MAX_SOURCE_BYTES);
}

#[test]
fn bad_since_and_an_output_in_a_missing_directory_are_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(agent_bin())
        .args(["collect", "--since", "5 weeks", "--output"])
        .arg(tmp.path().join("b.tar.gz"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--since \"5 weeks\""),
        "{}",
        stderr(&out)
    );
    let missing = tmp.path().join("no/such/dir/b.tar.gz");
    let out = Command::new(agent_bin())
        .args(["collect", "--output"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "the directory {} does not exist",
            tmp.path().join("no/such/dir").display()
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nothing written"
    );
}
