//! `eks-node-agent status`: on this machine (not joined, no cloud) every check reports with a
//! fix and the exit code is non-zero; against the peers with good inputs it passes (moto STS
//! answering the node's presigned GetCallerIdentity, moto EKS DescribeCluster for the remote
//! node networks, the Kubernetes API emulator over HTTPS with its own CA, fake kubelet and
//! containerd on a PATH of our own, a fake /proc); with bad inputs each check fails with
//! its evidence and fix.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use eks_node_agent_tests::kube_api::KubeApi;
use eks_node_agent_tests::moto::Moto;
use eks_node_agent_tests::moto_sts::MotoSts;
use eks_node_agent_tests::{aws_world, free_port, test_ca_b64};
use serde_json::Value;

use crate::agent_bin;

/// Every check name, in output order.
const CHECKS: [&str; 16] = [
    "config",
    "credentials",
    "sts-identity",
    "api-server",
    "node-ip",
    "clock",
    "swap",
    "kubelet-version",
    "containerd-version",
    "proxy",
    "ports",
    "cni-firewall",
    "local-storage",
    "ulimits",
    "kubelet-serving-cert",
    "node",
];
const CLUSTER: &str = "status-cluster";
const SWAPS_HEADER: &str = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
const TCP_HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
/// A synchronised clock (STA_PLL | STA_NANO, TIME_OK) with 12 ms maximum error.
const CLOCK_SYNCED: &str =
    r#"{"state":0,"status":8193,"offset":150000,"maxerror":12000,"esterror":400,"tick":10000}"#;
/// An unsynchronised clock (TIME_ERROR, STA_UNSYNC).
const CLOCK_UNSYNCED: &str =
    r#"{"state":5,"status":64,"offset":0,"maxerror":16000000,"esterror":16000000,"tick":10000}"#;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn executable(path: &Path, script: &str) {
    write(path, script);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A /proc-like tree: swaps, net/tcp(6), and processes holding listening sockets.
fn fake_proc(dir: &Path, swaps: &str, listeners: &[(u16, u64, u32, &str)]) -> PathBuf {
    let proc = dir.join("proc");
    write(&proc.join("swaps"), swaps);
    let mut tcp = TCP_HEADER.to_owned();
    for (i, (port, inode, pid, comm)) in listeners.iter().enumerate() {
        tcp.push_str(&format!(
            "   {i}: 00000000:{port:04X} 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 {inode} 1 0000000000000000 100 0 0 10 0\n"
        ));
        let fd = proc.join(format!("{pid}/fd"));
        std::fs::create_dir_all(&fd).unwrap();
        std::os::unix::fs::symlink(format!("socket:[{inode}]"), fd.join("7")).unwrap();
        write(&proc.join(format!("{pid}/comm")), &format!("{comm}\n"));
    }
    write(&proc.join("net/tcp"), &tcp);
    write(&proc.join("net/tcp6"), TCP_HEADER);
    proc
}

/// kubelet and containerd that print what the real ones print for `--version`.
fn fake_bin(dir: &Path, kubelet: &str, containerd: &str) -> PathBuf {
    let bin = dir.join("bin");
    executable(
        &bin.join("kubelet"),
        &format!("#!/bin/sh\n[ \"$1\" = --version ] || exit 64\necho 'Kubernetes {kubelet}'\n"),
    );
    executable(
        &bin.join("containerd"),
        &format!(
            "#!/bin/sh\n[ \"$1\" = --version ] || exit 64\necho 'containerd github.com/containerd/containerd/v2 {containerd} 75cb2b7193e4e490e9fbdc236c0e811ccaba3376'\n"
        ),
    );
    bin
}

/// A hybrid (SSM) NodeConfig for the emulated API server.
fn hybrid_config(endpoint: &str, ca_b64: &str, no_proxy: &str) -> String {
    format!(
        "apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  cluster:
    name: {CLUSTER}
    region: us-west-2
    apiServerEndpoint: {endpoint}
    certificateAuthority: {ca_b64}
    cidr: {cidr}
  hybrid:
    ssm:
      activationCode: EXAMPLEcode+0123456789
      activationId: 3f1e2a4b-1c2d-4e5f-8a9b-0c1d2e3f4a5b
  instance:
    environment:
      default:
        HTTPS_PROXY: http://proxyuser:proxysecret@127.0.0.1:3128
        NO_PROXY: {no_proxy}
",
        cidr = aws_world::SERVICE_CIDR
    )
}

/// Runs `status` with a clean environment plus `env`.
fn status(args: &[&str], env: &[(&str, String)]) -> Output {
    status_under(&[], args, env)
}

