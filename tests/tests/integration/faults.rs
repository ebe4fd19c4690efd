//! Fault campaign (docs/RELIABILITY.md lists every row): EC2/EKS throttling and server errors
//! from moto behind a fault-injecting proxy, and a full or read-only disk under `init`.
//! Deterministic: the faults are a fixed sequence, not random.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use eks_node_agent::facts::imds::{Imds, RetryPolicy};
use eks_node_agent::facts::{self, DiscoverInput, Limits};
use eks_node_agent_tests::aws_world;
use eks_node_agent_tests::fault_proxy::{Fault, FaultProxy, Service};
use eks_node_agent_tests::imds::ImdsEmulator;
use eks_node_agent_tests::moto::Moto;

use crate::agent_bin;

const CLUSTER: &str = "fault-cluster";

fn imds_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        attempt_timeout: Duration::from_secs(2),
        total_deadline: Duration::from_secs(20),
    }
}

fn input(ec2: &str, eks: &str) -> DiscoverInput {
    DiscoverInput {
        cluster_name: CLUSTER.to_string(),
        ec2_endpoint: Some(ec2.to_owned()),
        eks_endpoint: Some(eks.to_owned()),
        credentials: Some(aws_world::credentials()),
        certificate_authority: Some(eks_node_agent_tests::TEST_CA_PEM.as_bytes().to_vec()),
        limits: Limits {
            deadline: Duration::from_secs(120),
            ..Limits::default()
        },
        ..DiscoverInput::default()
    }
}

/// EC2 `RequestLimitExceeded` and `InternalError`, EKS `ThrottlingException` and
/// `ServerException`, and a dropped connection: the SDK's standard retry mode (backoff with
/// jitter) gets through, and the answers are the real ones from moto.
#[tokio::test]
async fn discovery_retries_through_throttling_server_errors_and_drops() {
    let moto = Moto::start();
    let world = aws_world::run_instance(&moto.endpoint(), "m5.large").await;
    aws_world::create_cluster(&moto.endpoint(), CLUSTER).await;
    let ec2 = FaultProxy::start(
        Service::Ec2,
        &moto.endpoint(),
        &[Fault::Throttle, Fault::Throttle, Fault::ServerError],
    );
    let eks = FaultProxy::start(
        Service::Eks,
        &moto.endpoint(),
        &[Fault::Throttle, Fault::Drop, Fault::ServerError],
    );
    let emu = ImdsEmulator::start(world.instance.clone());
    let imds = Imds::with_endpoint(&emu.endpoint())
        .expect("client")
        .with_policy(imds_policy());
    let facts = facts::discover(&imds, &input(&ec2.endpoint(), &eks.endpoint()))
        .await
        .expect("discovery retries through the faults");
    assert_eq!(facts.private_dns_name, world.private_dns_name);
    let cluster = facts.cluster.expect("DescribeCluster answered");
    assert_eq!(
        cluster.service_ipv4_cidr.map(|c| c.to_string()).as_deref(),
        Some(aws_world::SERVICE_CIDR)
    );
    assert_eq!((ec2.injected(), eks.injected()), (3, 3));
    assert!(ec2.forwarded() >= 1 && eks.forwarded() >= 1);
}

