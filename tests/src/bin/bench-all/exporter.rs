//! `run` against Debian's prometheus-node-exporter with the same collectors: steady RSS, CPU
//! per scrape, scrape latency; idle CPU against node-problem-detector's published footprint;
//! and `run`'s RSS and scrape time as the host grows (network interfaces, mounts).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::proc::{Guard, clk_tck, cpu_ticks, http_get, rss_kib, scrape, sibling, wait_for};
use crate::report::{Report, Table, mib};
use crate::stats::{Summary, quantile};

/// Scrapes before measuring (connection set-up, first allocations).
pub const WARMUP_SCRAPES: usize = 20;
/// Measured scrapes per exporter per round.
pub const SCRAPES: usize = 300;
/// How long both daemons are left alone to measure their idle CPU.
const IDLE_WINDOW: Duration = Duration::from_secs(20);
/// How long a daemon may take to answer its first request.
const START_LIMIT: Duration = Duration::from_secs(30);
/// The target, as the report words it.
pub const TARGET: &str = "`run` RSS below half of node_exporter's";
/// The target: `run` RSS below this fraction of node_exporter's.
pub const TARGET_RSS_FRACTION: f64 = 0.5;
/// node-problem-detector's published footprint: requests = limits = 10m CPU, 80Mi memory, in
/// the DaemonSet of its repository (kubernetes/node-problem-detector,
/// deployment/node-problem-detector.yaml, image v0.8.18).
const NPD_MEMORY_MIB: f64 = 80.0;
const NPD_CPU_MILLICORES: f64 = 10.0;
const NPD_SOURCE: &str = "https://github.com/kubernetes/node-problem-detector/blob/master/deployment/node-problem-detector.yaml";

/// One exporter measured once.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub rss_kib: f64,
    pub cpu_ms_per_scrape: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub bytes: usize,
}