/// Runs `status` as the last arguments of `wrapper` (e.g. a command that enters a network
/// namespace), with a clean environment plus `env`.
fn status_under(wrapper: &[&str], args: &[&str], env: &[(&str, String)]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let agent = agent_bin();
    let mut cmd = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(&agent);
            c
        }
        None => Command::new(&agent),
    };
    cmd.arg("status")
        .args(args)
        .env_clear()
        .env("HOME", home.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", home.path().join("no-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.path().join("no-credentials"),
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn json_checks(out: &Output) -> Vec<Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "status --output json is not JSON ({e}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let checks = value["checks"].as_array().unwrap().clone();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, CHECKS, "{stdout}");
    for c in &checks {
        assert!(
            matches!(c["status"].as_str(), Some("ok" | "warn" | "fail")),
            "{c}"
        );
        assert!(!c["evidence"].as_str().unwrap().is_empty(), "{c}");
        assert!(!c["fix"].as_str().unwrap().is_empty(), "{c}");
    }
    checks
}

fn check<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    checks.iter().find(|c| c["name"] == name).unwrap()
}

fn statuses(checks: &[Value]) -> Vec<(String, String)> {
    checks
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn on_this_machine_every_check_reports_a_fix_and_the_exit_is_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let dead = free_port();
    let config = dir.path().join("nodeconfig.yaml");
    write(
        &config,
        &format!(
            "apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  cluster:
    name: {CLUSTER}
    apiServerEndpoint: https://127.0.0.1:{dead}
    certificateAuthority: {ca}
    cidr: 10.100.0.0/16
",
            ca = test_ca_b64()
        ),
    );
    let source = format!("file://{}", config.display());
    let env = [
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        ("AWS_REGION", "us-west-2".to_owned()),
        ("AWS_ENDPOINT_URL_STS", format!("http://127.0.0.1:{dead}")),
        ("AWS_ENDPOINT_URL_EKS", format!("http://127.0.0.1:{dead}")),
    ];

    let out = status(&["-c", &source], &env);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    for name in CHECKS {
        let i = lines
            .iter()
            .position(|l| {
                ["ok   ", "warn ", "fail "]
                    .iter()
                    .any(|s| l.starts_with(&format!("{s}{name}: ")))
            })
            .unwrap_or_else(|| panic!("no status line for {name}:\n{text}"));
        let fix = lines.get(i + 1).copied().unwrap_or_default();
        assert!(
            fix.starts_with("     fix: ") && fix.len() > "     fix: ".len(),
            "no fix line after {name}:\n{text}"
        );
    }

    let out = status(&["-c", &source, "--output", "json"], &env);
    assert_eq!(out.status.code(), Some(1));
    let checks = json_checks(&out);
    // No credentials here (IMDS off, no keys, no profile), and nothing listens on the port.
    assert_eq!(check(&checks, "credentials")["status"], "fail");
    assert_eq!(check(&checks, "sts-identity")["status"], "fail");
    let api = check(&checks, "api-server");
    assert_eq!(api["status"], "fail");
    assert!(
        api["evidence"].as_str().unwrap().contains("unreachable"),
        "{api}"
    );
    assert!(
        check(&checks, "node-ip")["evidence"]
            .as_str()
            .unwrap()
            .starts_with("skipped")
    );
}

