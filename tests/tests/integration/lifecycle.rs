//! EC2 lifecycle events end to end: `eks-node-agent run` with `[lifecycle]` against the IMDS
//! emulator (spot, rebalance, scheduled events, target lifecycle state), the Kubernetes API
//! emulator (pods, Eviction with PodDisruptionBudgets, deletion with grace periods, Node
//! PATCH) and the Auto Scaling emulator (signatures checked by botocore); the warm-pool hold
//! against moto, the IMDS emulator and the systemd D-Bus emulator.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use eks_node_agent_tests::autoscaling::{AutoScalingEmulator, Hook, Keys};
use eks_node_agent_tests::free_port;
use eks_node_agent_tests::imds::{ImdsEmulator, Instance, RoleCredentials, ScheduledEvent};
use eks_node_agent_tests::kube_api::{KubeApi, PodSpec};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::agent_bin;

const NODE: &str = "node-a";
const TOKEN: &str = "lifecycle-token";

/// A child process killed on drop.
struct Daemon {
    child: Child,
    port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn metrics(&self) -> String {
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        buf.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    }

    fn sample(&self, series: &str) -> Option<f64> {
        let text = self.metrics();
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }
}

/// The emulators of one node and a directory for the daemon's files.
struct World {
    _rt: tokio::runtime::Runtime,
    api: KubeApi,
    imds: ImdsEmulator,
    dir: tempfile::TempDir,
}

impl Drop for World {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- agent log ---\n{}", self.log());
        }
    }
}

fn credentials() -> RoleCredentials {
    RoleCredentials {
        role: "node-role".into(),
        access_key_id: "ASIAIMDSEXAMPLE00001".into(),
        secret_access_key: "imds/secret/key/for/lifecycle/tests000000".into(),
        token: "imds-session-token-lifecycle".into(),
        expiration: "2099-01-01T00:00:00Z".into(),
        last_updated: "2026-01-01T00:00:00Z".into(),
    }
}

fn world() -> World {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = rt.block_on(KubeApi::start(TOKEN));
    api.add_node(
        NODE,
        json!([{ "type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ok" }]),
    );
    let mut instance = Instance::example();
    instance.credentials = Some(credentials());
    let imds = ImdsEmulator::start(instance);
    World {
        _rt: rt,
        api,
        imds,
        dir: tempfile::tempdir().unwrap(),
    }
}

/// Only the lifecycle watchers matter here: every check is off.
const NO_CHECKS: &str = "[checks.kubelet]\nenabled = false\n[checks.containerd]\nenabled = false\n\
[checks.vpc_cni]\nenabled = false\n[checks.kernel]\nenabled = false\n[checks.storage]\nenabled = false\n\
[checks.credentials]\nenabled = false\n[checks.clock]\nenabled = false\n";

impl World {
    fn start(&self, lifecycle_toml: &str, env: &[(&str, String)]) -> Daemon {
        let dir = self.dir.path();
        let config = dir.join("daemon.toml");
        std::fs::write(&config, format!("{NO_CHECKS}{lifecycle_toml}")).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, self.api.kubeconfig()).unwrap();
        let port = free_port();
        let before = self.imds.requests();
        let mut cmd = Command::new(agent_bin());
        cmd.arg("run")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--node-name", NODE])
            .arg("--config")
            .arg(&config)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--lifecycle-state")
            .arg(dir.join("state/lifecycle.json"))
            .args(["--systemd-bus", "none", "--iam-credentials", "none"])
            .arg("--kmsg")
            .arg(dir.join("kmsg"))
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env("AWS_EC2_METADATA_DISABLED", "false")
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", self.imds.endpoint())
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.join("no-aws-credentials"),
            )
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("agent.log"))
                    .unwrap(),
            ));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let daemon = Daemon {
            child: cmd.spawn().unwrap(),
            port,
        };
        // The watchers run once IMDS hears from them.
        wait_for(
            Duration::from_secs(20),
            "the watchers' first IMDS reads",
            || self.imds.requests() > before + 2,
        );
        daemon
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    fn taints(&self) -> Vec<String> {
        self.api
            .node(NODE)
            .and_then(|n| n.pointer("/spec/taints").cloned())
            .and_then(|t| t.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|t| t["key"].as_str().map(str::to_owned))
            .collect()
    }

    fn cordoned(&self) -> bool {
        self.api
            .node(NODE)
            .and_then(|n| n.pointer("/spec/unschedulable").and_then(Value::as_bool))
            .unwrap_or(false)
    }

    fn event_reasons(&self) -> Vec<String> {
        self.api
            .events()
            .iter()
            .filter(|e| e.pointer("/regarding/name").and_then(Value::as_str) == Some(NODE))
            .filter_map(|e| e["reason"].as_str().map(str::to_owned))
            .collect()
    }

    /// Requests of `method` whose path ends with `suffix`.
    fn requests(
        &self,
        method: &str,
        suffix: &str,
    ) -> Vec<eks_node_agent_tests::kube_api::Recorded> {
        self.api
            .requests()
            .into_iter()
            .filter(|r| r.method == method && r.path.ends_with(suffix))
            .collect()
    }
}

fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Now plus `secs`, whole seconds (IMDS times have no fractions), and as RFC 3339.
fn at(secs: i64) -> (OffsetDateTime, String) {
    let t = OffsetDateTime::now_utc() + time::Duration::seconds(secs);
    let t = t.replace_nanosecond(0).unwrap();
    let text = t
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    (t, text)
}

fn pod(name: &str, labels: &[(&str, &str)]) -> PodSpec {
    let mut p = PodSpec::new("default", name, NODE);
    p.labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect::<BTreeMap<_, _>>();
    p
}

fn system_time(t: OffsetDateTime) -> SystemTime {
    SystemTime::from(t)
}

const DRAIN_TIMING: &str =
    "[lifecycle.drain]\ndelete_before_deadline_secs = 8\ndeadline_margin_secs = 2\n";

/// The acceptance scenario: 10 pods (2 DaemonSet, 1 mirror, 3 under a budget allowing one
/// disruption, 1 under a budget allowing none, 3 others), a spot notice 24 s ahead.
#[test]
fn spot_notice_taints_cordons_and_drains_before_the_deadline() {
    let w = world();
    for name in ["ds-a", "ds-b"] {
        let mut p = pod(name, &[]);
        p.owner = Some("DaemonSet".into());
        w.api.add_pod(p);
    }
    let mut mirror = pod("kube-proxy-static", &[]);
    mirror.owner = None;
    mirror.mirror = true;
    w.api.add_pod(mirror);
    for name in ["web-0", "web-1", "web-2"] {
        w.api.add_pod(pod(name, &[("app", "web")]));
    }
    // Three Ready web pods, at least two available: one disruption at a time; each
    // replacement is Ready 2 s after its eviction.
    w.api
        .add_pdb("default", "web", &[("app", "web")], Some(2), None);
    w.api
        .set_replacement_ready_after(Some(Duration::from_secs(2)));
    let mut db = pod("db-0", &[("app", "db")]);
    db.owner = Some("StatefulSet".into());
    db.priority = -10;
    w.api.add_pod(db);
    w.api
        .add_pdb("default", "db", &[("app", "db")], None, Some(0));
    let mut batch = pod("batch", &[]);
    batch.owner = None;
    w.api.add_pod(batch);
    let mut slow = pod("slow", &[]);
    slow.grace_period_secs = 60;
    slow.stops_in = Duration::from_secs(60);
    w.api.add_pod(slow);
    w.api.add_pod(pod("api-0", &[]));
    assert_eq!(w.api.pods_on(NODE).len(), 10);

    let daemon = w.start(&format!("[lifecycle]\nenabled = true\n{DRAIN_TIMING}"), &[]);
    let (deadline, deadline_text) = at(24);
    let noticed = Instant::now();
    w.imds.set_spot_action(Some(("terminate", &deadline_text)));
    wait_for(Duration::from_secs(5), "taint and cordon", || {
        w.cordoned()
            && w.taints()
                .contains(&"eks-node-agent/spot-interruption".to_owned())
    });
    let latency = noticed.elapsed();
    assert!(
        latency <= Duration::from_millis(1500),
        "tainted and cordoned {latency:?} after the notice"
    );

    let kept = ["default/ds-a", "default/ds-b", "default/kube-proxy-static"];
    wait_for(Duration::from_secs(30), "every drained pod gone", || {
        w.api
            .pods_on(NODE)
            .iter()
            .all(|p| kept.contains(&p.as_str()))
    });
    let mut left = w.api.pods_on(NODE);
    left.sort();
    assert_eq!(left, kept, "DaemonSet and mirror pods stay");
    for (pod, when) in w.api.removed_pods() {
        assert!(
            when <= system_time(deadline),
            "{pod} went after the deadline"
        );
    }

    // The budget: web pods evicted one at a time, each after the previous replacement was
    // Ready; refusals (429) in between.
    let web_evictions: Vec<SystemTime> = w
        .requests("POST", "/eviction")
        .iter()
        .filter(|r| r.path.contains("/pods/web-") && r.status == 201)
        .map(|r| r.at)
        .collect();
    assert_eq!(
        web_evictions.len(),
        3,
        "{:?}",
        w.requests("POST", "/eviction")
    );
    for pair in web_evictions.windows(2) {
        let gap = pair[1].duration_since(pair[0]).unwrap();
        assert!(
            gap >= Duration::from_millis(1500),
            "evictions {gap:?} apart"
        );
    }
    assert!(
        w.requests("POST", "/eviction")
            .iter()
            .any(|r| r.path.contains("/pods/web-") && r.status == 429),
        "the budget refused some evictions"
    );
    // Deletions only after the cut-off, and only of what the budgets blocked (and the slow
    // pod, forced at the finish).
    let cutoff = system_time(deadline - time::Duration::seconds(8));
    let deletes = w.requests("DELETE", "");
    assert!(
        deletes.iter().any(|r| r.path.ends_with("/pods/db-0")),
        "{deletes:?}"
    );
    for d in &deletes {
        assert!(d.at >= cutoff, "{} deleted before the cut-off", d.path);
        assert!(
            d.path.ends_with("/pods/db-0") || d.path.ends_with("/pods/slow"),
            "unexpected deletion {}",
            d.path
        );
    }
    assert!(
        !w.requests("POST", "/eviction")
            .iter()
            .any(|r| r.path.contains("/pods/db-0") && r.status == 201),
        "db-0's budget never allowed an eviction"
    );
    // The slow pod's grace period was cut to fit the deadline.
    let slow = w
        .requests("POST", "/pods/slow/eviction")
        .into_iter()
        .find(|r| r.status == 201)
        .expect("slow evicted");
    let grace = slow.body["deleteOptions"]["gracePeriodSeconds"]
        .as_i64()
        .unwrap();
    assert!((1..=22).contains(&grace), "grace {grace}");
    assert!(
        w.requests("POST", "/eviction")
            .iter()
            .all(|r| !r.path.contains("/pods/ds-") && !r.path.contains("kube-proxy-static"))
    );

    wait_for(Duration::from_secs(5), "the drain's events", || {
        w.event_reasons().contains(&"Drained".to_owned())
    });
    assert!(w.event_reasons().contains(&"SpotInterruption".to_owned()));
    let m = |s: &str| daemon.sample(s).unwrap_or(-1.0);
    assert_eq!(
        m("eksnode_lifecycle_events_total{kind=\"spot-interruption\"}"),
        1.0
    );
    assert_eq!(m("eksnode_drain_pods_total{result=\"evicted\"}"), 6.0);
    assert_eq!(m("eksnode_drain_pods_total{result=\"deleted\"}"), 1.0);
    assert_eq!(m("eksnode_drain_duration_seconds_count"), 1.0);
    let log = w.log();
    assert!(log.contains("refused by a PodDisruptionBudget"), "{log}");
    assert!(log.contains("past the cut-off"), "{log}");
}