/// Scrapes `port` `warmup + n` times; latencies (ms) of the last `n` and the last body.
pub fn scrape_series(port: u16, warmup: usize, n: usize) -> Result<(Vec<f64>, String)> {
    for _ in 0..warmup {
        scrape(port)?;
    }
    let mut times = Vec::with_capacity(n);
    let mut body = String::new();
    for _ in 0..n {
        let t = Instant::now();
        body = scrape(port)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok((times, body))
}

fn measure(pid: u32, port: u16, tck: f64) -> Result<Sample> {
    for _ in 0..WARMUP_SCRAPES {
        scrape(port)?;
    }
    let before = cpu_ticks(pid)?;
    let (times, body) = scrape_series(port, 0, SCRAPES)?;
    let after = cpu_ticks(pid)?;
    Ok(Sample {
        rss_kib: rss_kib(pid)?,
        cpu_ms_per_scrape: (after - before) as f64 / tck * 1e3 / SCRAPES as f64,
        p50_ms: quantile(&times, 0.5),
        p99_ms: quantile(&times, 0.99),
        bytes: body.len(),
    })
}

fn agent_command(agent: &Path, port: u16, config: &Path) -> Command {
    let mut cmd = Command::new(agent);
    cmd.args(run_args(port, config))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// `run` as every measurement starts it: no Kubernetes, listening on `port`.
fn run_args(port: u16, config: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> =
        ["run", "--no-kubernetes", "--node-name", "bench", "--listen"]
            .map(Into::into)
            .to_vec();
    args.push(format!("127.0.0.1:{port}").into());
    args.push("--config".into());
    args.push(config.into());
    args
}

fn start_agent(agent: &Path, dir: &Path) -> Result<(Guard, u16)> {
    let port = eks_node_agent_tests::free_port();
    let g = Guard::spawn(&mut agent_command(agent, port, &dir.join("none.toml")))?;
    wait_for(START_LIMIT, "the agent's /healthz", || {
        http_get(port, "/healthz").is_ok_and(|r| r.0 == 200)
    })?;
    Ok((g, port))
}

fn start_node_exporter() -> Result<(Guard, u16)> {
    let port = eks_node_agent_tests::free_port();
    let mut cmd = Command::new("prometheus-node-exporter");
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--collector.disable-defaults");
    for c in eks_node_agent::report::host::COLLECTORS {
        cmd.arg(format!("--collector.{c}"));
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let g = Guard::spawn(&mut cmd).context("prometheus-node-exporter (Debian package)")?;
    wait_for(START_LIMIT, "node_exporter's /metrics", || {
        scrape(port).is_ok()
    })?;
    Ok((g, port))
}

fn summarize(samples: &[Sample], f: impl Fn(&Sample) -> f64) -> Summary {
    Summary::of(&samples.iter().map(f).collect::<Vec<_>>())
}

pub fn run(report: &mut Report, agent: &Path, rounds: usize) -> Result<()> {
    let tck = clk_tck()?;
    let dir = tempfile::tempdir()?;
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut idle = None;
    for round in 0..rounds {
        let (a, a_port) = start_agent(agent, dir.path())?;
        let (n, n_port) = start_node_exporter()?;
        ours.push(measure(a.pid(), a_port, tck)?);
        theirs.push(measure(n.pid(), n_port, tck)?);
        if round == 0 {
            // Both left alone: what each costs between scrapes (checks, timers, GC).
            let (a0, n0) = (cpu_ticks(a.pid())?, cpu_ticks(n.pid())?);
            std::thread::sleep(IDLE_WINDOW);
            let per = |d: u64| d as f64 / tck / IDLE_WINDOW.as_secs_f64() * 1e3;
            idle = Some((
                per(cpu_ticks(a.pid())? - a0),
                per(cpu_ticks(n.pid())? - n0),
                rss_kib(a.pid())?,
            ));
        }
    }
    let mut t = Table::new(&[
        "exporter",
        "steady RSS MiB: median (min–max)",
        "CPU ms per scrape",
        "scrape p50 ms",
        "scrape p99 ms",
        "bytes per scrape",
    ]);
    for (name, s) in [("eks-node-agent run", &ours), ("node_exporter", &theirs)] {
        let rss = summarize(s, |x| mib(x.rss_kib));
        t.row(&[
            name.to_owned(),
            format!("{:.1} ({})", rss.median, rss.range(1)),
            format!(
                "{:.3} ({})",
                summarize(s, |x| x.cpu_ms_per_scrape).median,
                summarize(s, |x| x.cpu_ms_per_scrape).range(3)
            ),
            format!(
                "{:.3} ({})",
                summarize(s, |x| x.p50_ms).median,
                summarize(s, |x| x.p50_ms).range(3)
            ),
            format!(
                "{:.3} ({})",
                summarize(s, |x| x.p99_ms).median,
                summarize(s, |x| x.p99_ms).range(3)
            ),
            format!("{:.0}", summarize(s, |x| x.bytes as f64).median),
        ]);
    }
    let rss_ratio =
        summarize(&ours, |x| x.rss_kib).median / summarize(&theirs, |x| x.rss_kib).median;
    let p50_ratio = summarize(&ours, |x| x.p50_ms).median / summarize(&theirs, |x| x.p50_ms).median;
    let cpu_ratio = summarize(&ours, |x| x.cpu_ms_per_scrape).median
        / summarize(&theirs, |x| x.cpu_ms_per_scrape).median;
    let collectors = eks_node_agent::report::host::COLLECTORS.join(", ");
    let mut text = format!(
        "## `run` vs Debian's prometheus-node-exporter\n\n\
         {rounds} rounds; each round starts both daemons afresh with the same collectors \
         ({collectors}); the agent also runs its health checks (`run --no-kubernetes`). Per \
         round: {WARMUP_SCRAPES} warm-up scrapes, then {SCRAPES} scrapes one after the other, a \
         new HTTP/1.0 connection each, on loopback. Steady RSS is VmRSS after the scrapes; CPU \
         per scrape is the daemon's utime+stime over the {SCRAPES} scrapes divided by \
         {SCRAPES} (clock ticks of {:.0} ms); p50/p99 are over one round's scrapes. Cells: \
         median over rounds (min–max over rounds).\n\n{}\n\
         Ratios to node_exporter (medians): RSS **{rss_ratio:.2}**, CPU per scrape {cpu_ratio:.2}, \
         scrape p50 {p50_ratio:.2} (target: RSS below {TARGET_RSS_FRACTION}).\n",
        1e3 / tck,
        t.render()
    );
    if let Some((a_mc, n_mc, a_rss)) = idle {
        text.push_str(&format!(
            "\nIdle, between scrapes ({} s window, round 1): the agent used {a_mc:.1} millicores \
             (its checks on their default intervals), node_exporter {n_mc:.1} millicores \
             (CPU time is counted in {:.0} ms ticks: 0.0 means under {:.1} millicores).\n\n\
             node-problem-detector publishes no benchmark; its own DaemonSet manifest reserves \
             and caps it at {NPD_CPU_MILLICORES:.0} millicores and {NPD_MEMORY_MIB:.0} MiB \
             (requests = limits, [{NPD_SOURCE}]({NPD_SOURCE})). Against that budget the agent, \
             which also serves the node_exporter metrics, used {:.1} MiB ({:.0}% of it) and \
             {a_mc:.1} millicores idle.\n",
            IDLE_WINDOW.as_secs(),
            1e3 / tck,
            1e3 / tck / IDLE_WINDOW.as_secs_f64(),
            mib(a_rss),
            mib(a_rss) / NPD_MEMORY_MIB * 100.0
        ));
    }
    report.section(text);
    report.verdict(
        TARGET,
        format!(
            "{rss_ratio:.2} ({:.1} MiB vs {:.1} MiB, medians)",
            mib(summarize(&ours, |x| x.rss_kib).median),
            mib(summarize(&theirs, |x| x.rss_kib).median)
        ),
        Some(rss_ratio < TARGET_RSS_FRACTION),
    );
    Ok(())
}

/// `bench-all scrape-helper PORT WARMUP N`: run inside a network namespace, scrapes the agent
/// there and prints `p50_ms p99_ms bytes netdev_series`.
pub fn scrape_helper(args: &[String]) -> Result<()> {
    let get = |i: usize| -> Result<usize> {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .context("usage: bench-all scrape-helper PORT WARMUP N")
    };
    let port = u16::try_from(get(0)?)?;
    wait_for(START_LIMIT, "the agent's /healthz in the namespace", || {
        http_get(port, "/healthz").is_ok_and(|r| r.0 == 200)
    })?;
    let (times, body) = scrape_series(port, get(1)?, get(2)?)?;
    println!(
        "{} {} {} {}",
        quantile(&times, 0.5),
        quantile(&times, 0.99),
        body.len(),
        series_count(&body, "node_network_receive_bytes_total{")
    );
    Ok(())
}

fn series_count(body: &str, prefix: &str) -> usize {
    body.lines().filter(|l| l.starts_with(prefix)).count()
}

/// A network namespace deleted on drop.
struct Netns(String);

impl Netns {
    /// A namespace with `lo` up and `veths` veth interfaces whose peers sit in a second
    /// namespace (as pods' veths do on a node). IPv6 is off so nothing is sent on them.
    fn create(veths: usize) -> Result<(Netns, Netns)> {
        let tag = format!("eksbench-{}-{veths}", std::process::id());
        let host = Netns(tag.clone());
        let pods = Netns(format!("{tag}-peers"));
        for ns in [&host, &pods] {
            ip(&["netns", "add", &ns.0])?;
            for key in ["all", "default"] {
                let _ = Command::new("ip")
                    .args(["netns", "exec", &ns.0, "sysctl", "-q", "-w"])
                    .arg(format!("net.ipv6.conf.{key}.disable_ipv6=1"))
                    .status();
            }
        }
        let mut in_host = String::from("link set lo up\n");
        let mut in_pods = String::new();
        for i in 0..veths {
            in_host.push_str(&format!(
                "link add bench{i} type veth peer name peer{i} netns {}\nlink set bench{i} up\n",
                pods.0
            ));
            in_pods.push_str(&format!("link set peer{i} up\n"));
        }
        ip_batch(&host.0, &in_host)?;
        ip_batch(&pods.0, &in_pods)?;
        Ok((host, pods))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.0])
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs `commands` (one per line) with `ip -n NS -batch -`.
fn ip_batch(ns: &str, commands: &str) -> Result<()> {
    if commands.is_empty() {
        return Ok(());
    }
    let mut child = Command::new("ip")
        .args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .context("ip (iproute2)")?;
    {
        use std::io::Write as _;
        child
            .stdin
            .take()
            .context("ip stdin")?
            .write_all(commands.as_bytes())?;
    }
    if !child.wait()?.success() {
        bail!("ip -n {ns} -batch failed");
    }
    Ok(())
}

fn ip(args: &[&str]) -> Result<()> {
    let st = Command::new("ip")
        .args(args)
        .status()
        .context("ip (iproute2)")?;
    if !st.success() {
        bail!("ip {} failed", args.join(" "));
    }
    Ok(())
}

/// The only child of `pid` (the agent under `unshare --fork`).
fn only_child(pid: u32) -> Result<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))?;
    text.split_whitespace()
        .next()
        .and_then(|c| c.parse().ok())
        .context("no child process yet")
}