#[test]
fn passes_against_the_peers_with_good_inputs() {
    let rt = runtime();
    let moto = Moto::start();
    let sts = MotoSts::start();
    rt.block_on(aws_world::create_cluster(&moto.endpoint(), CLUSTER));
    let api = rt.block_on(KubeApi::start("unused-token"));
    api.set_version("v1.33.5-eks-3025e55");

    let dir = tempfile::tempdir().unwrap();
    let ca = base64::engine::general_purpose::STANDARD.encode(&api.ca_pem);
    let no_proxy = format!("localhost,127.0.0.1,{}", aws_world::SERVICE_CIDR);
    let config = dir.path().join("nodeconfig.yaml");
    write(&config, &hybrid_config(&api.url, &ca, &no_proxy));
    // The drop-in `init` writes for the same environment.
    write(
        &dir.path()
            .join("host/etc/systemd/system/kubelet.service.d/40-eks-node-agent-environment.conf"),
        &format!(
            "[Service]\nEnvironment=\"HTTPS_PROXY=http://proxyuser:proxysecret@127.0.0.1:3128\"\nEnvironment=\"NO_PROXY={no_proxy}\"\n"
        ),
    );
    let credentials = dir.path().join("ssm-credentials");
    write(
        &credentials,
        "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
    );
    let clock = dir.path().join("timex.json");
    write(&clock, CLOCK_SYNCED);
    let proc = fake_proc(dir.path(), SWAPS_HEADER, &[(10250, 4242, 900, "kubelet")]);
    let bin = fake_bin(dir.path(), "v1.31.2-eks-1a2b3c4", "v2.1.4");

    let source = format!("file://{}", config.display());
    let host_root = dir.path().join("host");
    let args = [
        "-c",
        source.as_str(),
        "--output",
        "json",
        "--node-ip",
        "10.200.7.9",
        "--proc-root",
        proc.to_str().unwrap(),
        "--host-root",
        host_root.to_str().unwrap(),
        "--clock-state",
        clock.to_str().unwrap(),
    ];
    let env = [
        ("PATH", bin.display().to_string()),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            credentials.display().to_string(),
        ),
        ("AWS_ENDPOINT_URL_STS", sts.endpoint()),
        ("AWS_ENDPOINT_URL_EKS", moto.endpoint()),
    ];
    let out = status(&args, &env);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let checks = json_checks(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, s) in statuses(&checks) {
        assert_eq!(s, "ok", "{name}: {stdout}");
    }
    let evidence = |name: &str| {
        check(&checks, name)["evidence"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        evidence("credentials").contains("SSM credentials file"),
        "{stdout}"
    );
    // moto's STS answered the presigned GetCallerIdentity the node's token carries.
    assert!(
        evidence("sts-identity").contains("arn:aws:sts::123456789012:"),
        "{stdout}"
    );
    assert!(
        evidence("api-server").contains("v1.33.5-eks-3025e55"),
        "{stdout}"
    );
    assert!(
        evidence("node-ip").contains(aws_world::REMOTE_NODE_CIDR),
        "{stdout}"
    );
    assert!(evidence("node-ip").contains("DescribeCluster"), "{stdout}");
    assert!(evidence("kubelet-version").contains("v1.31.2"), "{stdout}");
    assert!(
        evidence("containerd-version").contains("v2.1.4"),
        "{stdout}"
    );
    assert!(
        evidence("ports").contains("10250 held by kubelet (pid 900)"),
        "{stdout}"
    );
    // Secrets stay out: neither the proxy password nor the secret key appear.
    for secret in ["proxysecret", "wJalrXUtnFEMI", "EXAMPLEcode"] {
        assert!(!stdout.contains(secret), "{secret} leaked: {stdout}");
    }
    // The emulator saw the anonymous /version and nothing else.
    let paths: Vec<String> = api.requests().iter().map(|r| r.path.clone()).collect();
    assert!(paths.iter().all(|p| p == "/version"), "{paths:?}");
}

