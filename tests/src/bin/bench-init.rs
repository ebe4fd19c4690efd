//! Benchmark of a full `eks-node-agent init --root DIR --skip run` as a process: user data and
//! metadata from the IMDS emulator (1 ms per request), DescribeInstances and DescribeCluster
//! from moto behind a proxy adding 30 ms per round trip. Not part of `cargo test`; run with
//!
//! ```text
//! scripts/test.sh --no-run && EKS_AGENT_TEST_VENV=$PWD/.venv cargo run -p eks-node-agent-tests --bin bench-init -- [ITERATIONS]
//! ```
//!
//! Prints wall time and each phase's own time (from the agent's JSON logs), and the floor: the
//! round trips `init` cannot avoid (IMDS token, user data, two levels of metadata reads, then
//! one EC2/EKS round trip, concurrently).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use eks_node_agent_tests::aws_world;
use eks_node_agent_tests::imds::ImdsEmulator;
use eks_node_agent_tests::latency_proxy::LatencyProxy;
use eks_node_agent_tests::moto::Moto;

const IMDS_LATENCY: Duration = Duration::from_millis(1);
const AWS_RTT: Duration = Duration::from_millis(30);
const DEFAULT_ITERATIONS: usize = 20;
const CLUSTER: &str = "bench-cluster";
/// Sequential IMDS round trips: token, user data, identity/mac/domain..., interface paths.
const IMDS_SEQUENTIAL_ROUND_TRIPS: u32 = 4;

fn agent_binary() -> PathBuf {
    let me = std::env::current_exe().expect("current exe");
    me.with_file_name("eks-node-agent")
}

fn stats(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let pick = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!(
        "median {:>7.1}  min {:>7.1}  p90 {:>7.1}  max {:>7.1}",
        pick(0.5),
        v[0],
        pick(0.9),
        v[v.len() - 1]
    )
}

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(DEFAULT_ITERATIONS);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let moto = Moto::start();
    let world = rt.block_on(async {
        let world = aws_world::run_instance(&moto.endpoint(), "m5.large").await;
        aws_world::create_cluster(&moto.endpoint(), CLUSTER).await;
        world
    });
    let upstream: SocketAddr = ([127, 0, 0, 1], moto.port()).into();
    let proxy = LatencyProxy::start(upstream, AWS_RTT);
    let emu = ImdsEmulator::start(world.instance.clone());
    emu.set_delay(IMDS_LATENCY);
    let user_data = format!(
        "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: {CLUSTER}\n    certificateAuthority: {}\n",
        eks_node_agent_tests::test_ca_b64()
    );
    emu.set_user_data(Some(user_data.into_bytes()));
    let bin = agent_binary();
    println!(
        "init benchmark: {} ; IMDS {IMDS_LATENCY:?}/request, EC2/EKS {AWS_RTT:?} RTT, {iterations} runs",
        bin.display()
    );

    let mut wall = Vec::new();
    let mut phases: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    let mut second = Vec::new();
    for i in 0..=iterations {
        let root = tempfile::tempdir().expect("tempdir");
        let run = || {
            let t = Instant::now();
            let out = Command::new(&bin)
                .args([
                    "--log-format",
                    "json",
                    "init",
                    "--skip",
                    "run",
                    "-c",
                    "imds://user-data",
                    "--root",
                ])
                .arg(root.path())
                .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", emu.endpoint())
                .env("AWS_ENDPOINT_URL_EC2", proxy.endpoint())
                .env("AWS_ENDPOINT_URL_EKS", proxy.endpoint())
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .env("AWS_CONFIG_FILE", "/dev/null")
                .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
                .output()
                .expect("run init");
            let elapsed = t.elapsed();
            assert!(
                out.status.success(),
                "init failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            (elapsed, String::from_utf8_lossy(&out.stderr).into_owned())
        };
        let (elapsed, logs) = run();
        if i == 0 {
            continue; // warm-up: moto's first answers, page cache
        }
        wall.push(elapsed.as_secs_f64() * 1e3);
        for line in logs.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let Some(phase) = v.get("phase").and_then(|p| p.as_str()) else {
                continue;
            };
            let ms = v.get("duration_ms").and_then(|d| d.as_f64()).or_else(|| {
                v.get("duration_us")
                    .and_then(|d| d.as_f64())
                    .map(|us| us / 1e3)
            });
            if let Some(ms) = ms {
                phases.entry(phase.to_owned()).or_default().push(ms);
            }
        }
        let (again, _) = run();
        second.push(again.as_secs_f64() * 1e3);
    }
    let floor = IMDS_LATENCY.as_secs_f64() * 1e3 * f64::from(IMDS_SEQUENTIAL_ROUND_TRIPS)
        + AWS_RTT.as_secs_f64() * 1e3;
    println!(
        "{:<44} {}",
        "init --root (wall, ms, fresh root)",
        stats(wall.clone())
    );
    for (phase, v) in phases {
        println!("{:<44} {}", format!("  phase {phase} (ms)"), stats(v));
    }
    println!(
        "{:<44} {}",
        "init --root again (wall, ms, nothing changes)",
        stats(second)
    );
    let mut w = wall;
    w.sort_by(f64::total_cmp);
    let median = w[(w.len() - 1) / 2];
    println!(
        "round-trip floor {floor:.1} ms; median wall / floor = {:.2}",
        median / floor
    );
}