/// Sizes of the growth experiments.
pub const INTERFACE_COUNTS: &[usize] = &[1, 8, 32, 64];
pub const MOUNT_COUNTS: &[usize] = &[1, 50, 200];
/// Scrapes per size in the growth experiments.
const GROWTH_SCRAPES: usize = 100;

/// One growth point: agent RSS after the scrapes, p50/p99, series seen.
struct Point {
    rss_kib: f64,
    p50: f64,
    p99: f64,
    series: usize,
}

fn interfaces_point(agent: &Path, interfaces: usize) -> Result<Point> {
    let veths = interfaces.saturating_sub(1); // lo counts as one
    let (ns, _peers) = Netns::create(veths)?;
    let dir = tempfile::tempdir()?;
    let port: u16 = 9464;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns.0])
        .arg(agent)
        .args(run_args(port, &dir.path().join("none.toml")))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let a = Guard::spawn(&mut cmd)?; // `ip netns exec` execs the agent: same pid
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(sibling("bench-all")?)
        .args([
            "scrape-helper",
            &port.to_string(),
            &WARMUP_SCRAPES.to_string(),
            &GROWTH_SCRAPES.to_string(),
        ])
        .output()?;
    if !out.status.success() {
        bail!(
            "scrape helper in {}: {}",
            ns.0,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<f64> = text
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    if f.len() != 4 {
        bail!("scrape helper printed {text:?}");
    }
    Ok(Point {
        rss_kib: rss_kib(a.pid())?,
        p50: f[0],
        p99: f[1],
        series: f[3] as usize,
    })
}

fn mounts_point(agent: &Path, mounts: usize) -> Result<Point> {
    let dir = tempfile::tempdir()?;
    let port = eks_node_agent_tests::free_port();
    // A private mount namespace and a pid namespace whose /proc is fresh, so the agent (pid 1
    // there) reads its own mount table at /proc/1/mounts, as it does on a host.
    let script = "d=$1; n=$2; shift 2; i=0; while [ $i -lt $n ]; do mkdir -p $d/m$i && \
                  mount -t tmpfs -o size=64k benchfs$i $d/m$i || exit 1; i=$((i+1)); done; exec \"$@\"";
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "--pid",
        "--fork",
        "--kill-child",
        "--mount-proc",
        "sh",
        "-c",
        script,
        "sh",
    ])
    .arg(dir.path().join("mnt"))
    .arg(mounts.to_string())
    .arg(agent)
    .args(run_args(port, &dir.path().join("none.toml")))
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let u = Guard::spawn(&mut cmd)?;
    wait_for(
        START_LIMIT,
        "the agent's /healthz in the mount namespace",
        || http_get(port, "/healthz").is_ok_and(|r| r.0 == 200),
    )?;
    let pid = only_child(u.pid())?;
    let (times, body) = scrape_series(port, WARMUP_SCRAPES, GROWTH_SCRAPES)?;
    let seen = body
        .lines()
        .filter(|l| l.starts_with("node_filesystem_size_bytes{") && l.contains("benchfs"))
        .count();
    let point = Point {
        rss_kib: rss_kib(pid)?,
        p50: quantile(&times, 0.5),
        p99: quantile(&times, 0.99),
        series: seen,
    };
    drop(u); // `--kill-child`: the agent dies with unshare
    Ok(point)
}

