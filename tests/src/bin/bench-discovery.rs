//! Benchmark of `facts::discover`: the IMDS emulator with 1 ms latency per request, moto behind
//! a proxy adding 30 ms per round trip for EC2/EKS. Not part of `cargo test`; run with
//!
//! ```text
//! EKS_AGENT_TEST_VENV=$PWD/.venv cargo run --release -p eks-node-agent-tests --bin bench-discovery -- [ITERATIONS]
//! ```
//!
//! Prints min/median/p90/max per scenario, and the same EC2/EKS calls made by the AWS CLI
//! through the same proxy for comparison.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use eks_node_agent::facts::imds::Imds;
use eks_node_agent::facts::{self, DiscoverInput, Limits};
use eks_node_agent_tests::aws_world;
use eks_node_agent_tests::imds::ImdsEmulator;
use eks_node_agent_tests::latency_proxy::LatencyProxy;
use eks_node_agent_tests::moto::Moto;

/// Latency of each IMDS request.
const IMDS_LATENCY: Duration = Duration::from_millis(1);
/// Round-trip latency added in front of moto.
const AWS_RTT: Duration = Duration::from_millis(30);
/// Default iterations per scenario.
const DEFAULT_ITERATIONS: usize = 30;
const CLUSTER: &str = "bench-cluster";

const CA_PEM: &[u8] = eks_node_agent_tests::TEST_CA_PEM.as_bytes();

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name:<70} n={:<3} min {:>7.1?}  median {:>7.1?}  p90 {:>7.1?}  max {:>7.1?}",
        samples.len(),
        samples[0],
        pick(0.5),
        pick(0.9),
        samples[samples.len() - 1]
    );
}

async fn time_discover(imds: &Imds, input: &DiscoverInput) -> Duration {
    let t = Instant::now();
    facts::discover(imds, input).await.expect("discovery");
    t.elapsed()
}

/// The same two API calls made by the AWS CLI (a Python process per call), through the proxy.
fn awscli(endpoint: &str, args: &[&str]) -> Duration {
    let t = Instant::now();
    let status = std::process::Command::new(eks_node_agent_tests::venv_bin("aws"))
        .args([
            "--endpoint-url",
            endpoint,
            "--region",
            aws_world::REGION,
            "--output",
            "json",
        ])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run aws");
    assert!(status.success(), "aws {args:?} failed");
    t.elapsed()
}

#[tokio::main]
async fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(DEFAULT_ITERATIONS);
    let moto = Moto::start();
    let world = aws_world::run_instance(&moto.endpoint(), "m5.large").await;
    aws_world::create_cluster(&moto.endpoint(), CLUSTER).await;
    let upstream: SocketAddr = ([127, 0, 0, 1], moto.port()).into();
    let proxy = LatencyProxy::start(upstream, AWS_RTT);
    let emu = ImdsEmulator::start(world.instance.clone());
    emu.set_delay(IMDS_LATENCY);

    let base = DiscoverInput {
        cluster_name: CLUSTER.to_string(),
        certificate_authority: Some(CA_PEM.to_vec()),
        ec2_endpoint: Some(proxy.endpoint()),
        eks_endpoint: Some(proxy.endpoint()),
        credentials: Some(aws_world::credentials()),
        limits: Limits {
            deadline: Duration::from_secs(60),
            ..Limits::default()
        },
        ..DiscoverInput::default()
    };
    let complete = DiscoverInput {
        api_server_endpoint: Some("https://example.invalid".into()),
        service_cidr: Some("10.100.0.0/16".into()),
        ..base.clone()
    };

    println!(
        "discovery benchmark: IMDS emulator {IMDS_LATENCY:?}/request, moto behind a {AWS_RTT:?} RTT proxy, {iterations} iterations"
    );
    // Warm-up (first SDK use, moto's first answers).
    let warm_imds = Imds::with_endpoint(&emu.endpoint()).expect("imds");
    time_discover(&warm_imds, &base).await;

    let mut s = Vec::new();
    for _ in 0..iterations {
        let imds = Imds::with_endpoint(&emu.endpoint()).expect("imds");
        let t = Instant::now();
        imds.instance_metadata().await.expect("imds");
        s.push(t.elapsed());
    }
    summary("IMDS only (new client: token + 16 reads)", s);

    let mut s = Vec::new();
    for _ in 0..iterations {
        let imds = Imds::with_endpoint(&emu.endpoint()).expect("imds");
        s.push(time_discover(&imds, &base).await);
    }
    summary(
        "discover, cold client (IMDS + DescribeInstances + DescribeCluster)",
        s,
    );

    let mut s = Vec::new();
    for _ in 0..iterations {
        s.push(time_discover(&warm_imds, &base).await);
    }
    summary(
        "discover, cached IMDS token (+ DescribeInstances + DescribeCluster)",
        s,
    );

    let mut s = Vec::new();
    for _ in 0..iterations {
        let imds = Imds::with_endpoint(&emu.endpoint()).expect("imds");
        s.push(time_discover(&imds, &complete).await);
    }
    summary(
        "discover, config complete (IMDS + DescribeInstances only)",
        s,
    );

    let peer_iterations = iterations.min(5);
    let mut ec2 = Vec::new();
    let mut eks = Vec::new();
    for _ in 0..peer_iterations {
        ec2.push(awscli(
            &proxy.endpoint(),
            &[
                "ec2",
                "describe-instances",
                "--instance-ids",
                &world.instance.instance_id,
            ],
        ));
        eks.push(awscli(
            &proxy.endpoint(),
            &["eks", "describe-cluster", "--name", CLUSTER],
        ));
    }
    summary("peer: aws ec2 describe-instances (awscli, same proxy)", ec2);
    summary("peer: aws eks describe-cluster (awscli, same proxy)", eks);
    println!(
        "IMDS requests served: {}, tokens issued: {}",
        emu.requests(),
        emu.tokens_issued()
    );
}
