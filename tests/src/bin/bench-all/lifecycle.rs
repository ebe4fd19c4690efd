//! The lifecycle watchers: time from a spot notice appearing in IMDS (the emulator) to the
//! Node tainted and cordoned in the Kubernetes API emulator, over [`NOTICES`] notices, with
//! the default 1 s polling and with NTH's 2 s polling as the reference; the IMDS requests per
//! minute the watchers add at their default intervals; the daemon's RSS with the watchers on
//! and off.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use eks_node_agent_tests::imds::{ImdsEmulator, Instance};
use eks_node_agent_tests::kube_api::KubeApi;

use crate::proc::{Guard, rss_kib, wait_for};
use crate::report::{Report, Table, mib};
use crate::stats::Summary;

/// Notices per polling interval.
pub const NOTICES: usize = 50;
/// How long the steady IMDS request rate is counted.
const RATE_WINDOW: Duration = Duration::from_secs(30);
/// How long one notice may take to be acted on (or undone).
const ACT_LIMIT: Duration = Duration::from_secs(10);
const NODE: &str = "bench-node";
const TOKEN: &str = "bench-lifecycle";
/// Every check off: only the watchers run.
const NO_CHECKS: &str = "[checks.kubelet]\nenabled = false\n[checks.containerd]\nenabled = false\n\
[checks.vpc_cni]\nenabled = false\n[checks.kernel]\nenabled = false\n[checks.storage]\nenabled = false\n\
[checks.credentials]\nenabled = false\n[checks.clock]\nenabled = false\n";

struct Setup {
    _rt: tokio::runtime::Runtime,
    api: KubeApi,
    imds: ImdsEmulator,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Result<Setup> {
        let rt = tokio::runtime::Runtime::new()?;
        let api = rt.block_on(KubeApi::start(TOKEN));
        api.add_node(
            NODE,
            serde_json::json!([{ "type": "Ready", "status": "True", "reason": "KubeletReady", "message": "" }]),
        );
        Ok(Setup {
            _rt: rt,
            api,
            imds: ImdsEmulator::start(Instance::example()),
            dir: tempfile::tempdir()?,
        })
    }

    /// Starts the daemon with `lifecycle` (a TOML table) and waits until the watchers read IMDS.
    fn daemon(&self, agent: &Path, lifecycle: &str) -> Result<Guard> {
        let dir = self.dir.path();
        let config = dir.join("daemon.toml");
        std::fs::write(&config, format!("{NO_CHECKS}{lifecycle}"))?;
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, self.api.kubeconfig())?;
        let _ = std::fs::remove_file(dir.join("lifecycle.json"));
        let before = self.imds.requests();
        let guard = Guard::spawn(
            Command::new(agent)
                .arg("run")
                .arg("--listen")
                .arg(format!("127.0.0.1:{}", eks_node_agent_tests::free_port()))
                .args(["--node-name", NODE, "--systemd-bus", "none"])
                .args(["--iam-credentials", "none"])
                .arg("--config")
                .arg(&config)
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .arg("--lifecycle-state")
                .arg(dir.join("lifecycle.json"))
                .arg("--kmsg")
                .arg(dir.join("kmsg"))
                .env("AWS_EC2_METADATA_DISABLED", "false")
                .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", self.imds.endpoint())
                .env_remove("NOTIFY_SOCKET")
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        if lifecycle.contains("enabled = true") {
            wait_for(Duration::from_secs(30), "the watchers' first reads", || {
                self.imds.requests() > before + 2
            })?;
        } else {
            std::thread::sleep(Duration::from_secs(2));
        }
        Ok(guard)
    }

    fn acted(&self) -> bool {
        self.api.node(NODE).is_some_and(|n| {
            n.pointer("/spec/unschedulable") == Some(&serde_json::json!(true))
                && n.pointer("/spec/taints")
                    .and_then(|t| t.as_array())
                    .is_some_and(|t| {
                        t.iter()
                            .any(|t| t["key"] == "eks-node-agent/spot-interruption")
                    })
        })
    }

    fn undone(&self) -> bool {
        self.api.node(NODE).is_some_and(|n| {
            n.pointer("/spec/unschedulable").is_none()
                && n.pointer("/spec/taints")
                    .and_then(|t| t.as_array())
                    .is_none_or(|t| t.is_empty())
        })
    }

