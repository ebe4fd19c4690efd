//! `init` end to end against the emulators with injected latency (IMDS emulator answering
//! after 1 ms, moto behind a proxy adding 30 ms per round trip): total and per phase against
//! the round-trip floor; cold start to the first IMDS connection; growth with the NodeConfig.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use eks_node_agent_tests::aws_world;
use eks_node_agent_tests::imds::ImdsEmulator;
use eks_node_agent_tests::latency_proxy::LatencyProxy;
use eks_node_agent_tests::moto::Moto;

use crate::proc::{Guard, check, first_line, timed};
use crate::report::{Report, Table, mib};
use crate::stats::Summary;

/// Latency the IMDS emulator adds to every answer.
pub const IMDS_LATENCY: Duration = Duration::from_millis(1);
/// Round trip the proxy adds in front of moto (EC2 and EKS APIs).
pub const AWS_RTT: Duration = Duration::from_millis(30);
const CLUSTER: &str = "bench-cluster";
/// The round trips `init` cannot avoid, one after the other: IMDS token, user data (phase
/// `sources`), then the metadata reads (identity document, MAC), then the interface's paths;
/// then DescribeInstances and DescribeCluster, which do not depend on each other (one
/// round trip when made concurrently).
const SOURCES_IMDS_ROUND_TRIPS: u32 = 2;
const DISCOVER_IMDS_ROUND_TRIPS: u32 = 2;
const DISCOVER_AWS_ROUND_TRIPS: u32 = 1;
/// The target, as the report words it.
pub const TARGET: &str = "`init` within 3x of its round-trip floor";
/// The target: `init` within this many times its round-trip floor.
pub const TARGET_FLOOR_RATIO: f64 = 3.0;
/// How long a cold start may take to reach IMDS before the run is abandoned.
const FIRST_CALL_LIMIT: Duration = Duration::from_secs(20);
/// Sizes of the growth experiments (drop-ins: with the base document, at most the 64 NodeConfig
/// documents a load accepts).
const DROP_IN_COUNTS: &[usize] = &[1, 10, 30, 63];
const FLAG_COUNTS: &[usize] = &[1, 50, 200, 500];
/// The phases `init --skip run` logs, in order.
const PHASE_ORDER: &[&str] = &["sources", "discover", "render", "config"];
/// Runs per growth point.
const GROWTH_RUNS: usize = 5;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Moto with one instance and one cluster, the latency proxy, and the IMDS emulator.
pub struct World {
    _moto: Moto,
    proxy: LatencyProxy,
    pub imds: ImdsEmulator,
    instance_id: String,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("World")
    }
}

fn user_data(extra_flags: usize) -> String {
    let mut s = format!(
        "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: {CLUSTER}\n    certificateAuthority: {}\n",
        eks_node_agent_tests::test_ca_b64()
    );
    if extra_flags > 0 {
        s.push_str("  kubelet:\n    flags:\n");
        for i in 0..extra_flags {
            s.push_str(&format!(
                "      - --node-labels=bench.example.com/flag-{i}=value-{i}\n"
            ));
        }
    }
    s
}

impl World {
    pub fn start() -> Result<World> {
        // Moto::start panics without the venv, and a release build aborts on panic.
        let moto_server = eks_node_agent_tests::venv().join("bin/moto_server");
        if !moto_server.exists() {
            bail!(
                "{} is missing: scripts/bench.sh creates the venv (or set EKS_AGENT_TEST_VENV)",
                moto_server.display()
            );
        }
        let rt = tokio::runtime::Runtime::new()?;
        let moto = Moto::start();
        let world = rt.block_on(async {
            let world = aws_world::run_instance(&moto.endpoint(), "m5.large").await;
            aws_world::create_cluster(&moto.endpoint(), CLUSTER).await;
            world
        });
        let upstream: SocketAddr = ([127, 0, 0, 1], moto.port()).into();
        let proxy = LatencyProxy::start(upstream, AWS_RTT);
        let imds = ImdsEmulator::start(world.instance.clone());
        imds.set_delay(IMDS_LATENCY);
        imds.set_user_data(Some(user_data(0).into_bytes()));
        Ok(World {
            _moto: moto,
            proxy,
            imds,
            instance_id: world.instance.instance_id.clone(),
            rt,
        })
    }