#[test]
fn rebalance_recommendation_taints_only_by_default() {
    let w = world();
    w.api.add_pod(pod("api-0", &[]));
    let daemon = w.start(
        "[lifecycle]\nenabled = true\n[lifecycle.rebalance_recommendation]\npoll_interval_secs = 0.2\n",
        &[],
    );
    // IMDS fails for a while: each watcher backs off and says so once, then once when IMDS
    // answers again.
    w.imds.fail_next(12, 503);
    wait_for(Duration::from_secs(20), "IMDS to answer again", || {
        w.log().contains("IMDS answers again")
    });
    let warnings = w
        .log()
        .matches("lifecycle watcher cannot read IMDS")
        .count();
    assert!(
        (1..=4).contains(&warnings),
        "{warnings} warnings for 4 paths:\n{}",
        w.log()
    );
    let errors: f64 = daemon
        .metrics()
        .lines()
        .filter(|l| l.starts_with("eksnode_lifecycle_imds_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(errors >= 2.0, "{errors}");
    let (_, notice) = at(0);
    w.imds.set_rebalance(Some(&notice));
    wait_for(Duration::from_secs(5), "the rebalance taint", || {
        w.taints() == ["eks-node-agent/rebalance-recommendation"]
    });
    wait_for(Duration::from_secs(5), "the event", || {
        w.event_reasons()
            .contains(&"RebalanceRecommendation".to_owned())
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(!w.cordoned(), "not cordoned by default");
    assert!(w.requests("POST", "/eviction").is_empty());
    assert!(w.requests("DELETE", "").is_empty());
    assert_eq!(w.api.pods_on(NODE), ["default/api-0"]);
    assert_eq!(
        daemon.sample("eksnode_lifecycle_events_total{kind=\"rebalance-recommendation\"}"),
        Some(1.0)
    );
}

#[test]
fn scheduled_maintenance_taints_inside_its_window_and_cancel_undoes_it() {
    let w = world();
    let _daemon = w.start(
        "[lifecycle]\nenabled = true\n[lifecycle.scheduled_maintenance]\npoll_interval_secs = 0.2\nwindow_secs = 3600\n",
        &[],
    );
    let event = |in_secs: i64, state: &str| ScheduledEvent {
        id: "instance-event-0d59937288b749b32".into(),
        code: "system-reboot".into(),
        not_before: OffsetDateTime::now_utc() + time::Duration::seconds(in_secs),
        state: state.into(),
    };
    // Two hours ahead: outside a one-hour window.
    w.imds.set_scheduled_events(Some(&[event(7200, "active")]));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        w.taints().is_empty(),
        "outside the window: {:?}",
        w.taints()
    );
    // Rescheduled to 30 minutes ahead: inside.
    w.imds.set_scheduled_events(Some(&[event(1800, "active")]));
    wait_for(Duration::from_secs(5), "the maintenance taint", || {
        w.taints() == ["eks-node-agent/scheduled-maintenance"]
    });
    assert!(!w.cordoned(), "taint only by default");
    // Cancelled: our taint goes.
    w.imds
        .set_scheduled_events(Some(&[event(1800, "canceled")]));
    wait_for(Duration::from_secs(5), "the taint removed", || {
        w.taints().is_empty()
    });
    assert!(
        w.event_reasons()
            .contains(&"ScheduledMaintenance".to_owned())
    );
    let taint_patches = w
        .requests("PATCH", &format!("/nodes/{NODE}"))
        .into_iter()
        .filter(|r| r.body.pointer("/spec/taints").is_some())
        .count();
    assert_eq!(taint_patches, 2, "one to taint, one to undo");
}

/// Scale-in: taint, cordon, drain, a heartbeat while the drain outlives the hook's
/// 30 s heartbeat timeout, then CompleteLifecycleAction CONTINUE with the instance role's
/// credentials from IMDS, as the Auto Scaling emulator (botocore-verified) records it.
#[test]
fn asg_termination_drains_then_completes_the_lifecycle_hook() {
    let w = world();
    let c = credentials();
    let asg = AutoScalingEmulator::start(
        "us-west-2",
        Keys {
            access_key_id: c.access_key_id.clone(),
            secret_access_key: c.secret_access_key.clone(),
            session_token: Some(c.token.clone()),
        },
    );
    let instance = Instance::example().instance_id;
    asg.add_group(
        "nodes-asg",
        &instance,
        vec![
            Hook {
                name: "drain-hook".into(),
                transition: "autoscaling:EC2_INSTANCE_TERMINATING".into(),
                heartbeat_timeout: 30,
            },
            Hook {
                name: "launch-hook".into(),
                transition: "autoscaling:EC2_INSTANCE_LAUNCHING".into(),
                heartbeat_timeout: 300,
            },
        ],
    );
    w.api.add_pod(pod("api-0", &[]));
    let mut db = pod("db-0", &[("app", "db")]);
    db.owner = Some("StatefulSet".into());
    w.api.add_pod(db);
    w.api
        .add_pdb("default", "db", &[("app", "db")], None, Some(0));
    w.imds.set_target_lifecycle_state(Some("InService"));
    let _daemon = w.start(
        "[lifecycle]\nenabled = true\n[lifecycle.asg_termination]\ndrain_timeout_secs = 36\n\
[lifecycle.drain]\ndelete_before_deadline_secs = 10\ndeadline_margin_secs = 2\n",
        &[("AWS_ENDPOINT_URL_AUTO_SCALING", asg.endpoint())],
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(w.taints().is_empty(), "InService is no event");
    asg.terminate("nodes-asg", &instance);
    let started = SystemTime::now();
    w.imds.set_target_lifecycle_state(Some("Terminated"));
    wait_for(Duration::from_secs(10), "taint and cordon", || {
        w.cordoned() && w.taints() == ["eks-node-agent/asg-termination"]
    });
    wait_for(Duration::from_secs(45), "CompleteLifecycleAction", || {
        asg.completed("nodes-asg", "drain-hook", &instance)
            .is_some()
    });
    assert_eq!(
        asg.completed("nodes-asg", "drain-hook", &instance)
            .as_deref(),
        Some("CONTINUE")
    );
    assert_eq!(
        asg.lifecycle_state("nodes-asg", &instance).as_deref(),
        Some("Terminating:Proceed")
    );
    let calls = asg.requests();
    assert!(calls.iter().all(|c| c.signature_verified), "{calls:?}");
    let complete: Vec<_> = calls
        .iter()
        .filter(|c| c.action == "CompleteLifecycleAction")
        .collect();
    assert_eq!(complete.len(), 1, "{calls:?}");
    let p = &complete[0].params;
    assert_eq!(p["AutoScalingGroupName"], "nodes-asg");
    assert_eq!(p["LifecycleHookName"], "drain-hook");
    assert_eq!(p["InstanceId"], instance);
    assert_eq!(p["LifecycleActionResult"], "CONTINUE");
    assert_eq!(complete[0].status, 200);
    // After the drain: both pods gone before the completion.
    assert!(w.api.pods_on(NODE).is_empty());
    for (pod, when) in w.api.removed_pods() {
        assert!(when <= complete[0].at, "{pod} removed after the completion");
    }
    // The drain (36 s budget) outlived the 30 s heartbeat timeout: a heartbeat in between.
    let heartbeats: Vec<_> = calls
        .iter()
        .filter(|c| c.action == "RecordLifecycleActionHeartbeat")
        .collect();
    assert!(!heartbeats.is_empty(), "{calls:?}");
    for h in &heartbeats {
        assert_eq!(h.status, 200);
        assert_eq!(h.params["LifecycleHookName"], "drain-hook");
        let after = h.at.duration_since(started).unwrap();
        assert!(
            after >= Duration::from_secs(14),
            "heartbeat {after:?} after the event"
        );
        assert!(h.at < complete[0].at);
    }
    assert!(
        calls.iter().all(|c| c
            .params
            .get("LifecycleHookName")
            .is_none_or(|h| h != "launch-hook")),
        "the launch hook is not touched"
    );
    assert!(
        w.event_reasons()
            .contains(&"AutoScalingTermination".to_owned())
    );
    // The completion's event is posted after the Auto Scaling call returns.
    wait_for(
        Duration::from_secs(10),
        "the LifecycleActionCompleted event",
        || {
            w.event_reasons()
                .contains(&"LifecycleActionCompleted".to_owned())
        },
    );
}

/// A daemon killed mid-drain: the next one resumes from the state file without tainting,
/// announcing or counting the event again.
#[test]
fn a_restarted_daemon_resumes_the_drain() {
    let w = world();
    w.api.add_pod(pod("api-0", &[]));
    let mut db = pod("db-0", &[("app", "db")]);
    db.owner = Some("StatefulSet".into());
    w.api.add_pod(db);
    w.api
        .add_pdb("default", "db", &[("app", "db")], None, Some(0));
    let toml = format!("[lifecycle]\nenabled = true\n{DRAIN_TIMING}");
    let first = w.start(&toml, &[]);
    let (deadline, text) = at(16);
    w.imds.set_spot_action(Some(("terminate", &text)));
    wait_for(Duration::from_secs(5), "api-0 evicted", || {
        w.cordoned()
            && w.requests("POST", "/pods/api-0/eviction")
                .iter()
                .any(|r| r.status == 201)
    });
    // The eviction is on record (the state file is written after each one; a kill between
    // the API call and that write would lose the count, never double it).
    let state_file = w.dir.path().join("state/lifecycle.json");
    wait_for(Duration::from_secs(5), "the eviction recorded", || {
        std::fs::read_to_string(&state_file)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|v| v["counts"]["evicted"] == 1)
    });
    drop(first); // SIGKILL mid-drain: db-0 is still blocked by its budget.
    assert!(w.api.pods_on(NODE).contains(&"default/db-0".to_owned()));
    let second = w.start(&toml, &[]);
    wait_for(
        Duration::from_secs(20),
        "db-0 deleted after the cut-off",
        || w.api.pods_on(NODE).is_empty(),
    );
    let cutoff = system_time(deadline - time::Duration::seconds(8));
    for d in w.requests("DELETE", "") {
        assert!(d.at >= cutoff, "{} deleted before the cut-off", d.path);
    }
    let taint_patches = w
        .requests("PATCH", &format!("/nodes/{NODE}"))
        .into_iter()
        .filter(|r| r.body.pointer("/spec/taints").is_some())
        .count();
    assert_eq!(
        taint_patches, 1,
        "tainted once, not again after the restart"
    );
    let announced = w
        .event_reasons()
        .iter()
        .filter(|r| *r == "SpotInterruption")
        .count();
    assert_eq!(announced, 1);
    wait_for(Duration::from_secs(5), "the drain recorded", || {
        second.sample("eksnode_drain_duration_seconds_count") == Some(1.0)
    });
    assert_eq!(
        second.sample("eksnode_lifecycle_events_total{kind=\"spot-interruption\"}"),
        Some(1.0)
    );
    assert_eq!(
        second.sample("eksnode_drain_pods_total{result=\"evicted\"}"),
        Some(1.0)
    );
    assert_eq!(
        second.sample("eksnode_drain_pods_total{result=\"deleted\"}"),
        Some(1.0)
    );
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(w.dir.path().join("state/lifecycle.json")).unwrap(),
    )
    .unwrap();
    let record = state["events"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    assert_eq!(record["drain"], "done");
    assert_eq!(record["tainted"], true);
}

/// With the kubelet's own identity, NodeRestriction refuses taint changes: the node is still
/// cordoned and drained, and the log says how to allow the taint.
#[test]
fn under_node_restriction_the_node_is_cordoned_and_drained_without_the_taint() {
    let w = world();
    w.api.enforce_node_restriction(true);
    w.api.add_pod(pod("api-0", &[]));
    let _daemon = w.start(&format!("[lifecycle]\nenabled = true\n{DRAIN_TIMING}"), &[]);
    let (_, text) = at(20);
    let noticed = Instant::now();
    w.imds.set_spot_action(Some(("terminate", &text)));
    wait_for(Duration::from_secs(5), "cordon", || w.cordoned());
    assert!(
        noticed.elapsed() <= Duration::from_millis(1500),
        "{:?}",
        noticed.elapsed()
    );
    wait_for(Duration::from_secs(10), "the pod evicted", || {
        w.api.pods_on(NODE).is_empty()
    });
    assert!(w.taints().is_empty());
    assert!(
        w.requests("PATCH", &format!("/nodes/{NODE}"))
            .iter()
            .any(|r| r.status == 403),
        "the taint was asked for"
    );
    assert!(w.log().contains("NodeRestriction"), "{}", w.log());
}

/// Bad `[lifecycle]` input: exit 2 at start, naming the key.
#[test]
fn bad_lifecycle_settings_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (toml, key) in [
        (
            "[lifecycle.spot_interruption]\nactions = [\"taint\", \"evict-everything\"]\n",
            "[lifecycle.spot_interruption] actions",
        ),
        (
            "[lifecycle.scheduled_maintenance]\nwindow_secs = -60\n",
            "[lifecycle.scheduled_maintenance] window_secs",
        ),
        (
            "[lifecycle.asg_termination]\nhook_name = \"drain hook!\"\n",
            "[lifecycle.asg_termination] hook_name",
        ),
    ] {
        let config = dir.path().join("daemon.toml");
        std::fs::write(&config, toml).unwrap();
        let out = Command::new(agent_bin())
            .arg("run")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", free_port()))
            .args(["--node-name", NODE, "--no-kubernetes"])
            .arg("--config")
            .arg(&config)
            .arg("--lifecycle-state")
            .arg(dir.path().join("state.json"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{toml}: {stderr}");
        assert!(stderr.contains(key), "{toml}: {stderr}");
        assert!(!dir.path().join("state.json").exists());
    }
}

/// The Auto Scaling emulator's answers as botocore's own client parses them (the service
/// model is the reference for the XML shapes).
#[test]
fn botocore_reads_the_auto_scaling_emulator() {
    let keys = Keys {
        access_key_id: "AKIAAUTOSCALINGTEST1".into(),
        secret_access_key: "autoscaling/test/secret/key/000000000000".into(),
        session_token: None,
    };
    let asg = AutoScalingEmulator::start("us-west-2", keys.clone());
    asg.add_group(
        "g1",
        "i-0123456789abcdef0",
        vec![Hook {
            name: "h1".into(),
            transition: "autoscaling:EC2_INSTANCE_TERMINATING".into(),
            heartbeat_timeout: 120,
        }],
    );
    asg.terminate("g1", "i-0123456789abcdef0");
    let token = asg.token("g1", "h1", "i-0123456789abcdef0").unwrap();
    let script = r#"
import json, sys, botocore.session
s = botocore.session.get_session()
c = s.create_client("autoscaling", region_name="us-west-2", endpoint_url=sys.argv[1],
                    aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
out = {}
out["hooks"] = c.describe_lifecycle_hooks(AutoScalingGroupName="g1")["LifecycleHooks"]
out["instances"] = c.describe_auto_scaling_instances(InstanceIds=["i-0123456789abcdef0"])["AutoScalingInstances"]
c.record_lifecycle_action_heartbeat(AutoScalingGroupName="g1", LifecycleHookName="h1", LifecycleActionToken=sys.argv[4])
try:
    c.complete_lifecycle_action(AutoScalingGroupName="g1", LifecycleHookName="h1", InstanceId="i-0000000000000000f", LifecycleActionResult="CONTINUE")
except c.exceptions.ClientError as e:
    out["error"] = e.response["Error"]
c.complete_lifecycle_action(AutoScalingGroupName="g1", LifecycleHookName="h1", InstanceId="i-0123456789abcdef0", LifecycleActionResult="CONTINUE")
print(json.dumps(out, default=str))
"#;
    let out = Command::new(eks_node_agent_tests::venv_bin("python"))
        .args(["-c", script])
        .arg(asg.endpoint())
        .arg(&keys.access_key_id)
        .arg(&keys.secret_access_key)
        .arg(&token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hooks"][0]["LifecycleHookName"], "h1");
    assert_eq!(v["hooks"][0]["HeartbeatTimeout"], 120);
    assert_eq!(
        v["hooks"][0]["LifecycleTransition"],
        "autoscaling:EC2_INSTANCE_TERMINATING"
    );
    assert_eq!(v["instances"][0]["AutoScalingGroupName"], "g1");
    assert_eq!(v["instances"][0]["LifecycleState"], "Terminating:Wait");
    assert_eq!(v["error"]["Code"], "ValidationError");
    assert_eq!(
        asg.completed("g1", "h1", "i-0123456789abcdef0").as_deref(),
        Some("CONTINUE")
    );
    assert!(asg.requests().iter().all(|r| r.signature_verified));
}

/// A warm-pool boot: `init` plans the hold unit instead of the kubelet; the hold starts the
/// kubelet only once IMDS says InService.
mod warm_pool {
    use super::*;
    use eks_node_agent_tests::aws_world;
    use eks_node_agent_tests::moto::Moto;
    use eks_node_agent_tests::systemd_dbus::SystemdEmulator;

    #[test]
    fn init_holds_the_kubelet_of_a_warmed_instance() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let moto = Moto::start();
        let world = rt.block_on(async {
            let world = aws_world::run_instance(&moto.endpoint(), "m5.large").await;
            aws_world::create_cluster(&moto.endpoint(), "warm-cluster").await;
            world
        });
        let emu = ImdsEmulator::start(world.instance.clone());
        let user_data = format!(
            "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: warm-cluster\n    certificateAuthority: {}\n",
            eks_node_agent_tests::test_ca_b64()
        );
        emu.set_user_data(Some(user_data.into_bytes()));
        let tmp = tempfile::tempdir().unwrap();
        let dry_run = |state: &str| {
            emu.set_target_lifecycle_state(Some(state));
            let out = Command::new(agent_bin())
                .args(["init", "--dry-run", "--root"])
                .arg(tmp.path())
                .args(["-c", "imds://user-data"])
                .env("AWS_EC2_METADATA_DISABLED", "false")
                .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", emu.endpoint())
                .env("AWS_ENDPOINT_URL_EC2", moto.endpoint())
                .env("AWS_ENDPOINT_URL_EKS", moto.endpoint())
                .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
                .env(
                    "AWS_SECRET_ACCESS_KEY",
                    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                )
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            (
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        let (plan, log) = dry_run("Warmed:Stopped");
        assert!(
            plan.contains("start eks-node-agent-warm-pool.service if not active"),
            "{plan}"
        );
        assert!(
            !plan.lines().any(|l| l.starts_with("start kubelet.service")
                || l.starts_with("restart kubelet.service")),
            "{plan}"
        );
        assert!(log.contains("Warmed:Stopped"), "{log}");
        let (plan, _) = dry_run("InService");
        assert!(
            plan.lines().any(|l| l.starts_with("start kubelet.service")
                || l.starts_with("restart kubelet.service")),
            "{plan}"
        );
        assert!(!plan.contains("warm-pool"), "{plan}");
    }

    #[test]
    fn the_hold_starts_the_kubelet_when_in_service() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let systemd = rt.block_on(SystemdEmulator::start());
        systemd.add_unit("kubelet.service", "inactive");
        let imds = ImdsEmulator::start(Instance::example());
        imds.set_target_lifecycle_state(Some("Warmed:Running"));
        let mut hold = Command::new(agent_bin())
            .args(["warm-pool-wait", "--poll-secs", "0.2", "--systemd-bus"])
            .arg(systemd.address())
            .env("AWS_EC2_METADATA_DISABLED", "false")
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        assert!(hold.try_wait().unwrap().is_none(), "still holding");
        assert!(
            !systemd.actions().iter().any(|a| a.contains("kubelet")),
            "{:?}",
            systemd.actions()
        );
        let released = Instant::now();
        imds.set_target_lifecycle_state(Some("InService"));
        let status = loop {
            if let Some(s) = hold.try_wait().unwrap() {
                break s;
            }
            assert!(
                released.elapsed() < Duration::from_secs(10),
                "hold did not end"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success());
        let starts: Vec<_> = systemd
            .calls()
            .into_iter()
            .filter(|c| {
                c.method == "StartUnit"
                    && c.args.first().map(String::as_str) == Some("kubelet.service")
            })
            .collect();
        assert_eq!(starts.len(), 1, "{:?}", systemd.calls());
        assert!(starts[0].at >= released);
        assert_eq!(
            systemd.active_state("kubelet.service").as_deref(),
            Some("active")
        );
    }
}