/// `run` as the host grows. Needs root (namespaces, mounts).
pub fn growth(report: &mut Report, agent: &Path) -> Result<()> {
    if !nix_is_root() {
        bail!("needs root (network and mount namespaces); run scripts/bench.sh as root");
    }
    let mut t = Table::new(&[
        "host",
        "agent RSS MiB",
        "scrape p50 ms",
        "scrape p99 ms",
        "series seen",
    ]);
    for &n in INTERFACE_COUNTS {
        let p = interfaces_point(agent, n)?;
        t.row(&[
            format!("{n} network interfaces (lo + {} veth)", n - 1),
            format!("{:.1}", mib(p.rss_kib)),
            format!("{:.3}", p.p50),
            format!("{:.3}", p.p99),
            format!(
                "{} interfaces in node_network_receive_bytes_total",
                p.series
            ),
        ]);
    }
    for &m in MOUNT_COUNTS {
        let p = mounts_point(agent, m)?;
        t.row(&[
            format!("host mounts + {m} tmpfs"),
            format!("{:.1}", mib(p.rss_kib)),
            format!("{:.3}", p.p50),
            format!("{:.3}", p.p99),
            format!("{} of the tmpfs in node_filesystem_size_bytes", p.series),
        ]);
    }
    report.section(format!(
        "## Growth: `run` on a bigger host\n\n\
         Interfaces: the agent runs inside a network namespace made for the run (`ip netns \
         exec`) holding `lo` plus veth interfaces whose peers sit in a second namespace (as \
         pods' veths do); the scraper runs in the same namespace. Mounts: the agent runs in a \
         private mount namespace (and its own pid namespace, so /proc/1/mounts is its table) \
         with that many extra tmpfs mounts. One agent per row, {WARMUP_SCRAPES} warm-up and \
         {GROWTH_SCRAPES} measured scrapes; RSS after the scrapes. The last column checks \
         the agent saw what was made.\n\n{}",
        t.render()
    ));
    Ok(())
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|v| v.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