    fn env(&self, imds_endpoint: &str) -> Vec<(String, String)> {
        [
            ("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds_endpoint),
            ("AWS_ENDPOINT_URL_EC2", &self.proxy.endpoint()),
            ("AWS_ENDPOINT_URL_EKS", &self.proxy.endpoint()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

/// One `init --root` run: wall ms, peak RSS KiB, phase -> ms, IMDS requests.
struct InitRun {
    wall_ms: f64,
    rss_kib: f64,
    phases: BTreeMap<String, f64>,
    imds_requests: u64,
}

fn init_once(
    world: &World,
    agent: &Path,
    root: &Path,
    extra_sources: &[String],
) -> Result<InitRun> {
    let mut args: Vec<String> = [
        "--log-format",
        "json",
        "init",
        "--skip",
        "run",
        "-c",
        "imds://user-data",
    ]
    .map(str::to_owned)
    .to_vec();
    for s in extra_sources {
        args.push("-c".into());
        args.push(s.clone());
    }
    args.push("--root".into());
    args.push(root.display().to_string());
    let before = world.imds.requests();
    let t = timed(agent, &args, &world.env(&world.imds.endpoint()))?;
    check("eks-node-agent init", &t)?;
    let mut phases = BTreeMap::new();
    for line in String::from_utf8_lossy(&t.output.stderr).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let find = |k: &str| v.get(k).or_else(|| v.get("fields").and_then(|f| f.get(k)));
        let Some(phase) = find("phase").and_then(|p| p.as_str()) else {
            continue;
        };
        let ms = find("duration_ms")
            .and_then(serde_json::Value::as_f64)
            .or_else(|| {
                find("duration_us")
                    .and_then(serde_json::Value::as_f64)
                    .map(|us| us / 1e3)
            });
        if let Some(ms) = ms {
            phases.insert(phase.to_owned(), ms);
        }
    }
    Ok(InitRun {
        wall_ms: t.wall_ms,
        rss_kib: t.max_rss_kib,
        phases,
        imds_requests: world.imds.requests() - before,
    })
}

/// DescribeInstances and DescribeCluster made concurrently through the proxy by warm SDK
/// clients in this process: the round trip plus moto's own time to answer, which no client
/// can go below here. Milliseconds per attempt.
fn peer_round_trip_ms(world: &World, runs: usize) -> Result<Vec<f64>> {
    world.rt.block_on(async {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(aws_world::REGION))
            .credentials_provider(aws_world::credentials())
            .endpoint_url(world.proxy.endpoint())
            .load()
            .await;
        let ec2 = aws_sdk_ec2::Client::new(&config);
        let eks = aws_sdk_eks::Client::new(&config);
        let mut out = Vec::with_capacity(runs);
        for i in 0..=runs {
            let t = Instant::now();
            let (a, b) = tokio::join!(
                ec2.describe_instances()
                    .instance_ids(world.instance_id.clone())
                    .send(),
                eks.describe_cluster().name(CLUSTER).send()
            );
            a.context("DescribeInstances from moto")?;
            b.context("DescribeCluster from moto")?;
            if i > 0 {
                out.push(ms(t.elapsed()));
            }
        }
        Ok(out)
    })
}

fn floor_ms() -> (f64, f64, f64) {
    let sources = ms(IMDS_LATENCY) * f64::from(SOURCES_IMDS_ROUND_TRIPS);
    let discover = ms(IMDS_LATENCY) * f64::from(DISCOVER_IMDS_ROUND_TRIPS)
        + ms(AWS_RTT) * f64::from(DISCOVER_AWS_ROUND_TRIPS);
    (sources, discover, sources + discover)
}

pub fn run(report: &mut Report, world: &World, agent: &Path, runs: usize) -> Result<()> {
    let mut fresh = Vec::new();
    let mut again = Vec::new();
    for i in 0..=runs {
        let root = tempfile::tempdir()?;
        let first = init_once(world, agent, root.path(), &[])?;
        let second = init_once(world, agent, root.path(), &[])?;
        if i > 0 {
            // run 0 warms moto's answers and the page cache
            fresh.push(first);
            again.push(second);
        }
    }
    let (f_sources, f_discover, floor) = floor_ms();
    let peer = Summary::of(&peer_round_trip_ms(world, runs)?);
    let imds_floor =
        ms(IMDS_LATENCY) * f64::from(SOURCES_IMDS_ROUND_TRIPS + DISCOVER_IMDS_ROUND_TRIPS);
    let emulated_floor = imds_floor + peer.median;
    let wall = Summary::of(&fresh.iter().map(|r| r.wall_ms).collect::<Vec<_>>());
    let rss = Summary::of(&fresh.iter().map(|r| mib(r.rss_kib)).collect::<Vec<_>>());
    let mut t = Table::new(&[
        "what (ms)",
        "median (p10–p90)",
        "min–max",
        "floor",
        "median / floor",
    ]);
    t.row(&[
        "`init --root`, fresh root: wall time".into(),
        wall.cell(1),
        wall.range(1),
        format!("{floor:.0}"),
        format!("{:.2}", wall.median / floor),
    ]);
    let phase_floor = |p: &str| match p {
        "sources" => Some(f_sources),
        "discover" => Some(f_discover),
        "render" | "config" => Some(0.0),
        _ => None,
    };
    // The phases in the order `init` runs them, then any the agent adds later.
    let mut names: Vec<String> = PHASE_ORDER.iter().map(|p| (*p).to_owned()).collect();
    for r in &fresh {
        for k in r.phases.keys() {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    names.retain(|n| fresh.iter().any(|r| r.phases.contains_key(n)));
    let mut phase_sum = 0.0;
    for name in &names {
        let s = Summary::of(
            &fresh
                .iter()
                .filter_map(|r| r.phases.get(name).copied())
                .collect::<Vec<_>>(),
        );
        phase_sum += s.median;
        let f = phase_floor(name);
        t.row(&[
            format!("phase `{name}`"),
            s.cell(1),
            s.range(1),
            f.map_or("–".into(), |f| format!("{f:.0}")),
            f.filter(|f| *f > 0.0)
                .map_or("–".into(), |f| format!("{:.1}", s.median / f)),
        ]);
    }
    let outside = wall.median - phase_sum;
    let second = Summary::of(&again.iter().map(|r| r.wall_ms).collect::<Vec<_>>());
    t.row(&[
        "`init --root` again, nothing to change: wall time".into(),
        second.cell(1),
        second.range(1),
        format!("{floor:.0}"),
        format!("{:.2}", second.median / floor),
    ]);
    let imds = Summary::of(
        &fresh
            .iter()
            .map(|r| r.imds_requests as f64)
            .collect::<Vec<_>>(),
    );
    report.section(format!(
        "## `init` end to end against the emulators\n\n\
         `eks-node-agent --log-format json init --skip run -c imds://user-data --root DIR` as \
         a process, {runs} runs after one warm-up, a fresh root each, then once more on the \
         same root. User data and metadata come from the IMDS emulator (tests/src/imds.rs), \
         which answers after {} ms; DescribeInstances and DescribeCluster come from moto behind \
         tests/src/latency_proxy.rs adding {} ms per round trip. Phase times are the agent's own \
         (its JSON log, whole milliseconds except `render`).\n\n\
         The floor is the round trips `init` must make one after the other: IMDS token and user \
         data ({f_sources:.0} ms, `sources`); metadata and the interface's paths, then one EC2/EKS \
         round trip with both calls concurrent ({f_discover:.0} ms, `discover`): **{floor:.0} ms**. \
         Writing files has no round trip.\n\n{}\n\
         Median wall time {:.1} ms = **{:.2}x the floor** (target: within {TARGET_FLOOR_RATIO:.0}x). \
         Moto answers in its own time on top of the injected latency: DescribeInstances and \
         DescribeCluster made concurrently by warm SDK clients inside the harness, through the \
         same proxy, take {} ms (median, p10–p90); with the IMDS round trips that is \
         {emulated_floor:.1} ms, the least any client could take against these emulators, and \
         `init` takes {:.2}x that. \
         Outside the phases (process start, runtime and logging set-up, exit): {outside:.1} ms \
         (median wall minus the sum of the phase medians). Peak RSS {} MiB (median, p10–p90). \
         IMDS requests per run: {:.0}.\n",
        ms(IMDS_LATENCY),
        ms(AWS_RTT),
        t.render(),
        wall.median,
        wall.median / floor,
        peer.cell(1),
        wall.median / emulated_floor,
        rss.cell(1),
        imds.median,
    ));
    report.verdict(
        TARGET,
        format!(
            "{:.2}x ({:.1} ms vs {floor:.0} ms floor, median)",
            wall.median / floor,
            wall.median
        ),
        Some(wall.median / floor <= TARGET_FLOOR_RATIO),
    );
    Ok(())
}

/// Pages of `path` in the page cache, as `fincore` (util-linux) counts them.
fn resident_pages(path: &Path) -> String {
    first_line(
        "fincore",
        &[
            "--noheadings",
            "--output",
            "PAGES",
            &path.display().to_string(),
        ],
    )
}

/// Drops `path` from the page cache (GNU dd: `iflag=nocache count=0` on the whole file).
fn evict(path: &Path) -> Result<()> {
    let st = Command::new("dd")
        .arg(format!("if={}", path.display()))
        .args(["iflag=nocache", "count=0"])
        .stderr(Stdio::null())
        .status()?;
    if !st.success() {
        bail!("dd could not drop {} from the page cache", path.display());
    }
    Ok(())
}

/// Spawn to first IMDS connection: a listener stands in for IMDS and notes when the agent
/// connects; the agent is then stopped.
fn first_call_ms(world: &World, agent: &Path) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let root = tempfile::tempdir()?;
    let mut cmd = Command::new(agent);
    cmd.args(["init", "--skip", "run", "-c", "imds://user-data", "--root"])
        .arg(root.path())
        .env_clear()
        .envs(world.env(&endpoint))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    listener.set_nonblocking(true)?;
    let t = Instant::now();
    let _child = Guard::spawn(&mut cmd)?;
    loop {
        match listener.accept() {
            Ok(_) => return Ok(ms(t.elapsed())),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if t.elapsed() > FIRST_CALL_LIMIT {
                    bail!("the agent made no IMDS connection within {FIRST_CALL_LIMIT:?}");
                }
                // Busy-wait with a short pause: the resolution wanted is well under 1 ms.
                std::thread::sleep(Duration::from_micros(50));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

pub fn cold_start(report: &mut Report, world: &World, agent: &Path, runs: usize) -> Result<()> {
    let mut warm = Vec::new();
    let mut cold = Vec::new();
    let mut cold_resident = String::new();
    first_call_ms(world, agent)?;
    for _ in 0..runs {
        warm.push(first_call_ms(world, agent)?);
        evict(agent)?;
        cold_resident = resident_pages(agent);
        cold.push(first_call_ms(world, agent)?);
    }
    let mut t = Table::new(&["start", "ms: median (p10–p90)", "min–max"]);
    let w = Summary::of(&warm);
    let c = Summary::of(&cold);
    t.row(&["binary in the page cache".into(), w.cell(2), w.range(2)]);
    t.row(&[
        format!(
            "binary dropped from the page cache (resident pages before spawn: {cold_resident})"
        ),
        c.cell(2),
        c.range(2),
    ]);
    report.section(format!(
        "## Cold start to the first IMDS call\n\n\
         From just before `spawn` of `init` to the moment a listener standing in for IMDS \
         accepts the agent's first connection; {runs} runs each. Cold: the agent binary is \
         dropped from the page cache first (`dd iflag=nocache count=0`, checked with \
         `fincore`); shared libraries stay cached.\n\n{}",
        t.render()
    ));
    Ok(())
}

fn drop_in_dir(dir: &Path, n: usize) -> Result<()> {
    for i in 0..n {
        std::fs::write(
            dir.join(format!("{i:04}-bench.yaml")),
            format!(
                "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  kubelet:\n    config:\n      eventRecordQPS: {}\n    flags:\n      - --node-labels=bench.example.com/drop-in-{i}=true\n",
                i % 50 + 1
            ),
        )?;
    }
    Ok(())
}

struct GrowthPoint {
    label: String,
    wall: Summary,
    rss: Summary,
    sources: Summary,
}

fn growth_point(
    world: &World,
    agent: &Path,
    label: String,
    extra: &[String],
) -> Result<GrowthPoint> {
    let mut runs = Vec::new();
    for _ in 0..GROWTH_RUNS {
        let root = tempfile::tempdir()?;
        runs.push(init_once(world, agent, root.path(), extra)?);
    }
    Ok(GrowthPoint {
        label,
        wall: Summary::of(&runs.iter().map(|r| r.wall_ms).collect::<Vec<_>>()),
        rss: Summary::of(&runs.iter().map(|r| mib(r.rss_kib)).collect::<Vec<_>>()),
        sources: Summary::of(
            &runs
                .iter()
                .filter_map(|r| r.phases.get("sources").copied())
                .collect::<Vec<_>>(),
        ),
    })
}

pub fn growth(report: &mut Report, world: &World, agent: &Path) -> Result<()> {
    let mut points = Vec::new();
    for &n in DROP_IN_COUNTS {
        let dir = tempfile::tempdir()?;
        drop_in_dir(dir.path(), n)?;
        let source = format!("file://{}/", dir.path().display());
        points.push(growth_point(
            world,
            agent,
            format!("{n} drop-in files"),
            &[source],
        )?);
    }
    for &n in FLAG_COUNTS {
        world.imds.set_user_data(Some(user_data(n).into_bytes()));
        let p = growth_point(world, agent, format!("{n} kubelet flags in user data"), &[]);
        world.imds.set_user_data(Some(user_data(0).into_bytes()));
        points.push(p?);
    }
    let mut t = Table::new(&[
        "NodeConfig",
        "wall ms: median (p10–p90)",
        "phase `sources` ms",
        "peak RSS MiB: median (p10–p90)",
    ]);
    for p in &points {
        t.row(&[
            p.label.clone(),
            p.wall.cell(1),
            p.sources.cell(1),
            p.rss.cell(1),
        ]);
    }
    report.section(format!(
        "## Growth: `init` with a bigger NodeConfig\n\n\
         The same `init --root` against the same emulators, {GROWTH_RUNS} runs per row, a fresh \
         root each. Drop-in files: user data plus `-c file://DIR/` holding that many NodeConfig \
         documents (each sets a kubelet config field and appends a flag). Flags: user data \
         with that many `--node-labels=...` flags.\n\n{}",
        t.render()
    ));
    Ok(())
}

/// The path of the agent binary's release build beside this helper, or the given one.
pub fn default_agent() -> Result<PathBuf> {
    crate::proc::sibling("eks-node-agent").context("agent path")
}
