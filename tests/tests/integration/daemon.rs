//! `eks-node-agent run`: sd_notify against a real NOTIFY_SOCKET, /metrics checked by
//! Debian's promtool and diffed against Debian's prometheus-node-exporter, and Node
//! conditions and events against the Kubernetes API emulator (tests/src/kube_api.rs).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use eks_node_agent_tests::free_port;
use eks_node_agent_tests::kube_api::KubeApi;
use eks_node_agent_tests::loopback_http::{Answer, Routes};
use serde_json::{Value, json};

use crate::agent_bin;

/// A child process killed on drop.
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    pub(crate) fn term(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "agent did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A fake procfs with the files the kernel check reads.
pub(crate) struct FakeProc {
    pub(crate) dir: PathBuf,
}

impl FakeProc {
    pub(crate) fn new(root: &Path) -> Self {
        let dir = root.join("proc");
        std::fs::create_dir_all(dir.join("sys/kernel")).unwrap();
        std::fs::create_dir_all(dir.join("sys/fs")).unwrap();
        std::fs::write(dir.join("sys/kernel/hostname"), "node-a\n").unwrap();
        let me = Self { dir };
        me.set_threads(100);
        me.set_files(1000);
        me
    }

    pub(crate) fn set_threads(&self, n: u64) {
        write_atomic(
            &self.dir.join("loadavg"),
            &format!("0.10 0.20 0.30 2/{n} 999\n"),
        );
        write_atomic(&self.dir.join("sys/kernel/pid_max"), "1000\n");
    }

    pub(crate) fn set_files(&self, n: u64) {
        write_atomic(&self.dir.join("sys/fs/file-nr"), &format!("{n} 0 10000\n"));
    }
}

pub(crate) fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Agent {
    proc: Proc,
    port: u16,
    _dir: tempfile::TempDir,
}

/// Options for one agent run.
#[derive(Default)]
struct Setup<'a> {
    checks_toml: &'a str,
    kubeconfig: Option<&'a str>,
    proc_dir: Option<&'a Path>,
    kmsg: Option<&'a Path>,
    env: Vec<(&'a str, String)>,
    args: Vec<std::ffi::OsString>,
    /// Where the agent's stderr goes (inherited when `None`).
    stderr: Option<&'a Path>,
    /// The kubelet client certificate (default: a missing file in the agent's directory).
    kubelet_cert: Option<&'a Path>,
}

fn start_agent(setup: Setup<'_>) -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("daemon.toml");
    std::fs::write(&config, setup.checks_toml).unwrap();
    let port = free_port();
    let mut cmd = Command::new(agent_bin());
    cmd.arg("run")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--node-name")
        .arg("node-a")
        .arg("--config")
        .arg(&config)
        .arg("--kubelet-healthz")
        .arg(format!("http://127.0.0.1:{}/healthz", free_port()))
        .arg("--containerd-socket")
        .arg(dir.path().join("containerd.sock"))
        .arg("--cni-conflist")
        .arg(dir.path().join("10-aws.conflist"))
        .arg("--storage-dir")
        .arg(dir.path())
        .arg("--kubelet-client-cert")
        .arg(setup.kubelet_cert.map_or_else(
            || dir.path().join("kubelet-client-current.pem"),
            Path::to_path_buf,
        ))
        .arg("--kmsg")
        .arg(
            setup
                .kmsg
                .map_or_else(|| dir.path().join("kmsg"), Path::to_path_buf),
        )
        .args(["--systemd-bus", "none"])
        .args(&setup.args)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        // Never IMDS unless a test points it at the emulator (CI may run on EC2).
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::null())
        .stderr(match setup.stderr {
            Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
            None => Stdio::inherit(),
        });
    if let Some(p) = setup.proc_dir {
        cmd.arg("--proc").arg(p);
    }
    match setup.kubeconfig {
        Some(kc) => {
            let path = dir.path().join("kubeconfig");
            std::fs::write(&path, kc).unwrap();
            cmd.arg("--kubeconfig").arg(path);
        }
        None => {
            cmd.arg("--no-kubernetes");
        }
    }
    for (k, v) in setup.env {
        cmd.env(k, v);
    }
    let proc = Proc(cmd.spawn().unwrap());
    let agent = Agent {
        proc,
        port,
        _dir: dir,
    };
    wait_for(Duration::from_secs(20), "agent /healthz", || {
        http_get(agent.port, "/healthz").is_some_and(|(code, _)| code == 200)
    });
    agent
}

/// Minimal HTTP/1.0 GET on loopback (no chunked encoding to undo).
pub(crate) fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let code = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n")?.1.to_string();
    Some((code, body))
}

pub(crate) fn scrape(port: u16) -> String {
    let (code, body) = http_get(port, "/metrics").expect("scrape");
    assert_eq!(code, 200);
    body
}

pub(crate) fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of one sample line `name{labels} value` in a scrape.
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

const ONLY_KERNEL: &str = "[checks.kubelet]\nenabled = false\n[checks.containerd]\nenabled = false\n\
[checks.vpc_cni]\nenabled = false\n[checks.storage]\nenabled = false\n[checks.credentials]\nenabled = false\n\
[checks.network]\nenabled = false\n[checks.accelerators]\nenabled = false\n[checks.pods]\nenabled = false\n\
[checks.kernel]\ninterval_secs = 0.2\n";

#[test]
fn sd_notify_ready_then_watchdog_then_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut agent = start_agent(Setup {
        checks_toml: "[checks.kernel]\ninterval_secs = 0.2\n",
        env: vec![
            ("NOTIFY_SOCKET", sock_path.display().to_string()),
            // WatchdogSec=1s: the agent must ping every 0.5 s.
            ("WATCHDOG_USEC", "1000000".to_string()),
        ],
        ..Setup::default()
    });
    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    while !messages.iter().any(|m: &String| m.contains("WATCHDOG=1")) || messages.len() < 3 {
        let n = sock.recv(&mut buf).expect("a notify message within 20 s");
        messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let ready = messages
        .iter()
        .position(|m| m.lines().any(|l| l == "READY=1"))
        .expect("READY=1");
    let watchdog = messages
        .iter()
        .position(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .expect("WATCHDOG=1");
    assert!(ready < watchdog, "READY before WATCHDOG: {messages:?}");
    let status = agent.proc.term();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    let mut stopping = false;
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    while let Ok(n) = sock.recv(&mut buf) {
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "STOPPING=1")
        {
            stopping = true;
            break;
        }
    }
    assert!(stopping, "STOPPING=1 on SIGTERM");
}

fn promtool_problems(text: &str) -> (bool, BTreeSet<String>) {
    use std::io::Write as _;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(
            "promtool (Debian package prometheus) must be installed: scripts/test.sh installs it",
        );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let problems =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (
        out.status.success(),
        problems
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
    )
}