/// Behind a proxy (as on-prem and private-subnet nodes are): EC2 and EKS calls go through
/// it, and hosts in NO_PROXY go direct. The fault proxy, with no faults, is the forward
/// proxy here: it counts what it forwarded.
#[tokio::test]
async fn discovery_uses_the_configured_proxy_and_honours_no_proxy() {
    use eks_node_agent::net::ProxySettings;
    let moto = Moto::start();
    let world = aws_world::run_instance(&moto.endpoint(), "m5.large").await;
    aws_world::create_cluster(&moto.endpoint(), CLUSTER).await;
    let proxy = FaultProxy::start(Service::Ec2, &moto.endpoint(), &[]);
    let emu = ImdsEmulator::start(world.instance.clone());
    let imds = Imds::with_endpoint(&emu.endpoint())
        .expect("client")
        .with_policy(imds_policy());
    let mut through = input(&moto.endpoint(), &moto.endpoint());
    through.proxy = Some(ProxySettings {
        http: Some(proxy.endpoint()),
        ..ProxySettings::default()
    });
    let facts = facts::discover(&imds, &through)
        .await
        .expect("discovery through the proxy");
    assert_eq!(facts.private_dns_name, world.private_dns_name);
    assert!(
        proxy.forwarded() >= 2,
        "DescribeInstances and DescribeCluster went through the proxy: {}",
        proxy.forwarded()
    );

    let before = proxy.forwarded();
    let mut direct = input(&moto.endpoint(), &moto.endpoint());
    direct.proxy = Some(ProxySettings {
        http: Some(proxy.endpoint()),
        no_proxy: Some("127.0.0.1,localhost".into()),
        ..ProxySettings::default()
    });
    facts::discover(&imds, &direct)
        .await
        .expect("discovery direct");
    assert_eq!(
        proxy.forwarded(),
        before,
        "NO_PROXY hosts are reached directly"
    );
    assert!(emu.requests() > 0, "IMDS is always reached directly");
}

/// Throttling that never ends: discovery gives up after the SDK's attempts (bounded time),
/// and the error names the operation and the service's error code.
#[tokio::test]
async fn persistent_throttling_fails_in_bounded_time_with_the_error_code() {
    let moto = Moto::start();
    let world = aws_world::run_instance(&moto.endpoint(), "m5.large").await;
    aws_world::create_cluster(&moto.endpoint(), CLUSTER).await;
    let ec2 = FaultProxy::start(Service::Ec2, &moto.endpoint(), &[]);
    ec2.always(Fault::Throttle);
    let emu = ImdsEmulator::start(world.instance.clone());
    let imds = Imds::with_endpoint(&emu.endpoint())
        .expect("client")
        .with_policy(imds_policy());
    let started = Instant::now();
    let err = facts::discover(&imds, &input(&ec2.endpoint(), &moto.endpoint()))
        .await
        .expect_err("EC2 never answers");
    let elapsed = started.elapsed();
    let chain = format!("{err:#}") + &error_chain(&err);
    assert!(
        chain.contains("DescribeInstances") && chain.contains("RequestLimitExceeded"),
        "{chain}"
    );
    assert_eq!(
        ec2.injected(),
        u64::from(facts::AWS_MAX_ATTEMPTS),
        "one request per attempt, no more"
    );
    // Backoff is bounded (the SDK caps it at 20 s per attempt); 5 attempts take well under
    // the operation timeout.
    assert!(elapsed < facts::AWS_OPERATION_TIMEOUT, "{elapsed:?}");
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = String::new();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(" / ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

/// A tmpfs of `size` mounted at `dir` for the test (root only); unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .ok()?
            .success();
        ok.then(|| Tmpfs(dir.to_owned()))
    }

    fn remount_read_only(&self) {
        let ok = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .status()
            .expect("mount")
            .success();
        assert!(ok, "remount read-only");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn hybrid_config(dir: &Path) -> String {
    let path = dir.join("hybrid.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: c1\n    region: us-west-2\n    apiServerEndpoint: https://c1.example.com\n    certificateAuthority: {}\n    cidr: 172.16.0.0/16\n  kubelet:\n    flags: [--node-ip=192.168.10.7]\n  hybrid:\n    iamRolesAnywhere:\n      nodeName: node-7\n      trustAnchorArn: arn:aws:rolesanywhere:us-west-2:123456789012:trust-anchor/a\n      profileArn: arn:aws:rolesanywhere:us-west-2:123456789012:profile/b\n      roleArn: arn:aws:iam::123456789012:role/Node\n      certificatePath: /nonexistent/cert.pem\n      privateKeyPath: /nonexistent/key.pem\n",
            eks_node_agent_tests::test_ca_b64()
        ),
    )
    .expect("write config");
    format!("file://{}", path.display())
}

fn init_under(root: &Path, src: &str) -> std::process::Output {
    Command::new(agent_bin())
        .args(["init", "--root", root.to_str().expect("utf-8"), "-c", src])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run agent")
}

/// Every regular file under `dir` with its size (temp files would show up here).
fn tree(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let m = e.metadata().expect("metadata");
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path().display().to_string(), m.size()));
            }
        }
    }
    out.sort();
    out
}