#[test]
fn each_failure_names_its_evidence_and_fix() {
    let rt = runtime();
    let sts = MotoSts::start();
    let api = rt.block_on(KubeApi::start("unused-token"));
    api.set_version("v1.32.9-eks-113cf36");

    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("ssm-credentials");
    write(
        &credentials,
        "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
    );
    let clock = dir.path().join("timex.json");
    write(&clock, CLOCK_UNSYNCED);
    let proc = fake_proc(
        dir.path(),
        &format!(
            "{SWAPS_HEADER}/swapfile                               file\t\t2097148\t\t0\t\t-2\n"
        ),
        &[(10250, 4242, 900, "kubelet"), (10256, 5151, 901, "nginx")],
    );
    let bin = fake_bin(dir.path(), "v1.33.0", "v1.6.20");
    let source = |config: &Path| format!("file://{}", config.display());
    let env = [
        ("PATH", bin.display().to_string()),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            credentials.display().to_string(),
        ),
        ("AWS_ENDPOINT_URL_STS", sts.endpoint()),
    ];

    // A CA that did not sign the server's certificate; NO_PROXY without 127.0.0.1; remote
    // node networks that do not hold the address routing to the API server (127.0.0.1).
    let wrong = dir.path().join("wrong-ca.yaml");
    write(
        &wrong,
        &hybrid_config(&api.url, &test_ca_b64(), "localhost"),
    );
    let src = source(&wrong);
    // Instance-store disks whose setup failed at this boot (init's record names the command
    // and the device).
    let disks = dir.path().join("local-storage.yaml");
    write(
        &disks,
        "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  instance:\n    localStorage:\n      strategy: Mount\n",
    );
    write(
        &dir.path()
            .join("host/run/eks-node-agent/local-storage.json"),
        r#"{"strategy":"Mount","summary":"Mount: 2 disks, each at /mnt/k8s-disks/<n>","done":["mkfs.xfs -K -l su=8b -m uuid=0b8e3a52-1c1d-4b4e-9f3a-1d2c3b4a5f60 /dev/nvme1n1"],"error":"local storage: `mkfs.xfs -K -l su=8b -m uuid=5c1e7f0a-2b3c-4d5e-8f9a-0b1c2d3e4f5a /dev/nvme2n1` failed: exit 1: Filesystem must be larger than 300MB.","mounts":[]}"#,
    );
    let disks_src = source(&disks);
    // ufw enabled with only SSH allowed: the kubelet's port is closed to the control plane.
    write(&dir.path().join("host/etc/ufw/ufw.conf"), "ENABLED=yes\n");
    write(
        &dir.path().join("host/etc/ufw/user.rules"),
        "### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in\n-A ufw-user-input -p tcp --dport 22 -j ACCEPT\n",
    );
    // A kubelet serving certificate from another cluster's CA (a host moved between clusters).
    write(
        &dir.path().join("host/etc/kubernetes/kubelet/config.json"),
        r#"{"kind": "KubeletConfiguration", "serverTLSBootstrap": true}"#,
    );
    write(
        &dir.path()
            .join("host/var/lib/kubelet/pki/kubelet-server-current.pem"),
        &serving_cert_from_another_ca(),
    );
    let out = status(
        &[
            "-c",
            &src,
            "-c",
            &disks_src,
            "-o",
            "json",
            "--remote-node-network",
            "192.168.0.0/16",
            "--proc-root",
            proc.to_str().unwrap(),
            "--host-root",
            dir.path().join("host").to_str().unwrap(),
            "--clock-state",
            clock.to_str().unwrap(),
        ],
        &env,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let checks = json_checks(&out);
    let got = statuses(&checks);
    let want: Vec<(String, String)> = [
        ("config", "ok"),
        ("credentials", "ok"),
        ("sts-identity", "ok"),
        ("api-server", "fail"),
        ("node-ip", "fail"),
        ("clock", "fail"),
        ("swap", "fail"),
        ("kubelet-version", "warn"),
        ("containerd-version", "fail"),
        ("proxy", "fail"),
        ("ports", "fail"),
        ("cni-firewall", "fail"),
        ("local-storage", "fail"),
        ("ulimits", "ok"),
        ("kubelet-serving-cert", "fail"),
        ("node", "ok"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(got, want, "{stdout}");
    let field = |name: &str, f: &str| check(&checks, name)[f].as_str().unwrap().to_owned();
    assert!(
        field("local-storage", "evidence").contains("mkfs.xfs")
            && field("local-storage", "evidence").contains("/dev/nvme2n1"),
        "{stdout}"
    );
    assert!(
        field("api-server", "evidence").contains("TLS verification failed"),
        "{stdout}"
    );
    assert!(
        field("api-server", "fix").contains("certificateAuthority"),
        "{stdout}"
    );
    assert!(
        field("node-ip", "evidence").contains("127.0.0.1"),
        "{stdout}"
    );
    assert!(
        field("node-ip", "evidence").contains("routes to the API server"),
        "{stdout}"
    );
    assert!(
        field("clock", "evidence").starts_with("not synchronized"),
        "{stdout}"
    );
    assert!(field("swap", "evidence").contains("/swapfile"), "{stdout}");
    assert!(field("swap", "fix").contains("swapoff -a"), "{stdout}");
    assert!(
        field("containerd-version", "evidence").contains("v1.6.20"),
        "{stdout}"
    );
    assert!(field("proxy", "fix").contains("127.0.0.1"), "{stdout}");
    assert!(!stdout.contains("proxysecret"), "{stdout}");
    assert!(
        field("ports", "evidence").contains("10256 (kube-proxy healthz) held by nginx (pid 901)"),
        "{stdout}"
    );
    assert!(
        field("kubelet-serving-cert", "evidence").contains("issuer CN=old-cluster-ca")
            && field("kubelet-serving-cert", "evidence")
                .contains("spec.cluster.certificateAuthority"),
        "{stdout}"
    );
    assert!(
        field("kubelet-serving-cert", "fix").contains("kubelet-server-current.pem"),
        "{stdout}"
    );
    assert!(!stdout.contains("PRIVATE KEY"), "{stdout}");
    assert!(
        field("cni-firewall", "evidence").contains(
            "ufw: 10250/tcp (kubelet) closed (no ufw rule in /etc/ufw/user.rules; default input policy DROP)"
        ),
        "{stdout}"
    );
    assert!(
        field("cni-firewall", "fix").contains("ufw allow 10250/tcp"),
        "{stdout}"
    );

    // The right CA: the server's version is known, and this kubelet is newer than it.
    let right = dir.path().join("right-ca.yaml");
    let ca = base64::engine::general_purpose::STANDARD.encode(&api.ca_pem);
    write(
        &right,
        &hybrid_config(&api.url, &ca, "localhost,127.0.0.1,172.20.0.0/16"),
    );
    let src = source(&right);
    let out = status(
        &[
            "-c",
            &src,
            "-o",
            "json",
            "--remote-node-network",
            "127.0.0.0/8",
            "--proc-root",
            proc.to_str().unwrap(),
            "--host-root",
            dir.path().join("host").to_str().unwrap(),
            "--clock-state",
            clock.to_str().unwrap(),
        ],
        &env,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let checks = json_checks(&out);
    assert_eq!(check(&checks, "api-server")["status"], "ok", "{stdout}");
    assert_eq!(check(&checks, "node-ip")["status"], "ok", "{stdout}");
    let kubelet = check(&checks, "kubelet-version");
    assert_eq!(kubelet["status"], "fail", "{stdout}");
    assert!(
        kubelet["evidence"]
            .as_str()
            .unwrap()
            .contains("newer than the API server"),
        "{stdout}"
    );
    assert!(
        kubelet["fix"].as_str().unwrap().contains("1.32"),
        "{stdout}"
    );
    assert_eq!(out.status.code(), Some(1));
}

/// A kubelet serving certificate for 127.0.0.1 signed by a CA of another cluster, with its
/// key after it as the kubelet keeps them.
fn serving_cert_from_another_ca() -> String {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "old-cluster-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, "system:node:node-a");
    p.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
    format!("{}{}", cert.pem(), key.serialize_pem())
}

#[test]
fn bad_configuration_exits_2_and_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.yaml");
    write(
        &config,
        "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: c\n    cidr: not-a-cidr\n",
    );
    let src = format!("file://{}", config.display());
    let out = status(&["-c", &src], &[("PATH", String::new())]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("spec.cluster.cidr"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "nothing is checked with a bad config"
    );
    let out = status(&["-c", &src, "--remote-node-network", "nope"], &[]);
    assert_eq!(out.status.code(), Some(2));

    // JSON output is JSON even then: one failing `config` check with every problem.
    write(
        &config,
        "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: c\n    cidr: not-a-cidr\n    apiServerEndpoint: not-a-url\n",
    );
    for src in [
        src.clone(),
        format!("file://{}/missing.yaml", dir.path().display()),
    ] {
        let out = status(&["-c", &src, "-o", "json"], &[("PATH", String::new())]);
        assert_eq!(out.status.code(), Some(2), "{src}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let value: Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
        let checks = value["checks"].as_array().unwrap();
        assert_eq!(checks.len(), 1, "{stdout}");
        assert_eq!(checks[0]["name"], "config");
        assert_eq!(checks[0]["status"], "fail");
        assert_eq!(value["summary"]["fail"], 1);
        assert!(!checks[0]["fix"].as_str().unwrap().is_empty());
        if src.ends_with("bad.yaml") {
            let paths: Vec<&str> = checks[0]["problems"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["path"].as_str().unwrap())
                .collect();
            assert!(paths.contains(&"spec.cluster.cidr"), "{stdout}");
            assert!(
                paths.contains(&"spec.cluster.apiServerEndpoint"),
                "{stdout}"
            );
        } else {
            assert!(
                checks[0]["evidence"]
                    .as_str()
                    .unwrap()
                    .contains("missing.yaml"),
                "{stdout}"
            );
        }
    }
}

#[test]
fn roles_anywhere_credentials_come_from_the_emulator() {
    use eks_node_agent_tests::rolesanywhere::{Config, Emulator, KeyKind, TestPki};
    let rt = runtime();
    let pki = TestPki::new("node", KeyKind::P256);
    let ra_config = Config::for_pki(&pki);
    let ra = Emulator::start(ra_config.clone());
    let sts = MotoSts::start();
    let api = rt.block_on(KubeApi::start("unused-token"));

    let dir = tempfile::tempdir().unwrap();
    let leaf = pki.issue_valid("node-ra-1", KeyKind::P256);
    // The certificate file carries the intermediate after the leaf, as nodeadm reads it.
    let cert = dir.path().join("server.pem");
    write(&cert, &format!("{}{}", leaf.cert_pem, leaf.chain_pem));
    let key = dir.path().join("server.key");
    write(&key, &leaf.key_pem);
    let ca = base64::engine::general_purpose::STANDARD.encode(&api.ca_pem);
    let config = dir.path().join("nodeconfig.yaml");
    write(
        &config,
        &format!(
            "apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  cluster:
    name: {CLUSTER}
    region: us-west-2
    apiServerEndpoint: {url}
    certificateAuthority: {ca}
    cidr: {cidr}
  hybrid:
    iamRolesAnywhere:
      nodeName: node-ra-1
      trustAnchorArn: {ta}
      profileArn: {profile}
      roleArn: {role}
      certificatePath: {cert}
      privateKeyPath: {key}
",
            url = api.url,
            cidr = aws_world::SERVICE_CIDR,
            ta = ra_config.trust_anchor_arn,
            profile = ra_config.profile_arn,
            role = ra_config.role_arns[0],
            cert = cert.display(),
            key = key.display(),
        ),
    );
    let clock = dir.path().join("timex.json");
    write(&clock, CLOCK_SYNCED);
    let proc = fake_proc(dir.path(), SWAPS_HEADER, &[]);
    let bin = fake_bin(dir.path(), "v1.33.1", "v1.7.27");
    let src = format!("file://{}", config.display());
    let out = status(
        &[
            "-c",
            &src,
            "-o",
            "json",
            "--rolesanywhere-endpoint",
            &ra.endpoint(),
            "--remote-node-network",
            "127.0.0.0/8",
            "--proc-root",
            proc.to_str().unwrap(),
            "--host-root",
            dir.path().join("host").to_str().unwrap(),
            "--clock-state",
            clock.to_str().unwrap(),
        ],
        &[
            ("PATH", bin.display().to_string()),
            ("AWS_CA_BUNDLE", ra.ca_bundle().display().to_string()),
            ("AWS_ENDPOINT_URL_STS", sts.endpoint()),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let checks = json_checks(&out);
    let creds = check(&checks, "credentials");
    assert_eq!(creds["status"], "ok", "{stdout}");
    assert!(
        creds["evidence"]
            .as_str()
            .unwrap()
            .contains("IAM Roles Anywhere with certificate"),
        "{stdout}"
    );
    assert!(
        !ra.requests().is_empty(),
        "no CreateSession reached the emulator"
    );
    // moto's STS does not map presigned credentials to the Roles Anywhere session, so the
    // identity it answers is not a session of roleArn: a warning naming the expected role.
    let sts_check = check(&checks, "sts-identity");
    assert_eq!(sts_check["status"], "warn", "{stdout}");
    assert!(
        sts_check["evidence"]
            .as_str()
            .unwrap()
            .contains(&ra_config.role_arns[0]),
        "{stdout}"
    );
    for secret in [&ra_config.secret_access_key, &ra_config.session_token] {
        assert!(!stdout.contains(secret.as_str()), "secret leaked: {stdout}");
    }
    // Warnings do not fail the run.
    assert_eq!(out.status.code(), Some(0), "{stdout}");
}

/// An EC2 node: region from the instance identity document and credentials from the
/// instance role, both through the IMDSv2 emulator; on EC2 NO_PROXY must cover IMDS.
#[test]
fn ec2_node_uses_the_instance_role_and_needs_imds_in_no_proxy() {
    use eks_node_agent_tests::imds::{ImdsEmulator, Instance, RoleCredentials};
    let rt = runtime();
    let role_secret = "imdsRoleSecretKey0123456789abcdefghijklmn";
    let mut instance = Instance::example();
    instance.credentials = Some(RoleCredentials {
        role: "NodeInstanceRole".into(),
        access_key_id: "ASIAIMDSROLEEXAMPLE1".into(),
        secret_access_key: role_secret.into(),
        token: "IQoJb3JpZ2luX2VjEImdsRoleSessionToken".into(),
        expiration: "2099-01-01T00:00:00Z".into(),
        last_updated: "2026-11-25T00:00:00Z".into(),
    });
    let imds = ImdsEmulator::start(instance);
    let sts = MotoSts::start();
    let api = rt.block_on(KubeApi::start("unused-token"));

    let dir = tempfile::tempdir().unwrap();
    let ca = base64::engine::general_purpose::STANDARD.encode(&api.ca_pem);
    let ec2_config = |no_proxy: &str| {
        format!(
            "apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  cluster:
    name: {CLUSTER}
    apiServerEndpoint: {url}
    certificateAuthority: {ca}
    cidr: 10.100.0.0/16
  instance:
    environment:
      default:
        HTTPS_PROXY: http://127.0.0.1:3128
        NO_PROXY: {no_proxy}
",
            url = api.url
        )
    };
    let clock = dir.path().join("timex.json");
    write(&clock, CLOCK_SYNCED);
    let proc = fake_proc(dir.path(), SWAPS_HEADER, &[]);
    let bin = fake_bin(dir.path(), "v1.33.1", "v1.7.27");
    let env = [
        ("PATH", bin.display().to_string()),
        ("AWS_EC2_METADATA_DISABLED", "false".to_owned()),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint()),
        ("AWS_ENDPOINT_URL_STS", sts.endpoint()),
    ];
    let run = |no_proxy: &str| {
        let config = dir.path().join("nodeconfig.yaml");
        write(&config, &ec2_config(no_proxy));
        let src = format!("file://{}", config.display());
        status(
            &[
                "-c",
                &src,
                "-o",
                "json",
                "--proc-root",
                proc.to_str().unwrap(),
                "--host-root",
                dir.path().join("host").to_str().unwrap(),
                "--clock-state",
                clock.to_str().unwrap(),
            ],
            &env,
        )
    };

    let out = run("localhost,127.0.0.1,169.254.169.254,10.100.0.0/16");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let checks = json_checks(&out);
    for (name, s) in statuses(&checks) {
        assert_eq!(s, "ok", "{name}: {stdout}");
    }
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let creds = check(&checks, "credentials")["evidence"].as_str().unwrap();
    assert!(
        creds.contains("the default chain") && creds.contains("expire 2099-01-01T00:00:00Z"),
        "{stdout}"
    );
    assert!(
        imds.tokens_issued() > 0,
        "IMDS was not asked with an IMDSv2 token"
    );
    assert!(!stdout.contains(role_secret), "{stdout}");

    let out = run("localhost,127.0.0.1,10.100.0.0/16");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let checks = json_checks(&out);
    let proxy = check(&checks, "proxy");
    assert_eq!(proxy["status"], "fail", "{stdout}");
    assert!(
        proxy["fix"].as_str().unwrap().contains("169.254.169.254"),
        "{stdout}"
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}");
}

/// The `node` check once joined (the kubelet's kubeconfig under --host-root): against the
/// Kubernetes API emulator, a Ready Node passes, a NotReady or missing one fails with the
/// reason; before the join it is skipped. `ulimits` reads the limits of the running daemons
/// from the (fake) /proc.
#[test]
fn node_and_ulimits_checks() {
    let rt = runtime();
    let api = rt.block_on(KubeApi::start("node-token"));
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host");
    let config = dir.path().join("c.yaml");
    write(
        &config,
        "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: c\n    region: us-west-2\n",
    );
    let proc = fake_proc(dir.path(), SWAPS_HEADER, &[(10250, 4242, 77, "kubelet")]);
    write(
        &proc.join("77/limits"),
        "Limit                     Soft Limit           Hard Limit           Units     \nMax processes             unlimited            unlimited            processes \nMax open files            1024                 1048576              files     \n",
    );
    let src = format!("file://{}", config.display());
    let run = |node: &str| {
        let out = status(
            &[
                "-c",
                &src,
                "-o",
                "json",
                "--host-root",
                host.to_str().unwrap(),
                "--proc-root",
                proc.to_str().unwrap(),
                "--node-name",
                node,
                "--timeout",
                "5",
            ],
            &[("PATH", String::new())],
        );
        json_checks(&out)
    };
    let checks = run("node-a");
    let node = check(&checks, "node");
    assert_eq!(node["status"], "ok", "{node}");
    assert!(
        node["evidence"]
            .as_str()
            .unwrap()
            .starts_with("skipped: not joined"),
        "{node}"
    );
    let ulimits = check(&checks, "ulimits");
    assert_eq!(ulimits["status"], "warn", "{ulimits}");
    assert!(
        ulimits["evidence"]
            .as_str()
            .unwrap()
            .contains("kubelet open files 1024 < 65536"),
        "{ulimits}"
    );

    write(&host.join("var/lib/kubelet/kubeconfig"), &api.kubeconfig());
    let checks = run("node-a");
    let node = check(&checks, "node");
    assert_eq!(node["status"], "fail", "{node}");
    assert!(
        node["evidence"]
            .as_str()
            .unwrap()
            .contains("Node node-a does not exist"),
        "{node}"
    );
    api.add_node(
        "node-a",
        serde_json::json!([{"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "container runtime network not ready"}]),
    );
    let node = check(&run("node-a"), "node").clone();
    assert_eq!(node["status"], "fail", "{node}");
    assert!(
        node["evidence"]
            .as_str()
            .unwrap()
            .contains("Ready=False (KubeletNotReady"),
        "{node}"
    );
    api.patch_node_status(
        "node-a",
        &serde_json::json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ok"}]}}),
    );
    let node = check(&run("node-a"), "node").clone();
    assert_eq!(node["status"], "ok", "{node}");
    assert_eq!(node["evidence"], "Node node-a is Ready");
}

/// `cni-firewall` against the real `nft`: a ruleset loaded into a network namespace of the
/// test's own (`unshare -n`), read by the agent in that namespace with `nft -j`. A Cilium node
/// whose input chain drops all but SSH and the kubelet fails on the VXLAN port; opening it
/// leaves the health port, a warning; opening both passes. On the same host, firewalld's
/// permanent configuration is judged once its daemon runs (a `firewalld` process).
#[test]
fn cni_firewall_reads_the_real_nftables_ruleset_and_firewalld() {
    let nft = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("nft is missing: install nftables (scripts/test.sh does)");
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host");
    write(
        &host.join("etc/cni/net.d/05-cilium.conflist"),
        r#"{"cniVersion": "0.3.1", "name": "cilium", "plugins": [{"type": "cilium-cni", "enable-debug": false}]}"#,
    );
    let config = dir.path().join("c.yaml");
    write(
        &config,
        "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: c\n    region: us-west-2\n",
    );
    let proc = fake_proc(dir.path(), SWAPS_HEADER, &[]);
    let src = format!("file://{}", config.display());
    let path = format!(
        "{}:/usr/sbin:/usr/bin:/sbin:/bin",
        Path::new(nft).parent().unwrap().display()
    );
    let run = |open: &str| {
        let rules = dir.path().join("rules.nft");
        write(
            &rules,
            &format!(
                "table inet filter {{\n  chain input {{\n    type filter hook input priority 0; policy drop;\n    ct state vmap {{ established : accept, related : accept, invalid : drop }}\n    iifname \"lo\" accept\n    tcp dport {{ 22, 10250 }} accept\n{open}  }}\n}}\n"
            ),
        );
        let script = format!("{nft} -f \"$0\" && exec \"$@\"");
        let out = status_under(
            &[
                "unshare",
                "-n",
                "--",
                "sh",
                "-c",
                &script,
                rules.to_str().unwrap(),
            ],
            &[
                "-c",
                &src,
                "-o",
                "json",
                "--host-root",
                host.to_str().unwrap(),
                "--proc-root",
                proc.to_str().unwrap(),
                "--node-ip",
                "10.0.0.5",
                "--timeout",
                "5",
            ],
            &[("PATH", path.clone())],
        );
        check(&json_checks(&out), "cni-firewall").clone()
    };
    let fw = run("");
    assert_eq!(fw["status"], "fail", "{fw}");
    let evidence = fw["evidence"].as_str().unwrap();
    assert!(
        evidence.contains("nftables: 8472/udp (Cilium VXLAN overlay) closed (policy drop of chain inet filter input)"),
        "{fw}"
    );
    assert!(
        evidence.contains("10250/tcp (kubelet) open by rule 3 of chain inet filter input"),
        "{fw}"
    );
    assert!(evidence.contains("Cilium (05-cilium.conflist)"), "{fw}");
    assert!(
        fw["fix"]
            .as_str()
            .unwrap()
            .contains("udp dport 8472 accept"),
        "{fw}"
    );

    let fw = run("    udp dport 8472 accept\n");
    assert_eq!(fw["status"], "warn", "{fw}");
    assert!(
        fw["evidence"]
            .as_str()
            .unwrap()
            .contains("4240/tcp (Cilium health) closed"),
        "{fw}"
    );

    let fw = run("    udp dport 8472 accept\n    tcp dport 4240 ip saddr 10.0.0.0/8 accept\n");
    assert_eq!(fw["status"], "ok", "{fw}");
    assert!(
        fw["evidence"].as_str().unwrap().contains("from 10.0.0.0/8"),
        "{fw}"
    );

    // firewalld running (its process in the fake /proc), its default zone without VXLAN.
    write(&proc.join("4711/comm"), "firewalld\n");
    write(
        &host.join("etc/firewalld/firewalld.conf"),
        "DefaultZone=work\n",
    );
    write(
        &host.join("etc/firewalld/zones/work.xml"),
        r#"<?xml version="1.0" encoding="utf-8"?><zone><short>Work</short><port port="10250" protocol="tcp"/><port port="4240" protocol="tcp"/></zone>"#,
    );
    let fw = run("    udp dport 8472 accept\n    tcp dport 4240 accept\n");
    assert_eq!(fw["status"], "fail", "{fw}");
    let evidence = fw["evidence"].as_str().unwrap();
    assert!(
        evidence.contains("firewalld (zone work, the default zone, permanent configuration): 8472/udp (Cilium VXLAN overlay) closed"),
        "{fw}"
    );
    assert!(
        fw["fix"]
            .as_str()
            .unwrap()
            .contains("firewall-cmd --permanent --zone=work --add-port=8472/udp"),
        "{fw}"
    );
}