struct NodeExporter(#[allow(dead_code)] Proc, u16);

fn start_node_exporter() -> NodeExporter {
    let port = free_port();
    let mut cmd = Command::new("prometheus-node-exporter");
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--collector.disable-defaults");
    for c in eks_node_agent::report::host::COLLECTORS {
        cmd.arg(format!("--collector.{c}"));
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus-node-exporter (Debian package) must be installed: scripts/test.sh installs it");
    let ne = NodeExporter(Proc(child), port);
    wait_for(Duration::from_secs(20), "node_exporter", || {
        http_get(port, "/metrics").is_some()
    });
    ne
}

#[test]
fn promtool_accepts_a_live_scrape() {
    let agent = start_agent(Setup {
        checks_toml: "[checks.kernel]\ninterval_secs = 0.2\n",
        ..Setup::default()
    });
    let text = scrape(agent.port);
    assert!(
        text.contains("eksnode_check_up{check=\"kernel\"} 1"),
        "{text}"
    );
    let (_, ours) = promtool_problems(&text);
    // node_exporter's own meminfo names (node_memory_MemTotal_bytes...) are camelCase and
    // promtool says so; we keep them for compatibility. Any other problem is ours to fix.
    let ne = start_node_exporter();
    let (_, theirs) = promtool_problems(&scrape(ne.1));
    let extra: Vec<&String> = ours.difference(&theirs).collect();
    assert!(
        extra.is_empty(),
        "promtool problems node_exporter does not have: {extra:#?}"
    );
    assert!(ours.iter().all(|p| !p.starts_with("eksnode_")), "{ours:#?}");
    // And the eksnode_ part alone passes cleanly.
    let own: String = text
        .lines()
        .filter(|l| l.contains("eksnode_"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (ok, problems) = promtool_problems(&own);
    assert!(ok, "{problems:#?}");
}

/// name -> (help, type, set of label-name sets), for node_* series.
fn shape(text: &str) -> BTreeMap<String, (String, String, BTreeSet<Vec<String>>)> {
    let mut out: BTreeMap<String, (String, String, BTreeSet<Vec<String>>)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.entry(name.to_string()).or_default().0 = help.to_string();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            out.entry(name.to_string()).or_default().1 = kind.to_string();
        } else if !line.starts_with('#') && !line.is_empty() {
            let name_end = line.find(['{', ' ']).unwrap();
            let name = &line[..name_end];
            let mut labels = Vec::new();
            if line[name_end..].starts_with('{') {
                let inner = &line[name_end + 1..line.rfind('}').unwrap()];
                // Label values here never contain `",` sequences.
                for pair in inner.split("\",") {
                    if let Some((k, _)) = pair.split_once('=') {
                        labels.push(k.to_string());
                    }
                }
            }
            labels.sort();
            out.entry(name.to_string()).or_default().2.insert(labels);
        }
    }
    out.retain(|name, _| name.starts_with("node_") && name != "node_exporter_build_info");
    out
}

#[test]
fn host_series_match_debian_node_exporter() {
    let agent = start_agent(Setup {
        checks_toml: ONLY_KERNEL,
        ..Setup::default()
    });
    let ne = start_node_exporter();
    let ours = shape(&scrape(agent.port));
    let theirs = shape(&scrape(ne.1));
    let only_ours: Vec<_> = ours.keys().filter(|k| !theirs.contains_key(*k)).collect();
    // node_exporter's PPS series (node_timex_pps_*) are the one known gap: the agent's
    // adjtimex reader (report::host::timex) does not return the kernel's PPS fields.
    let only_theirs: Vec<_> = theirs
        .keys()
        .filter(|k| !ours.contains_key(*k) && !k.starts_with("node_timex_pps_"))
        .collect();
    for timex in [
        "node_timex_offset_seconds",
        "node_timex_sync_status",
        "node_timex_maxerror_seconds",
        "node_timex_estimated_error_seconds",
        "node_timex_frequency_adjustment_ratio",
        "node_timex_loop_time_constant",
        "node_timex_status",
        "node_timex_tick_seconds",
        "node_timex_tai_offset_seconds",
    ] {
        assert!(theirs.contains_key(timex), "node_exporter has {timex}");
    }
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "series names differ\nonly ours: {only_ours:#?}\nonly node_exporter: {only_theirs:#?}"
    );
    assert!(
        theirs.len() > 100,
        "node_exporter exposed {} node_* names",
        theirs.len()
    );
    for (name, want) in theirs.iter().filter(|(k, _)| ours.contains_key(*k)) {
        assert_eq!(&ours[name], want, "help, type or label names of {name}");
    }
    // The clock state itself agrees (both read adjtimex on the same kernel).
    let (a, b) = (scrape(agent.port), scrape(ne.1));
    for series in [
        "node_timex_sync_status",
        "node_timex_status",
        "node_timex_tick_seconds",
    ] {
        assert_eq!(sample(&a, series), sample(&b, series), "{series}");
    }
}

pub(crate) fn kubelet_conditions() -> Value {
    json!([
        {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
         "message": "kubelet has sufficient memory available",
         "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"},
        {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
         "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}
    ])
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The API emulator (accepting `token`) with Node `node-a` carrying the kubelet's
/// conditions, and the runtime it runs on.
pub(crate) fn api_with_node_a(token: &str) -> (tokio::runtime::Runtime, KubeApi) {
    let rt = runtime();
    let api = rt.block_on(KubeApi::start(token));
    api.add_node("node-a", kubelet_conditions());
    (rt, api)
}

pub(crate) fn condition_patches(api: &KubeApi) -> Vec<Value> {
    api.requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path == "/api/v1/nodes/node-a/status")
        .map(|r| {
            assert_eq!(r.content_type, "application/strategic-merge-patch+json");
            assert_eq!(r.status, 200);
            r.body
        })
        .collect()
}

#[test]
fn failing_check_sets_condition_false_and_recovery_sets_it_true() {
    let (_rt, api) = api_with_node_a("node-token-1");
    let before = api.node("node-a").unwrap();
    let root = tempfile::tempdir().unwrap();
    let proc = FakeProc::new(root.path());
    proc.set_threads(1000); // all of pid_max: fork fails
    let agent = start_agent(Setup {
        checks_toml: ONLY_KERNEL,
        kubeconfig: Some(&api.kubeconfig()),
        proc_dir: Some(&proc.dir),
        ..Setup::default()
    });
    wait_for(Duration::from_secs(20), "KernelReady False", || {
        api.condition("node-a", "KernelReady")
            .is_some_and(|c| c["status"] == "False")
    });
    let c = api.condition("node-a", "KernelReady").unwrap();
    assert_eq!(c["reason"], "ForkFailedOutOfPIDs");
    assert!(c["message"].as_str().unwrap().contains("1000"), "{c}");
    assert!(c["lastTransitionTime"].is_string() && c["lastHeartbeatTime"].is_string());

    proc.set_threads(100);
    wait_for(Duration::from_secs(20), "KernelReady True", || {
        api.condition("node-a", "KernelReady")
            .is_some_and(|c| c["status"] == "True")
    });
    assert_eq!(
        api.condition("node-a", "KernelReady").unwrap()["reason"],
        "KernelHasNoProblem"
    );
    let text = scrape(agent.port);
    assert_eq!(
        sample(&text, "eksnode_condition_status{condition=\"KernelReady\"}"),
        Some(1.0)
    );

    // Kubelet-owned conditions are untouched, and no PATCH ever named them.
    let after = api.node("node-a").unwrap();
    for t in ["Ready", "MemoryPressure"] {
        let find = |n: &Value| {
            n["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .cloned()
        };
        assert_eq!(find(&before), find(&after), "{t} changed");
    }
    for patch in condition_patches(&api) {
        for c in patch["status"]["conditions"].as_array().unwrap() {
            assert_eq!(
                c["type"], "KernelReady",
                "only our own types are patched: {patch}"
            );
        }
        assert_eq!(
            patch.as_object().unwrap().len(),
            1,
            "only status is patched: {patch}"
        );
    }
    // Wrong token: the emulator refuses, as an API server does.
    assert!(api.requests().iter().all(|r| r.status != 401));
}

#[test]
fn restart_does_not_reset_conditions() {
    let rt = runtime();
    let api = rt.block_on(KubeApi::start("node-token-2"));
    let mut conditions = kubelet_conditions();
    conditions.as_array_mut().unwrap().push(json!({
        "type": "KernelReady", "status": "False", "reason": "ForkFailedOutOfPIDs",
        "message": "1000 threads of a limit of 1000",
        "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2025-06-01T00:00:00Z"
    }));
    api.add_node("node-a", conditions);
    let root = tempfile::tempdir().unwrap();
    let proc = FakeProc::new(root.path());
    proc.set_threads(1000);
    let _agent = start_agent(Setup {
        checks_toml: ONLY_KERNEL,
        kubeconfig: Some(&api.kubeconfig()),
        proc_dir: Some(&proc.dir),
        ..Setup::default()
    });
    // The stale heartbeat makes a write due at once; it must keep status and transition.
    wait_for(Duration::from_secs(20), "a heartbeat write", || {
        !condition_patches(&api).is_empty()
    });
    std::thread::sleep(Duration::from_secs(2));
    let c = api.condition("node-a", "KernelReady").unwrap();
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "ForkFailedOutOfPIDs");
    assert_eq!(
        c["lastTransitionTime"], "2025-06-01T00:00:00Z",
        "transition time kept: {c}"
    );
    assert_ne!(
        c["lastHeartbeatTime"], "2026-01-01T00:00:00Z",
        "heartbeat renewed: {c}"
    );
    // Never reset to True on the way.
    for patch in condition_patches(&api) {
        for c in patch["status"]["conditions"].as_array().unwrap() {
            assert_eq!(c["status"], "False", "{patch}");
        }
    }
    let gets = api.requests().iter().filter(|r| r.method == "GET").count();
    assert!(gets >= 1, "conditions read back at startup");
}

#[test]
fn a_thousand_flapping_checks_in_a_minute_make_a_handful_of_patches() {
    let (_rt, api) = api_with_node_a("node-token-3");
    let root = tempfile::tempdir().unwrap();
    let proc = FakeProc::new(root.path());
    proc.set_threads(1000);
    let agent = start_agent(Setup {
        checks_toml: &ONLY_KERNEL.replace("interval_secs = 0.2", "interval_secs = 0.005"),
        kubeconfig: Some(&api.kubeconfig()),
        proc_dir: Some(&proc.dir),
        ..Setup::default()
    });
    // Flip between a Fatal reason, a Warning and health every 20 ms until 1,000 runs are done.
    let started = Instant::now();
    let mut i = 0u64;
    loop {
        match i % 3 {
            0 => proc.set_threads(1000),
            1 => {
                proc.set_threads(100);
                proc.set_files(9_900);
            }
            _ => proc.set_files(1000),
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(20));
        let runs = sample(
            &scrape(agent.port),
            "eksnode_check_runs_total{check=\"kernel\"}",
        )
        .unwrap_or(0.0);
        if runs >= 1000.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "1,000 runs within a minute (got {runs})"
        );
    }
    let elapsed = started.elapsed();
    let problems = scrape(agent.port);
    let failures = sample(
        &problems,
        "eksnode_problems_total{reason=\"ForkFailedOutOfPIDs\"}",
    )
    .unwrap_or(0.0)
        + sample(
            &problems,
            "eksnode_problems_total{reason=\"ApproachingMaxOpenFiles\"}",
        )
        .unwrap_or(0.0);
    assert!(
        failures > 100.0,
        "the check really flapped: {failures} failure transitions"
    );
    let patches = condition_patches(&api).len();
    // One write per 5 s at most, plus the first.
    let bound = (elapsed.as_secs() / 5 + 2) as usize;
    assert!(
        patches <= bound,
        "{patches} PATCHes in {elapsed:?} (bound {bound})"
    );
    assert!(patches <= 14, "a handful within a minute: {patches}");
    // The Warning's hundreds of appearances are one event, rate-limited per reason.
    let events = api
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/events"))
        .count();
    assert!(events <= 3, "{events} event writes for a flapping Warning");
}

#[test]
fn kernel_log_problems_become_deduplicated_events_and_conditions() {
    let (_rt, api) = api_with_node_a("node-token-4");
    let root = tempfile::tempdir().unwrap();
    let proc = FakeProc::new(root.path());
    let kmsg = root.path().join("kmsg");
    std::fs::write(&kmsg, "6,1,100,-;boot noise\n").unwrap();
    let agent = start_agent(Setup {
        checks_toml: ONLY_KERNEL,
        kubeconfig: Some(&api.kubeconfig()),
        proc_dir: Some(&proc.dir),
        kmsg: Some(&kmsg),
        ..Setup::default()
    });
    wait_for(Duration::from_secs(20), "KernelReady True", || {
        api.condition("node-a", "KernelReady")
            .is_some_and(|c| c["status"] == "True")
    });
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&kmsg)
            .unwrap();
        for seq in 0..500 {
            writeln!(
                f,
                "3,{},{},-;Out of memory: Killed process {} (java) total-vm:1024kB",
                seq + 2,
                seq * 10,
                4000 + seq
            )
            .unwrap();
        }
        writeln!(
            f,
            "3,600,9000,-;INFO: task jbd2/nvme0n1p1-8:312 blocked for more than 120 seconds."
        )
        .unwrap();
    }
    wait_for(Duration::from_secs(20), "AppBlocked event", || {
        api.events().iter().any(|e| e["reason"] == "AppBlocked")
    });
    // A hung task under I/O pressure is a Warning (the monitoring agent's severity): the
    // condition stays True.
    assert!(condition_is(
        &api,
        "KernelReady",
        "True",
        "KernelHasNoProblem"
    ));
    wait_for(Duration::from_secs(10), "OOM counted", || {
        sample(
            &scrape(agent.port),
            "eksnode_problems_total{reason=\"OOMKilling\"}",
        ) == Some(500.0)
    });
    let events = api.events();
    let oom: Vec<_> = events
        .iter()
        .filter(|e| e["reason"] == "OOMKilling")
        .collect();
    assert_eq!(
        oom.len(),
        1,
        "a flood of 500 OOM kills is one event: {events:#?}"
    );
    assert_eq!(oom[0]["regarding"]["kind"], "Node");
    assert_eq!(oom[0]["regarding"]["name"], "node-a");
    assert_eq!(oom[0]["type"], "Warning");
}