    /// Milliseconds from each notice to the Node tainted and cordoned; each notice is then
    /// withdrawn and the undo awaited, so the next one starts from a clean Node.
    fn latencies(&self, agent: &Path, poll_secs: f64) -> Result<(Vec<f64>, f64)> {
        let daemon = self.daemon(
            agent,
            &format!(
                "[lifecycle]\nenabled = true\n[lifecycle.spot_interruption]\nactions = [\"taint\", \"cordon\"]\npoll_interval_secs = {poll_secs}\n"
            ),
        )?;
        let mut out = Vec::with_capacity(NOTICES);
        let interval = Duration::from_secs_f64(poll_secs);
        for i in 0..NOTICES {
            // The undo was just seen right after a poll: start each notice at a different
            // phase of the polling interval (golden-ratio steps cover it evenly), as a real
            // notice would arrive.
            let phase = (i as f64 * 0.618_033_988_75).fract();
            std::thread::sleep(interval.mul_f64(phase));
            // A distinct time per notice: each is a new event.
            let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(120 + i as i64);
            let text = t
                .replace_nanosecond(0)?
                .format(&time::format_description::well_known::Rfc3339)?;
            let started = Instant::now();
            self.imds.set_spot_action(Some(("terminate", &text)));
            while !self.acted() {
                if started.elapsed() > ACT_LIMIT {
                    bail!("notice {i} not acted on within {ACT_LIMIT:?}");
                }
                std::thread::sleep(Duration::from_micros(500));
            }
            out.push(started.elapsed().as_secs_f64() * 1e3);
            self.imds.set_spot_action(None);
            wait_for(ACT_LIMIT, "the undo", || self.undone())?;
        }
        let rss = rss_kib(daemon.pid())?;
        Ok((out, rss))
    }
}

pub fn run(report: &mut Report, agent: &Path) -> Result<()> {
    let setup = Setup::new().context("start the emulators")?;
    let (fast, rss_after) = setup.latencies(agent, 1.0)?;
    let (nth, _) = setup.latencies(agent, 2.0)?;

    // Steady state at the default intervals, nothing announced.
    let daemon = setup.daemon(agent, "[lifecycle]\nenabled = true\n")?;
    std::thread::sleep(Duration::from_secs(2));
    let before = setup.imds.requests();
    let started = Instant::now();
    std::thread::sleep(RATE_WINDOW);
    let per_min = (setup.imds.requests() - before) as f64 * 60.0 / started.elapsed().as_secs_f64();
    let rss_on = rss_kib(daemon.pid())?;
    drop(daemon);
    let off = setup.daemon(agent, "[lifecycle]\nenabled = false\n")?;
    let before_off = setup.imds.requests();
    std::thread::sleep(Duration::from_secs(5));
    let off_requests = setup.imds.requests() - before_off;
    let rss_off = rss_kib(off.pid())?;
    drop(off);

    let mut t = Table::new(&["polling", "notices", "p50 ms", "p99 ms", "min–max ms"]);
    for (label, v) in [
        ("1 s (default)", &fast),
        ("2 s (NTH's IMDS monitor interval, reference)", &nth),
    ] {
        let s = Summary::of(v);
        let mut sorted = v.clone();
        sorted.sort_by(f64::total_cmp);
        t.row(&[
            label.into(),
            v.len().to_string(),
            format!("{:.0}", s.median),
            format!("{:.0}", crate::stats::quantile(&sorted, 0.99)),
            s.range(0),
        ]);
    }
    let mut r = Table::new(&["daemon (all checks off)", "VmRSS MiB", "IMDS requests/min"]);
    r.row(&[
        "watchers on (default intervals)".into(),
        format!("{:.1}", mib(rss_on)),
        format!("{per_min:.0}"),
    ]);
    r.row(&[
        format!("watchers on, after {} notices", 2 * NOTICES),
        format!("{:.1}", mib(rss_after)),
        "-".into(),
    ]);
    r.row(&[
        "watchers off".into(),
        format!("{:.1}", mib(rss_off)),
        format!("{:.0}", off_requests as f64 * 12.0),
    ]);
    report.section(format!(
        "## Lifecycle: spot notice to tainted and cordoned\n\n\
         `run` with `[lifecycle]` on against the IMDS emulator and the Kubernetes API \
         emulator: for each of {NOTICES} spot notices, the time from the notice appearing in \
         IMDS to the Node carrying the `eks-node-agent/spot-interruption` taint and \
         `spec.unschedulable` (the emulator's store polled every 0.5 ms); the notice is then \
         withdrawn and the undo awaited, and the next notice starts at another phase of the \
         polling interval (golden-ratio steps), as notices arrive at any time. The 2 s row is the same daemon polling every 2 s, \
         aws-node-termination-handler's IMDS monitor interval, as the reference figure (NTH \
         itself does not run here).\n\n{}\n\
         IMDS requests per minute counted by the emulator over {:.0} s with nothing announced, \
         at the default intervals (spot 1 s, Auto Scaling 1 s, rebalance 5 s, scheduled \
         events 60 s: 133 expected, plus one token every six hours), and the daemon's RSS:\n\n{}\n",
        t.render(),
        RATE_WINDOW.as_secs_f64(),
        r.render()
    ));
    Ok(())
}