/// A disk that fills up during apply: `init` fails with a clear error naming the file, and
/// no partial or temporary file is left; with space again the next run completes.
#[test]
fn full_disk_during_apply_fails_clearly_and_leaves_no_partial_file() {
    if !eks_node_agent_tests::e2e::is_root() {
        eprintln!("SKIPPED: mounting a small tmpfs needs root (CI runs as root)");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = hybrid_config(tmp.path());
    let root = tmp.path().join("root");
    // 24 KiB: room for a few of the rendered files, not all of them.
    let fs = Tmpfs::mount(&root, "24k").expect("mount tmpfs");
    let out = init_under(&root, &src);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("No space left on device") && err.contains(root.to_str().expect("utf-8")),
        "the error names the file and the cause: {err}"
    );
    let files = tree(&root);
    assert!(
        files
            .iter()
            .all(|(p, _)| !p.contains(".eks-node-agent-tmp.")),
        "no temporary file left: {files:?}"
    );
    // Every file that exists is whole: the same bytes a complete run writes.
    drop(fs);
    let full = tmp.path().join("full");
    let out = init_under(&full, &src);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _fs = Tmpfs::mount(&root, "24k").expect("mount tmpfs");
    let _ = init_under(&root, &src);
    for (path, size) in tree(&root) {
        let rel = Path::new(&path).strip_prefix(&root).expect("under root");
        if rel.starts_with("var/lib/eks-node-agent") {
            // The agent's own record of what it wrote differs between the two runs; it
            // must still be whole JSON.
            let text = std::fs::read_to_string(&path).expect("read record");
            if path.ends_with(".json") {
                serde_json::from_str::<serde_json::Value>(&text)
                    .unwrap_or_else(|e| panic!("{path} is not whole JSON: {e}"));
            }
            continue;
        }
        let whole = std::fs::metadata(full.join(rel)).expect("same file in a full run");
        assert_eq!(size, whole.len(), "{path} is partial");
    }
}

/// A read-only root: `init` fails before changing anything, naming the path and the cause.
#[test]
fn read_only_root_fails_clearly_and_changes_nothing() {
    if !eks_node_agent_tests::e2e::is_root() {
        eprintln!("SKIPPED: remounting a tmpfs read-only needs root (CI runs as root)");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = hybrid_config(tmp.path());
    let root = tmp.path().join("root");
    let fs = Tmpfs::mount(&root, "4m").expect("mount tmpfs");
    std::fs::create_dir_all(root.join("etc")).expect("etc");
    std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").expect("hosts");
    let before = tree(&root);
    fs.remount_read_only();
    let out = init_under(&root, &src);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(tree(&root), before);
}

/// A host without CA certificates (a minimal image without ca-certificates): `init` stops
/// with a clear error instead of the AWS SDK aborting the process.
#[test]
fn missing_ca_certificates_are_a_clear_error() {
    let emu = ImdsEmulator::start(eks_node_agent_tests::imds::Instance::example());
    let tmp = tempfile::tempdir().expect("tempdir");
    let empty = tmp.path().join("empty.pem");
    std::fs::write(&empty, "").expect("write");
    let config = tmp.path().join("c.yaml");
    std::fs::write(
        &config,
        format!(
            "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: c1\n    certificateAuthority: {}\n",
            eks_node_agent_tests::test_ca_b64()
        ),
    )
    .expect("write");
    let out = Command::new(agent_bin())
        .args(["init", "--dry-run", "-c"])
        .arg(format!("file://{}", config.display()))
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", emu.endpoint())
        .env("SSL_CERT_FILE", &empty)
        .env("SSL_CERT_DIR", tmp.path().join("no-such-dir"))
        .output()
        .expect("run agent");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no CA certificates") && err.contains("ca-certificates"),
        "{err}"
    );
}