pub(crate) fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Benchmark, not a test: `EKS_AGENT_BENCH_BIN=target/release/eks-node-agent cargo test -p
/// eks-node-agent-tests --test integration -- --ignored --nocapture bench_agent_vs_node_exporter`.
/// Steady RSS and scrape latency over 200 scrapes of the agent and of Debian's node_exporter
/// with the same collectors, on this machine.
#[test]
#[ignore = "benchmark; run explicitly"]
fn bench_agent_vs_node_exporter() {
    const SCRAPES: usize = 200;
    const WARMUP: usize = 20;
    let bin = std::env::var_os("EKS_AGENT_BENCH_BIN").map_or_else(agent_bin, PathBuf::from);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(&bin)
        .args(["run", "--no-kubernetes", "--node-name", "bench", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--config")
        .arg(dir.path().join("none.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let agent = Proc(child);
    wait_for(Duration::from_secs(20), "agent", || {
        http_get(port, "/healthz").is_some_and(|r| r.0 == 200)
    });
    let ne = start_node_exporter();
    let mut results = Vec::new();
    for (name, port, pid) in [
        ("eks-node-agent", port, agent.0.id()),
        ("node_exporter", ne.1, ne.0.0.id()),
    ] {
        for _ in 0..WARMUP {
            scrape(port);
        }
        let mut times = Vec::with_capacity(SCRAPES);
        let mut bytes = 0;
        for _ in 0..SCRAPES {
            let t = Instant::now();
            bytes = scrape(port).len();
            times.push(t.elapsed());
        }
        times.sort();
        results.push((
            name,
            rss_kib(pid),
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            bytes,
        ));
    }
    println!("binary: {}", bin.display());
    println!(
        "{:<16} {:>10} {:>12} {:>12} {:>10}",
        "exporter", "RSS KiB", "p50", "p99", "bytes"
    );
    for (name, rss, p50, p99, bytes) in results {
        println!("{name:<16} {rss:>10} {p50:>12?} {p99:>12?} {bytes:>10}");
    }
}

/// Scale simulation, not a test: `cargo test -p eks-node-agent --test integration --
/// --ignored --nocapture scale_simulation` (bench-all's `write-budget` section runs the same
/// code, `eks_node_agent_tests::scale`). 2,000 simulated agents with every check, the real
/// verdict, condition state machine, taints and event rules, against the API emulator for 10
/// simulated minutes; 5% of the nodes find problems at random. Prints every write.
#[test]
#[ignore = "benchmark; run explicitly"]
fn scale_simulation() {
    let plan = eks_node_agent_tests::scale::Plan::default();
    let w = eks_node_agent_tests::scale::simulate(&runtime(), plan);
    println!(
        "{} nodes, {} simulated minutes, {}% flapping: {} condition PATCHes, {} taint PATCHes, \
         {} event writes = {:.3} writes/node/min (wall time {:?})",
        plan.nodes,
        plan.minutes,
        plan.flapping_percent,
        w.conditions,
        w.taints,
        w.events,
        w.per_node_minute(&plan),
        w.wall
    );
    assert!(w.per_node_minute(&plan) < 1.0);
}

/// A real containerd (Debian's) with its state in a temp dir, its gRPC socket, and its CRI
/// plugin (the `native` snapshotter, CNI config from `<dir>/net.d`, no streaming TCP port).
pub(crate) struct Containerd {
    _proc: Proc,
    pub(crate) socket: PathBuf,
}

/// A CNI network config: containerd's CRI plugin reports NetworkReady once one is loaded.
pub(crate) const CNI_CONFLIST: &str = r#"{"cniVersion":"0.4.0","name":"test-net","plugins":[{"type":"bridge","bridge":"cni-test0"}]}"#;

pub(crate) fn start_containerd(dir: &Path) -> Containerd {
    start_containerd_with(dir, true)
}

pub(crate) fn start_containerd_with(dir: &Path, cri: bool) -> Containerd {
    let d = dir.display();
    let cri_line = if cri {
        String::new()
    } else {
        "\"io.containerd.grpc.v1.cri\", ".to_string()
    };
    let config = format!(
        "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
disabled_plugins = [{cri_line}\"io.containerd.internal.v1.opt\", \"io.containerd.internal.v1.tracing\", \
\"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.zfs\", \"io.containerd.snapshotter.v1.devmapper\", \
\"io.containerd.snapshotter.v1.aufs\"]\n\
[grpc]\n  address = \"{d}/containerd.sock\"\n[ttrpc]\n  address = \"{d}/containerd.sock.ttrpc\"\n\
[debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n\
[plugins.\"io.containerd.grpc.v1.cri\"]\n  disable_tcp_service = true\n  stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"\n\
  [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n    snapshotter = \"native\"\n\
  [plugins.\"io.containerd.grpc.v1.cri\".cni]\n    bin_dir = \"{d}/cni-bin\"\n    conf_dir = \"{d}/net.d\"\n"
    );
    std::fs::create_dir_all(dir.join("net.d")).unwrap();
    std::fs::write(dir.join("config.toml"), config).unwrap();
    let child = Command::new("containerd")
        .arg("--config")
        .arg(dir.join("config.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("containerd (Debian package) must be installed: scripts/test.sh installs it");
    let socket = dir.join("containerd.sock");
    let c = Containerd {
        _proc: Proc(child),
        socket,
    };
    wait_for(Duration::from_secs(20), "containerd socket", || {
        std::os::unix::net::UnixStream::connect(&c.socket).is_ok()
    });
    c
}

/// A loopback HTTP server answering fixed bodies by path (status 200).
pub(crate) fn fixed_http(routes: Vec<(&'static str, String)>) -> Routes {
    let routes: Vec<(&str, Answer)> = routes
        .into_iter()
        .map(|(p, b)| (p, Answer::Body(200, b)))
        .collect();
    Routes::start(&routes)
}

#[test]
fn all_checks_against_real_containerd_and_local_endpoints() {
    let (_rt, api) = api_with_node_a("node-token-5");
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("containerd/net.d")).unwrap();
    std::fs::write(
        root.path().join("containerd/net.d/10-test.conflist"),
        CNI_CONFLIST,
    )
    .unwrap();
    let containerd = start_containerd(&root.path().join("containerd"));
    let kubelet = fixed_http(vec![("/healthz", "ok".to_string())]);
    let ipamd = fixed_http(vec![
        (
            "/v1/enis",
            r#"{"TotalIPs":29,"AssignedIPs":7,"ENIs":{}}"#.to_string(),
        ),
        ("/metrics", "awscni_assigned_ip_addresses 7\n".to_string()),
    ]);
    let conflist = root.path().join("10-aws.conflist");
    std::fs::write(&conflist, r#"{"cniVersion":"0.4.0","name":"aws-cni","plugins":[{"name":"aws-cni","type":"aws-cni"},{"type":"portmap"}]}"#).unwrap();
    // The kubelet's client certificate, with its key in the same file as the kubelet keeps it.
    let pem_path = root.path().join("kubelet-client-current.pem");
    let not_after = cert_until(
        &pem_path,
        time::OffsetDateTime::now_utc() + time::Duration::days(300),
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("daemon.toml");
    let fast = "interval_secs = 0.3\n";
    std::fs::write(
        &config,
        format!(
            "[checks.kubelet]\n{fast}[checks.containerd]\n{fast}[checks.vpc_cni]\n{fast}\
             [checks.storage]\n{fast}[checks.credentials]\n{fast}[checks.kernel]\n{fast}"
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("kubeconfig"), api.kubeconfig()).unwrap();
    let port = free_port();
    let agent = Proc(
        Command::new(agent_bin())
            .arg("run")
            .args([
                "--node-name",
                "node-a",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("--config")
            .arg(&config)
            .arg("--kubeconfig")
            .arg(dir.path().join("kubeconfig"))
            .arg("--kubelet-healthz")
            .arg(format!("http://127.0.0.1:{}/healthz", kubelet.port()))
            .arg("--containerd-socket")
            .arg(&containerd.socket)
            .arg("--cni-conflist")
            .arg(&conflist)
            .arg("--cni-conf-dir")
            .arg(root.path().join("containerd/net.d"))
            .arg("--ipamd-introspection")
            .arg(format!("http://127.0.0.1:{}", ipamd.port()))
            .arg("--ipamd-metrics")
            .arg(format!("http://127.0.0.1:{}/metrics", ipamd.port()))
            .arg("--storage-dir")
            .arg(root.path())
            .arg("--kubelet-client-cert")
            .arg(&pem_path)
            .arg("--kmsg")
            .arg(root.path().join("kmsg"))
            .args(["--systemd-bus", "none"])
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(Duration::from_secs(20), "all four conditions True", || {
        [
            "KernelReady",
            "NetworkingReady",
            "StorageReady",
            "ContainerRuntimeReady",
        ]
        .iter()
        .all(|t| {
            api.condition("node-a", t)
                .is_some_and(|c| c["status"] == "True")
        })
    });
    let text = scrape(port);
    for check in [
        "kubelet",
        "containerd",
        "vpc_cni",
        "storage",
        "credentials",
        "kernel",
    ] {
        assert_eq!(
            sample(&text, &format!("eksnode_check_up{{check=\"{check}\"}}")),
            Some(1.0),
            "{check}\n{text}"
        );
    }
    assert_eq!(sample(&text, "eksnode_kubelet_up"), Some(1.0));
    assert_eq!(sample(&text, "eksnode_containerd_up"), Some(1.0));
    for c in ["RuntimeReady", "NetworkReady"] {
        assert_eq!(
            sample(
                &text,
                &format!("eksnode_container_runtime_condition{{condition=\"{c}\"}}")
            ),
            Some(1.0),
            "{c}\n{text}"
        );
    }
    assert_eq!(sample(&text, "eksnode_vpc_cni_ips"), Some(29.0));
    assert_eq!(sample(&text, "eksnode_vpc_cni_assigned_ips"), Some(7.0));
    assert_eq!(
        sample(
            &text,
            "eksnode_kubelet_client_cert_expiry_timestamp_seconds"
        ),
        Some(not_after as f64)
    );
    let pem = std::fs::read_to_string(&pem_path).unwrap();
    let secret_marker = &pem[pem.find("-----BEGIN PRIVATE KEY-----").unwrap()..];
    assert!(
        !text.contains(secret_marker.lines().nth(1).unwrap()),
        "no key material on /metrics"
    );

    // containerd goes away: ContainerRuntimeReady False; kubelet goes away: an event.
    drop(containerd);
    drop(kubelet);
    wait_for(
        Duration::from_secs(20),
        "ContainerRuntimeReady False",
        || {
            api.condition("node-a", "ContainerRuntimeReady")
                .is_some_and(|c| c["status"] == "False" && c["reason"] == "ContainerdUnreachable")
        },
    );
    wait_for(Duration::from_secs(20), "KubeletUnreachable event", || {
        api.events()
            .iter()
            .any(|e| e["reason"] == "KubeletUnreachable")
    });
    // containerd comes back: the condition recovers.
    let _containerd = start_containerd(&root.path().join("containerd"));
    wait_for(
        Duration::from_secs(20),
        "ContainerRuntimeReady True again",
        || {
            api.condition("node-a", "ContainerRuntimeReady")
                .is_some_and(|c| c["status"] == "True")
        },
    );
    drop(agent);
}

#[test]
fn sighup_reloads_the_check_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let config = dir.path().join("daemon.toml");
    // Once an hour: after the first round the kernel check does not run again.
    std::fs::write(
        &config,
        ONLY_KERNEL.replace("interval_secs = 0.2", "interval_secs = 3600"),
    )
    .unwrap();
    let port = free_port();
    let mut agent = Proc(
        Command::new(agent_bin())
            .args([
                "run",
                "--no-kubernetes",
                "--node-name",
                "node-a",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("--config")
            .arg(&config)
            .arg("--kmsg")
            .arg(dir.path().join("kmsg"))
            .env("NOTIFY_SOCKET", &sock_path)
            .env_remove("WATCHDOG_USEC")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(Duration::from_secs(20), "healthz", || {
        http_get(port, "/healthz").is_some_and(|r| r.0 == 200)
    });
    std::thread::sleep(Duration::from_millis(500));
    let runs = |t: &str| sample(t, "eksnode_check_runs_total{check=\"kernel\"}").unwrap();
    assert_eq!(runs(&scrape(port)), 1.0);
    std::fs::write(
        &config,
        ONLY_KERNEL.replace("interval_secs = 0.2", "interval_secs = 0.05"),
    )
    .unwrap();
    assert!(
        Command::new("kill")
            .arg("-HUP")
            .arg(agent.0.id().to_string())
            .status()
            .unwrap()
            .success()
    );
    wait_for(
        Duration::from_secs(10),
        "kernel check runs on the new schedule",
        || runs(&scrape(port)) >= 10.0,
    );
    let mut saw_reloading = false;
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "RELOADING=1")
        {
            saw_reloading = true;
            break;
        }
    }
    assert!(saw_reloading, "RELOADING=1 sent on SIGHUP");
    // A broken file on reload keeps the running config.
    std::fs::write(&config, "[checks.nope]\n").unwrap();
    assert!(
        Command::new("kill")
            .arg("-HUP")
            .arg(agent.0.id().to_string())
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        http_get(port, "/healthz").is_some_and(|r| r.0 == 200),
        "still serving"
    );
    assert!(agent.term().success());
}

#[test]
fn bad_config_file_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("daemon.toml");
    std::fs::write(&config, "[checks.kubelett]\ninterval_secs = 5\n").unwrap();
    let out = Command::new(agent_bin())
        .args(["run", "--no-kubernetes", "--node-name", "n", "--listen"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("daemon.toml") && err.contains("kubelett"),
        "{err}"
    );
}

#[test]
fn emulator_merges_conditions_by_type_and_rejects_directives() {
    use eks_node_agent_tests::kube_api::strategic_merge_node;
    let mut node = json!({"status": {"conditions": [
        {"type": "Ready", "status": "True"},
        {"type": "KernelReady", "status": "True", "reason": "A"}
    ]}});
    strategic_merge_node(
        &mut node,
        &json!({"status": {"conditions": [
            {"type": "KernelReady", "status": "False", "reason": "B"},
            {"type": "StorageReady", "status": "True"}
        ]}}),
    )
    .unwrap();
    let c = node["status"]["conditions"].as_array().unwrap();
    assert_eq!(c.len(), 3);
    assert_eq!(c[0], json!({"type": "Ready", "status": "True"}));
    assert_eq!(c[1]["reason"], "B");
    assert!(
        strategic_merge_node(
            &mut node,
            &json!({"status": {"conditions": [{"status": "True"}]}})
        )
        .is_err()
    );
    assert!(strategic_merge_node(&mut node, &json!({"status": {"$patch": "replace"}})).is_err());
}

#[test]
fn emulator_refuses_a_wrong_token_like_an_api_server() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let (rt, api) = api_with_node_a("right-token");
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, api.kubeconfig().replace("right-token", "wrong-token")).unwrap();
    let err = rt
        .block_on(async {
            let node = eks_node_agent::report::kube::NodeApi::connect(&kc, "node-a")
                .await
                .unwrap();
            node.conditions().await
        })
        .unwrap_err();
    let chain = eks_node_agent::model::text::error_chain(&err);
    assert!(chain.contains("node-a") && chain.contains("401"), "{chain}");
    assert_eq!(api.requests().last().unwrap().status, 401);
}

/// Every check but those named, disabled; the named ones every 0.3 s.
pub(crate) fn only_checks(names: &[&str]) -> String {
    let mut out = String::from("[networking]\ncni_grace_secs = 0\n");
    for c in [
        "kubelet",
        "containerd",
        "vpc_cni",
        "network",
        "kernel",
        "storage",
        "credentials",
        "clock",
        "accelerators",
        "pods",
    ] {
        if names.contains(&c) {
            out.push_str(&format!("[checks.{c}]\ninterval_secs = 0.3\n"));
        } else {
            out.push_str(&format!("[checks.{c}]\nenabled = false\n"));
        }
    }
    out
}

/// Starts `run` writing to the API emulator, with `extra` arguments, and waits for /healthz.
pub(crate) fn run_against(
    api: &KubeApi,
    dir: &Path,
    checks: &str,
    extra: &[&std::ffi::OsStr],
) -> (Proc, u16) {
    let config = dir.join("daemon.toml");
    std::fs::write(&config, checks).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig()).unwrap();
    let port = free_port();
    let agent = Proc(
        Command::new(agent_bin())
            .arg("run")
            .args(["--node-name", "node-a", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--config")
            .arg(&config)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--kubelet-healthz")
            .arg(format!("http://127.0.0.1:{}/healthz", free_port()))
            .arg("--kmsg")
            .arg(dir.join("kmsg"))
            .arg("--storage-dir")
            .arg(dir)
            .args(extra)
            .env_remove("NOTIFY_SOCKET")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(Duration::from_secs(20), "agent /healthz", || {
        http_get(port, "/healthz").is_some_and(|(code, _)| code == 200)
    });
    (agent, port)
}

pub(crate) fn condition_is(api: &KubeApi, ct: &str, status: &str, reason: &str) -> bool {
    api.condition("node-a", ct)
        .is_some_and(|c| c["status"] == status && (reason.is_empty() || c["reason"] == reason))
}

/// A real containerd with its CRI plugin and no CNI config reports NetworkReady=false
/// (`NetworkPluginNotReady`): on a hybrid node (no VPC CNI check) that alone sets
/// NetworkingReady False with containerd's reason while ContainerRuntimeReady stays True; a
/// CNI config appearing makes it True. A containerd without the CRI plugin answers the
/// Status call with `Unimplemented`: ContainerRuntimeReady False.
#[test]
fn cri_status_of_real_containerd_drives_runtime_and_networking_conditions() {
    let (_rt, api) = api_with_node_a("node-token-cri");
    let root = tempfile::tempdir().unwrap();
    let ctrd_dir = root.path().join("containerd");
    let containerd = start_containerd(&ctrd_dir);
    let socket = containerd.socket.clone();
    let (_agent, port) = run_against(
        &api,
        root.path(),
        &only_checks(&["containerd"]),
        &[
            "--hybrid".as_ref(),
            "--systemd-bus".as_ref(),
            "none".as_ref(),
            "--containerd-socket".as_ref(),
            socket.as_os_str(),
        ],
    );
    wait_for(Duration::from_secs(20), "NetworkingReady False", || {
        condition_is(&api, "NetworkingReady", "False", "NetworkPluginNotReady")
    });
    assert!(condition_is(
        &api,
        "ContainerRuntimeReady",
        "True",
        "ContainerRuntimeIsReady"
    ));
    let message = api.condition("node-a", "NetworkingReady").unwrap()["message"].clone();
    assert!(
        message.as_str().unwrap().contains("cni"),
        "containerd's own message is carried: {message}"
    );
    let text = scrape(port);
    assert_eq!(
        sample(
            &text,
            "eksnode_container_runtime_condition{condition=\"NetworkReady\"}"
        ),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "eksnode_container_runtime_condition{condition=\"RuntimeReady\"}"
        ),
        Some(1.0)
    );

    // A CNI config appears: containerd loads it and reports NetworkReady; the condition
    // recovers.
    write_atomic(&ctrd_dir.join("net.d/10-test.conflist"), CNI_CONFLIST);
    wait_for(Duration::from_secs(30), "NetworkingReady True", || {
        condition_is(&api, "NetworkingReady", "True", "NetworkingIsReady")
    });

    // containerd without its CRI plugin: the call is Unimplemented.
    drop(containerd);
    let _plain = start_containerd_with(&ctrd_dir, false);
    wait_for(
        Duration::from_secs(30),
        "ContainerRuntimeReady False",
        || {
            condition_is(
                &api,
                "ContainerRuntimeReady",
                "False",
                "ContainerRuntimeCRIFailed",
            )
        },
    );
    let message = api.condition("node-a", "ContainerRuntimeReady").unwrap()["message"].clone();
    assert!(
        message.as_str().unwrap().contains("Unimplemented"),
        "{message}"
    );
}

/// kubelet.service and containerd.service as a REAL systemd (`systemd --user`) reports
/// them over D-Bus: a kubelet unit that keeps failing and being restarted raises the
/// restart counter and is a `KubeletUnitNotActive` event; a containerd unit that is not
/// running sets ContainerRuntimeReady False (`ContainerdUnitNotActive`) although containerd
/// answers on its socket, and True again once the unit is started.
#[test]
fn unit_state_from_real_systemd_feeds_checks_and_metrics() {
    use eks_node_agent_tests::systemd_dbus::SystemdUser;
    if let Some(why) = SystemdUser::unavailable() {
        eprintln!("SKIPPED unit_state_from_real_systemd_feeds_checks_and_metrics: {why}");
        return;
    }
    let (rt, api) = api_with_node_a("node-token-units");
    let root = tempfile::tempdir().unwrap();
    let config_home = root.path().join("config");
    let units = config_home.join("systemd/user");
    std::fs::create_dir_all(&units).unwrap();
    // Fails at once, restarted every 100 ms without a start limit.
    std::fs::write(
        units.join("kubelet.service"),
        "[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStart=/bin/false\nRestart=always\nRestartSec=100ms\n",
    )
    .unwrap();
    std::fs::write(
        units.join("containerd.service"),
        "[Service]\nExecStart=/bin/sleep 1000\n",
    )
    .unwrap();
    let systemd = rt.block_on(SystemdUser::start(&config_home));
    let bus = systemd.address();
    let start_unit = |name: &str| rt.block_on(systemd.start_unit(name));
    start_unit("kubelet.service");

    std::fs::create_dir_all(root.path().join("containerd/net.d")).unwrap();
    std::fs::write(
        root.path().join("containerd/net.d/10-test.conflist"),
        CNI_CONFLIST,
    )
    .unwrap();
    let containerd = start_containerd(&root.path().join("containerd"));
    let (_agent, port) = run_against(
        &api,
        root.path(),
        &only_checks(&["kubelet", "containerd"]),
        &[
            "--hybrid".as_ref(),
            "--systemd-bus".as_ref(),
            bus.as_ref(),
            "--containerd-socket".as_ref(),
            containerd.socket.as_os_str(),
        ],
    );
    wait_for(
        Duration::from_secs(20),
        "ContainerRuntimeReady False",
        || {
            condition_is(
                &api,
                "ContainerRuntimeReady",
                "False",
                "ContainerdUnitNotActive",
            )
        },
    );
    let message = api.condition("node-a", "ContainerRuntimeReady").unwrap()["message"].clone();
    assert!(
        message
            .as_str()
            .unwrap()
            .contains("containerd.service is inactive"),
        "{message}"
    );
    wait_for(
        Duration::from_secs(20),
        "KubeletUnitNotActive event",
        || {
            api.events()
                .iter()
                .any(|e| e["reason"] == "KubeletUnitNotActive")
        },
    );
    // NRestarts above 3 and rising: the monitoring agent's KubeletRepeatedRestart, a Warning.
    wait_for(
        Duration::from_secs(20),
        "KubeletRepeatedRestart event",
        || {
            api.events()
                .iter()
                .any(|e| e["reason"] == "KubeletRepeatedRestart" && e["type"] == "Warning")
        },
    );
    wait_for(Duration::from_secs(20), "kubelet restarts counted", || {
        sample(
            &scrape(port),
            "eksnode_systemd_unit_restarts_total{unit=\"kubelet.service\"}",
        )
        .is_some_and(|n| n >= 3.0)
    });
    let text = scrape(port);
    assert_eq!(
        sample(
            &text,
            "eksnode_systemd_unit_active{unit=\"containerd.service\"}"
        ),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "eksnode_systemd_unit_restarts_total{unit=\"containerd.service\"}"
        ),
        Some(0.0)
    );

    // The containerd unit starts: the condition recovers.
    start_unit("containerd.service");
    wait_for(
        Duration::from_secs(20),
        "ContainerRuntimeReady True",
        || {
            condition_is(
                &api,
                "ContainerRuntimeReady",
                "True",
                "ContainerRuntimeIsReady",
            )
        },
    );
    assert_eq!(
        sample(
            &scrape(port),
            "eksnode_systemd_unit_active{unit=\"containerd.service\"}"
        ),
        Some(1.0)
    );
    drop(systemd);
}

/// The clock check reads the same adjtimex state node_exporter's timex collector reads: an
/// unsynchronised kernel clock is a `ClockUnsynchronized` Warning event (and
/// `node_timex_sync_status 0`), never a condition; a synchronised one is neither. The
/// expectation comes from this host's own clock, read here the same way.
#[test]
fn unsynchronised_clock_is_a_warning_event_not_a_condition() {
    let synced = eks_node_agent::report::host::timex::read()
        .expect("adjtimex(2) read-only")
        .synchronized();
    let (_rt, api) = api_with_node_a("node-token-clock");
    let root = tempfile::tempdir().unwrap();
    let (_agent, port) = run_against(
        &api,
        root.path(),
        &only_checks(&["clock"]),
        &["--systemd-bus".as_ref(), "none".as_ref()],
    );
    let text = scrape(port);
    assert_eq!(
        sample(&text, "eksnode_check_up{check=\"clock\"}"),
        Some(if synced { 1.0 } else { 0.0 }),
        "{text}"
    );
    assert_eq!(
        sample(&text, "node_timex_sync_status"),
        Some(if synced { 1.0 } else { 0.0 })
    );
    let clock_events = || {
        api.events()
            .into_iter()
            .filter(|e| e["reason"] == "ClockUnsynchronized")
            .collect::<Vec<_>>()
    };
    if synced {
        std::thread::sleep(Duration::from_secs(2));
        assert!(clock_events().is_empty());
    } else {
        wait_for(Duration::from_secs(20), "ClockUnsynchronized event", || {
            !clock_events().is_empty()
        });
        let e = &clock_events()[0];
        assert_eq!(e["type"], "Warning");
        assert!(
            e["note"].as_str().unwrap().contains("unsynchronised"),
            "{e}"
        );
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(clock_events().len(), 1, "one event while the state lasts");
    }
    let node = api.node("node-a").unwrap();
    assert!(
        !node["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["reason"] == "ClockUnsynchronized"),
        "the clock writes no condition"
    );
}

/// `init`'s phase durations file (the format `apply::phases::record` writes atomically)
/// becomes `eksnode_bootstrap_phase_duration_seconds{phase}`, re-read at each scrape.
#[test]
fn bootstrap_phase_durations_are_exported() {
    use eks_node_agent::apply::phases;
    let (_rt, api) = api_with_node_a("node-token-phases");
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("run/eks-node-agent/init-phases.json");
    phases::record(&file, "discover", Duration::from_millis(1250)).unwrap();
    let (_agent, port) = run_against(
        &api,
        root.path(),
        &only_checks(&["kernel"]),
        &[
            "--systemd-bus".as_ref(),
            "none".as_ref(),
            "--init-phases".as_ref(),
            file.as_os_str(),
        ],
    );
    let text = scrape(port);
    assert_eq!(
        sample(
            &text,
            "eksnode_bootstrap_phase_duration_seconds{phase=\"discover\"}"
        ),
        Some(1.25),
        "{text}"
    );
    assert!(!text.contains("phase=\"config\""));
    phases::record(&file, "config", Duration::from_millis(40)).unwrap();
    assert_eq!(
        sample(
            &scrape(port),
            "eksnode_bootstrap_phase_duration_seconds{phase=\"config\"}"
        ),
        Some(0.04)
    );
}

/// ipamd with 27 of 29 pod IPs assigned: a `PodIPsNearlyExhausted` Warning event and the
/// counter, while NetworkingReady stays True; all 29 assigned: `IPAMDNoIPs`, a Warning too
/// (the monitoring agent's severity: ipamd may still attach an ENI).
#[test]
fn vpc_cni_near_exhaustion_and_exhaustion_are_events() {
    let (_rt, api) = api_with_node_a("node-token-ipam");
    let root = tempfile::tempdir().unwrap();
    let conflist = root.path().join("10-aws.conflist");
    std::fs::write(
        &conflist,
        r#"{"cniVersion":"0.4.0","name":"aws-cni","plugins":[{"name":"aws-cni","type":"aws-cni"}]}"#,
    )
    .unwrap();
    let ipamd = fixed_http(vec![
        (
            "/v1/enis",
            r#"{"TotalIPs":29,"AssignedIPs":27,"ENIs":{}}"#.to_string(),
        ),
        ("/metrics", "awscni_assigned_ip_addresses 27\n".to_string()),
    ]);
    let full = fixed_http(vec![
        (
            "/v1/enis",
            r#"{"TotalIPs":29,"AssignedIPs":29,"ENIs":{}}"#.to_string(),
        ),
        ("/metrics", "awscni_assigned_ip_addresses 29\n".to_string()),
    ]);
    let args = |port: u16| {
        [
            "--systemd-bus".to_string(),
            "none".to_string(),
            "--cni-conflist".to_string(),
            conflist.display().to_string(),
            "--ipamd-introspection".to_string(),
            format!("http://127.0.0.1:{port}"),
            "--ipamd-metrics".to_string(),
            format!("http://127.0.0.1:{port}/metrics"),
        ]
    };
    let nearly = args(ipamd.port());
    let nearly: Vec<&std::ffi::OsStr> = nearly.iter().map(|s| s.as_ref()).collect();
    let (agent, port) = run_against(&api, root.path(), &only_checks(&["vpc_cni"]), &nearly);
    wait_for(Duration::from_secs(20), "NetworkingReady True", || {
        condition_is(&api, "NetworkingReady", "True", "NetworkingIsReady")
    });
    wait_for(
        Duration::from_secs(20),
        "PodIPsNearlyExhausted event",
        || {
            api.events()
                .iter()
                .any(|e| e["reason"] == "PodIPsNearlyExhausted" && e["type"] == "Warning")
        },
    );
    assert_eq!(
        sample(
            &scrape(port),
            "eksnode_problems_total{reason=\"PodIPsNearlyExhausted\"}"
        ),
        Some(1.0),
        "one warning while the state lasts"
    );
    drop(agent);
    let exhausted = args(full.port());
    let exhausted: Vec<&std::ffi::OsStr> = exhausted.iter().map(|s| s.as_ref()).collect();
    let (_agent, _) = run_against(&api, root.path(), &only_checks(&["vpc_cni"]), &exhausted);
    wait_for(Duration::from_secs(20), "IPAMDNoIPs event", || {
        events_with(&api, "IPAMDNoIPs") == 1
    });
    assert!(condition_is(
        &api,
        "NetworkingReady",
        "True",
        "NetworkingIsReady"
    ));
}

/// The API server answers 409, 429, 500 and 503 for a while (contention, overload, etcd
/// trouble): the agent keeps checking and serving /metrics, backs off instead of hammering
/// the server, its memory stays flat, and the condition lands once the server recovers.
#[test]
fn api_server_conflicts_throttling_and_errors_are_retried_with_bounded_memory() {
    let (_rt, api) = api_with_node_a("node-token-1");
    let faults: Vec<u16> = [409, 429, 500, 503].repeat(6);
    api.fail_next(&faults);
    let root = tempfile::tempdir().unwrap();
    let proc = FakeProc::new(root.path());
    proc.set_threads(1000);
    let agent = start_agent(Setup {
        checks_toml: ONLY_KERNEL,
        kubeconfig: Some(&api.kubeconfig()),
        proc_dir: Some(&proc.dir),
        ..Setup::default()
    });
    let pid = agent.proc.0.id();
    let started = Instant::now();
    let mut rss = vec![rss_kib(pid)];
    wait_for(
        Duration::from_secs(120),
        "KernelReady False after the faults",
        || {
            rss.push(rss_kib(pid));
            assert!(
                scrape(agent.port).contains("eksnode_"),
                "/metrics keeps answering"
            );
            api.condition("node-a", "KernelReady")
                .is_some_and(|c| c["status"] == "False")
        },
    );
    let elapsed = started.elapsed();
    assert_eq!(api.faults_pending(), 0, "every fault was served");
    assert_eq!(
        api.condition("node-a", "KernelReady").unwrap()["reason"],
        "ForkFailedOutOfPIDs"
    );
    // Backoff: 24 failures did not turn into a tight loop of requests.
    let writes = api.requests().iter().filter(|r| r.method != "GET").count();
    assert!(
        writes <= faults.len() + 5,
        "{writes} writes for {} faults in {elapsed:?}",
        faults.len()
    );
    // Memory is flat through the failures (debug build; the figure is the growth).
    let first = rss[0];
    let max = rss.iter().copied().max().unwrap_or(first);
    assert!(
        max.saturating_sub(first) < 16 * 1024,
        "RSS grew from {first} KiB to {max} KiB"
    );
    // Kubelet's conditions are untouched by the retries.
    let node = api.node("node-a").unwrap();
    let ready = node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned();
    assert_eq!(ready.unwrap()["status"], "True");
}

/// A certificate (with its key after it, as the kubelet keeps it) valid until `not_after`.
pub(crate) fn cert_until(path: &Path, not_after: time::OffsetDateTime) -> i64 {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["node-a".to_string()]).unwrap();
    let not_after = not_after.replace_nanosecond(0).unwrap();
    params.not_after = not_after;
    let cert = params.self_signed(&key).unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
    not_after.unix_timestamp()
}

pub(crate) fn events_with(api: &KubeApi, reason: &str) -> usize {
    api.events()
        .iter()
        .filter(|e| e["reason"] == reason)
        .count()
}

/// The credentials check watches the IAM credentials the kubelet's exec plugin uses, from the
/// source `--iam-credentials auto` picks on each kind of node, and exports their expiry:
/// - EC2 instance role: IMDS (emulator) `Expiration`; a rotation is seen, credentials that
///   EC2 stopped rotating are a Warning event, and the secrets IMDS serves appear in no log
///   line and no metric;
/// - SSM hybrid node: the SSM agent's file, rotated + 1 h; a stale file is an expired event,
///   a rotation recovers;
/// - Roles Anywhere hybrid node: the notAfter of the certificate named in the hybrid AWS
///   config that `init` writes (a path with a space, quoted);
/// - a bad `--iam-credentials` value is exit 2.
#[test]
fn iam_credentials_expiry_per_source_is_exported_and_checked() {
    let (_rt, api) = api_with_node_a("node-token-iam");
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let series = |source: &str| {
        format!("eksnode_iam_credentials_expiry_timestamp_seconds{{source=\"{source}\"}}")
    };
    let checks = "[checks.kubelet]\nenabled = false\n[checks.containerd]\nenabled = false\n\
        [checks.vpc_cni]\nenabled = false\n[checks.storage]\nenabled = false\n\
        [checks.kernel]\nenabled = false\n[checks.clock]\nenabled = false\n\
        [checks.credentials]\ninterval_secs = 0.2\n";
    let creds = |expires: time::OffsetDateTime| eks_node_agent_tests::imds::RoleCredentials {
        role: "eks-node-role".into(),
        access_key_id: "ASIAIAMEXPIRYTEST001".into(),
        secret_access_key: "secret-iam-expiry-never-logged".into(),
        token: "token-iam-expiry-never-logged".into(),
        expiration: expires
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
        last_updated: now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
    };

    // EC2: the instance role.
    let dir = tempfile::tempdir().unwrap();
    let kubelet_cert = dir.path().join("kubelet-client-current.pem");
    let first = now + time::Duration::hours(6);
    let mut instance = eks_node_agent_tests::imds::Instance::example();
    instance.credentials = Some(creds(first));
    let imds = eks_node_agent_tests::imds::ImdsEmulator::start(instance.clone());
    let log = dir.path().join("stderr.log");
    cert_until(&kubelet_cert, now + time::Duration::days(300));
    {
        let agent = start_agent(Setup {
            checks_toml: checks,
            kubeconfig: Some(&api.kubeconfig()),
            env: vec![
                ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint()),
                ("AWS_EC2_METADATA_DISABLED", "false".into()),
                ("EKS_NODE_AGENT_LOG", "debug".into()),
            ],
            args: vec!["--iam-credentials".into(), "instance-role".into()],
            kubelet_cert: Some(&kubelet_cert),
            stderr: Some(&log),
            ..Setup::default()
        });
        let role = series("instance-role");
        wait_for(Duration::from_secs(20), "instance role expiry", || {
            sample(&scrape(agent.port), &role) == Some(first.unix_timestamp() as f64)
        });
        // EC2 stopped rotating: two minutes left.
        let late = now + time::Duration::minutes(2);
        imds.set_credentials(Some(creds(late)), &instance.account_id);
        wait_for(Duration::from_secs(20), "expiring event", || {
            events_with(&api, "IamCredentialsExpiring") == 1
        });
        let text = scrape(agent.port);
        assert_eq!(sample(&text, &role), Some(late.unix_timestamp() as f64));
        assert_eq!(
            sample(&text, "eksnode_check_up{check=\"credentials\"}"),
            Some(0.0)
        );
        // Rotation resumes: healthy again.
        let rotated = now + time::Duration::hours(7);
        imds.set_credentials(Some(creds(rotated)), &instance.account_id);
        wait_for(Duration::from_secs(20), "rotation seen", || {
            let text = scrape(agent.port);
            sample(&text, &role) == Some(rotated.unix_timestamp() as f64)
                && sample(&text, "eksnode_check_up{check=\"credentials\"}") == Some(1.0)
        });
        // No instance profile at all.
        imds.set_credentials(None, &instance.account_id);
        wait_for(Duration::from_secs(20), "missing role event", || {
            events_with(&api, "InstanceRoleMissing") == 1
        });
        for secret in [
            "secret-iam-expiry-never-logged",
            "token-iam-expiry-never-logged",
        ] {
            assert!(!scrape(agent.port).contains(secret));
        }
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("instance-role"),
        "the source is logged: {logged}"
    );
    for secret in [
        "secret-iam-expiry-never-logged",
        "token-iam-expiry-never-logged",
    ] {
        assert!(!logged.contains(secret), "{secret} reached the log");
    }
    assert!(
        imds.requests() > 0 && imds.tokens_issued() <= 2,
        "one IMDS token serves the check's reads ({} issued)",
        imds.tokens_issued()
    );

    // SSM hybrid node: auto picks the SSM agent's file (no Roles Anywhere config).
    let ssm_dir = tempfile::tempdir().unwrap();
    let ssm_file = ssm_dir.path().join("credentials");
    std::fs::write(&ssm_file, "[default]\naws_access_key_id = x\n").unwrap();
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&ssm_file)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    {
        let agent = start_agent(Setup {
            checks_toml: checks,
            kubeconfig: Some(&api.kubeconfig()),
            env: vec![
                (
                    "AWS_SHARED_CREDENTIALS_FILE",
                    ssm_file.display().to_string(),
                ),
                (
                    "AWS_CONFIG_FILE",
                    ssm_dir.path().join("absent").display().to_string(),
                ),
            ],
            args: vec!["--hybrid".into()],
            kubelet_cert: Some(&kubelet_cert),
            ..Setup::default()
        });
        let ssm = series("ssm-credentials-file");
        let stale = two_hours_ago
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        wait_for(Duration::from_secs(20), "expired SSM credentials", || {
            sample(&scrape(agent.port), &ssm) == Some(stale as f64)
                && events_with(&api, "IamCredentialsExpired") == 1
        });
        // The SSM agent rotates: the file is replaced.
        let tmp = ssm_dir.path().join("credentials.new");
        std::fs::write(&tmp, "[default]\naws_access_key_id = y\n").unwrap();
        std::fs::rename(&tmp, &ssm_file).unwrap();
        wait_for(Duration::from_secs(20), "rotated SSM credentials", || {
            let text = scrape(agent.port);
            sample(&text, &ssm).is_some_and(|v| v > (stale + 3000) as f64)
                && sample(&text, "eksnode_check_up{check=\"credentials\"}") == Some(1.0)
        });
    }

    // Roles Anywhere hybrid node: the certificate named by the hybrid AWS config.
    let ra = tempfile::tempdir().unwrap();
    let cert = ra.path().join("my pki").join("node.pem");
    let not_after = cert_until(&cert, now + time::Duration::days(3));
    let aws_config = ra.path().join("config");
    std::fs::write(
        &aws_config,
        format!(
            "[default]\nregion = us-west-2\ncredential_process = /usr/bin/eks-node-agent credentials --certificate \"{}\" --private-key /etc/iam/pki/server.key\n",
            cert.display()
        ),
    )
    .unwrap();
    {
        let agent = start_agent(Setup {
            checks_toml: checks,
            kubeconfig: Some(&api.kubeconfig()),
            env: vec![("AWS_CONFIG_FILE", aws_config.display().to_string())],
            args: vec!["--hybrid".into()],
            kubelet_cert: Some(&kubelet_cert),
            ..Setup::default()
        });
        wait_for(Duration::from_secs(20), "certificate expiry", || {
            sample(&scrape(agent.port), &series("roles-anywhere-certificate"))
                == Some(not_after as f64)
        });
        wait_for(
            Duration::from_secs(20),
            "expiring certificate event",
            || {
                api.events().iter().any(|e| {
                    e["reason"] == "IamCredentialsExpiring"
                        && e["note"]
                            .as_str()
                            .is_some_and(|n| n.contains("Roles Anywhere"))
                })
            },
        );
    }

    let out = Command::new(agent_bin())
        .args(["run", "--no-kubernetes", "--iam-credentials", "imds"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--iam-credentials") && err.contains("instance-role"),
        "{err}"
    );
}

/// Every metric the shipped Grafana dashboard queries is a series of a real scrape of `run`
/// (joined to the Kubernetes API emulator, with a kubelet client certificate and SSM
/// credentials to watch): no panel of the dashboard stays empty for a missing metric.
#[test]
fn dashboard_queries_only_series_a_real_scrape_has() {
    let (_rt, api) = api_with_node_a("node-token-dashboard");
    let dir = tempfile::tempdir().unwrap();
    let kubelet_cert = dir.path().join("kubelet-client-current.pem");
    cert_until(
        &kubelet_cert,
        time::OffsetDateTime::now_utc() + time::Duration::days(300),
    );
    let ssm = dir.path().join("credentials");
    std::fs::write(&ssm, "[default]\n").unwrap();
    let agent = start_agent(Setup {
        checks_toml: "[checks.kernel]\ninterval_secs = 0.2\n[checks.credentials]\ninterval_secs = 0.2\n",
        kubeconfig: Some(&api.kubeconfig()),
        args: vec![
            "--iam-credentials".into(),
            format!("ssm={}", ssm.display()).into(),
        ],
        kubelet_cert: Some(&kubelet_cert),
        ..Setup::default()
    });
    let wanted: BTreeSet<String> = crate::prometheus::dashboard_queries()
        .iter()
        .flat_map(|q| crate::prometheus::metric_names(q))
        .collect();
    assert!(
        wanted.iter().any(|m| m.starts_with("eksnode_")),
        "{wanted:?}"
    );
    assert!(wanted.iter().any(|m| m.starts_with("node_")), "{wanted:?}");
    let missing = |text: &str| -> Vec<String> {
        wanted
            .iter()
            .filter(|m| {
                !text.lines().any(|l| {
                    l.strip_prefix(m.as_str())
                        .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                })
            })
            .cloned()
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = scrape(agent.port);
        let gone = missing(&text);
        if gone.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard queries metrics the scrape does not have: {gone:?}\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
