//! Health that EKS node auto repair can trust: the reason catalog against the EKS node
//! monitoring agent's published reasons, every reason injected into a running daemon against
//! the Kubernetes API emulator, a node on another CNI, operator overrides and taints, and two
//! writers of the same condition types.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use eks_node_agent::checks::reasons::CATALOG;
use eks_node_agent_tests::kube_api::KubeApi;
use serde_json::{Value, json};

use crate::daemon::{
    FakeProc, api_with_node_a, condition_is, condition_patches, events_with, only_checks,
    run_against, sample, scrape, start_containerd, wait_for, write_atomic,
};

/// Whether our reason is the monitoring agent's `template`: the same text, where its `%d`
/// stands for a number (ours says `%d` too) and its `%s` for a unit's name (`Kubelet`,
/// `Containerd`: ours are concrete).
fn same_reason(template: &str, ours: &str) -> bool {
    if template == ours {
        return true;
    }
    match template.split_once("%s") {
        Some((head, tail)) => ours
            .strip_prefix(head)
            .and_then(|r| r.strip_suffix(tail))
            .is_some_and(|unit| {
                unit.starts_with(|c: char| c.is_ascii_uppercase())
                    && unit.chars().all(|c| c.is_ascii_alphanumeric())
            }),
        None => false,
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NmaReason {
    template: String,
    default_severity: String,
}

/// The monitoring agent's reasons: (condition, template, severity).
fn nma_reasons() -> Vec<(String, String, String)> {
    let path = eks_node_agent_tests::shared_reference().join("nma-reasons.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (the shared reference data)", path.display()));
    let doc: BTreeMap<String, BTreeMap<String, NmaReason>> =
        serde_yaml_ng::from_str(&text).expect("nma-reasons.yaml parses");
    doc.into_iter()
        .flat_map(|(condition, reasons)| {
            reasons
                .into_values()
                .map(move |r| (condition.clone(), r.template, r.default_severity))
        })
        .collect()
}

/// Every reason we share with the EKS node monitoring agent (same name, or the same template)
/// has its condition and its default severity; our own reasons are not in its file and say
/// why they are what they are.
#[test]
fn nma_reasons_yaml_severities_agree_with_the_catalog() {
    let theirs = nma_reasons();
    assert!(theirs.len() > 50, "{} reasons read", theirs.len());
    let mut shared = 0;
    for (condition, template, severity) in &theirs {
        let Some(ours) = CATALOG.iter().find(|r| same_reason(template, r.name)) else {
            continue;
        };
        shared += 1;
        assert_eq!(
            ours.severity.as_str(),
            severity,
            "{template}: our default severity differs from the monitoring agent's"
        );
        assert_eq!(
            ours.condition.map(|c| c.as_str()),
            Some(condition.as_str()),
            "{template}: a different condition"
        );
        assert!(
            ours.why.is_empty(),
            "{template} is theirs: no reason of our own"
        );
    }
    for ours in CATALOG {
        let in_file = theirs.iter().any(|(_, t, _)| same_reason(t, ours.name));
        if ours.why.is_empty() {
            assert!(
                in_file,
                "{} claims to be the monitoring agent's but is not in its file",
                ours.name
            );
        } else {
            assert!(
                !in_file,
                "{} is in the monitoring agent's file: take its severity",
                ours.name
            );
        }
    }
    assert!(shared >= 25, "only {shared} shared reasons");
}

/// A fake sysfs and procfs for the network and accelerator checks: `lo`, `eth0` with its
/// flags, the default route through eth0, uptime, and the files the kernel check reads.
struct FakeHost {
    root: PathBuf,
    proc: FakeProc,
}

impl FakeHost {
    fn new(root: &Path) -> Self {
        let proc = FakeProc::new(root);
        let me = Self {
            root: root.to_path_buf(),
            proc,
        };
        std::fs::create_dir_all(me.sys().join("class/net/lo")).unwrap();
        me.set_eth0("0x1003", "1");
        std::fs::create_dir_all(me.proc.dir.join("net")).unwrap();
        std::fs::write(
            me.proc.dir.join("net/route"),
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n\
             eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\n",
        )
        .unwrap();
        std::fs::write(me.proc.dir.join("uptime"), "86400.00 1000.00\n").unwrap();
        std::fs::create_dir_all(me.net_d()).unwrap();
        std::fs::write(me.kmsg(), "6,1,100,-;boot noise\n").unwrap();
        me
    }

    fn sys(&self) -> PathBuf {
        self.root.join("sys")
    }

    fn net_d(&self) -> PathBuf {
        self.root.join("net.d")
    }

    fn kmsg(&self) -> PathBuf {
        self.root.join("kmsg")
    }

    /// eth0's flags and carrier (sysfs `flags` never holds IFF_RUNNING; `carrier` says it).
    fn set_eth0(&self, flags: &str, carrier: &str) {
        std::fs::create_dir_all(self.sys().join("class/net/eth0")).unwrap();
        write_atomic(
            &self.sys().join("class/net/eth0/flags"),
            &format!("{flags}\n"),
        );
        write_atomic(
            &self.sys().join("class/net/eth0/carrier"),
            &format!("{carrier}\n"),
        );
    }

    fn log(&self, lines: &[&str]) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.kmsg())
            .unwrap();
        for l in lines {
            writeln!(f, "3,{},{},-;{l}", 1000, 86_400_000_000u64).unwrap();
        }
    }

    /// Arguments that point the agent at this host.
    fn args(&self) -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = Vec::new();
        for (flag, value) in [
            ("--proc", self.proc.dir.clone()),
            ("--sys", self.sys()),
            ("--cni-conf-dir", self.net_d()),
            ("--cni-conflist", self.root.join("10-aws.conflist")),
            ("--vpc-cni-marker", self.root.join("opt-cni-bin-aws-cni")),
        ] {
            a.push(flag.into());
            a.push(value.into());
        }
        a.push("--systemd-bus".into());
        a.push("none".into());
        a
    }
}

fn os(args: &[std::ffi::OsString]) -> Vec<&std::ffi::OsStr> {
    args.iter().map(|a| a.as_os_str()).collect()
}

/// A node running Calico (its conflist, no VPC CNI anywhere) with a real containerd loading
/// that conflist: the VPC CNI checks do not apply and NetworkingReady stays True; with no CNI
/// at all (after the boot grace) it goes False.
#[test]
fn a_calico_node_without_the_vpc_cni_keeps_networking_ready() {
    let (_rt, api) = api_with_node_a("node-token-calico");
    let root = tempfile::tempdir().unwrap();
    let host = FakeHost::new(root.path());
    let calico = r#"{"cniVersion":"0.3.1","name":"k8s-pod-network","plugins":[{"type":"calico","ipam":{"type":"calico-ipam"}},{"type":"portmap","capabilities":{"portMappings":true}}]}"#;
    std::fs::write(host.net_d().join("10-calico.conflist"), calico).unwrap();
    // containerd's CRI plugin reads the same directory (<root>/net.d).
    let containerd = start_containerd(root.path());
    let mut args = host.args();
    args.push("--containerd-socket".into());
    args.push(containerd.socket.clone().into());
    let (_agent, port) = run_against(
        &api,
        root.path(),
        &only_checks(&["containerd", "vpc_cni", "network"]),
        &os(&args),
    );
    wait_for(Duration::from_secs(30), "NetworkingReady True", || {
        condition_is(&api, "NetworkingReady", "True", "NetworkingIsReady")
    });
    std::thread::sleep(Duration::from_secs(2));
    let text = scrape(port);
    for check in ["vpc_cni", "network", "containerd"] {
        assert_eq!(
            sample(&text, &format!("eksnode_check_up{{check=\"{check}\"}}")),
            Some(1.0),
            "{check}\n{text}"
        );
    }
    assert!(
        !text.contains("eksnode_problem_active{"),
        "no problem at all:\n{text}"
    );
    for patch in condition_patches(&api) {
        for c in patch["status"]["conditions"].as_array().unwrap() {
            if c["type"] == "NetworkingReady" {
                assert_eq!(c["status"], "True", "never False on Calico: {patch}");
            }
        }
    }
    // The control: no CNI at all is NetworkingReady False.
    std::fs::remove_file(host.net_d().join("10-calico.conflist")).unwrap();
    wait_for(Duration::from_secs(30), "NetworkingReady False", || {
        condition_is(&api, "NetworkingReady", "False", "CNIConfigMissing")
    });
}

/// The taints of the Node as stored.
fn taints(api: &KubeApi) -> Vec<Value> {
    api.node("node-a").unwrap()["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// `[severity] SoftLockup = "fatal"` and `[taints.KernelReady]`: a soft lockup sets
/// KernelReady False and adds `eks-node-agent/KernelReady=SoftLockup:NoSchedule` beside the
/// operator's own taint; once the lockup is past the hold, KernelReady is True and our taint
/// is gone, the operator's untouched. A bad value is exit 2 at start and keeps the running
/// config on SIGHUP; the node's own identity may not change taints (NodeRestriction).
#[test]
fn promoted_soft_lockup_sets_kernel_ready_false_and_taints_until_recovery() {
    let (_rt, api) = api_with_node_a("node-token-taint");
    api.allow_token("taint-admin-token");
    let user_taint = json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"});
    api.set_node_taints("node-a", json!([user_taint.clone()]));
    let root = tempfile::tempdir().unwrap();
    let host = FakeHost::new(root.path());
    let taint_kc = root.path().join("taint-kubeconfig");
    std::fs::write(&taint_kc, api.kubeconfig_for("taint-admin-token")).unwrap();
    let config = format!(
        "{}[severity]\nSoftLockup = \"fatal\"\n[kernel]\nproblem_hold_secs = 12\n\
         [taints.KernelReady]\n[kubernetes]\ntaint_kubeconfig = \"{}\"\n",
        only_checks(&["kernel"]),
        taint_kc.display()
    );
    // A bad value: exit 2 before anything else, naming the file and the field.
    let bad = root.path().join("bad.toml");
    std::fs::write(&bad, config.replace("\"fatal\"", "\"fatl\"")).unwrap();
    let out = std::process::Command::new(crate::agent_bin())
        .args([
            "run",
            "--no-kubernetes",
            "--node-name",
            "node-a",
            "--listen",
        ])
        .arg(format!("127.0.0.1:{}", eks_node_agent_tests::free_port()))
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("SoftLockup") && err.contains("fatal"),
        "{err}"
    );

    let (mut agent, port) = run_against(&api, root.path(), &config, &os(&host.args()));
    wait_for(Duration::from_secs(20), "KernelReady True", || {
        condition_is(&api, "KernelReady", "True", "KernelHasNoProblem")
    });
    host.log(&["watchdog: BUG: soft lockup - CPU#3 stuck for 23s! [stress:4242]"]);
    wait_for(
        Duration::from_secs(20),
        "KernelReady False SoftLockup",
        || condition_is(&api, "KernelReady", "False", "SoftLockup"),
    );
    let ours =
        json!({"key": "eks-node-agent/KernelReady", "value": "SoftLockup", "effect": "NoSchedule"});
    wait_for(Duration::from_secs(20), "our taint", || {
        taints(&api).contains(&ours)
    });
    assert!(taints(&api).contains(&user_taint), "{:?}", taints(&api));
    let text = scrape(port);
    assert_eq!(
        sample(
            &text,
            "eksnode_problem_active{condition=\"KernelReady\",reason=\"SoftLockup\",severity=\"Fatal\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        events_with(&api, "SoftLockup"),
        0,
        "a Fatal problem is the condition, not an event"
    );
    // SIGHUP with a broken file keeps the running config (SoftLockup stays Fatal).
    std::fs::write(
        root.path().join("daemon.toml"),
        config.replace("\"fatal\"", "\"fatl\""),
    )
    .unwrap();
    assert!(
        std::process::Command::new("kill")
            .arg("-HUP")
            .arg(agent.0.id().to_string())
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(condition_is(&api, "KernelReady", "False", "SoftLockup"));
    // Recovery after the hold: True, our taint gone, the operator's kept.
    wait_for(Duration::from_secs(30), "KernelReady True again", || {
        condition_is(&api, "KernelReady", "True", "KernelHasNoProblem")
    });
    wait_for(Duration::from_secs(20), "our taint removed", || {
        taints(&api) == vec![user_taint.clone()]
    });
    let node = api.node("node-a").unwrap();
    assert!(
        node["metadata"]["annotations"]
            .get("eks-node-agent.amazonaws.com/owned-taints")
            .is_none_or(Value::is_null),
        "{node}"
    );
    // Every taint write was the administrator's, with the resourceVersion precondition.
    for r in api
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path == "/api/v1/nodes/node-a")
    {
        assert_eq!(r.token, "taint-admin-token");
        assert!(
            r.body.pointer("/metadata/resourceVersion").is_some(),
            "{}",
            r.body
        );
    }
    assert!(agent.term().success());

    // The node's own identity: NodeRestriction refuses, the agent says so.
    let (_agent, port) = run_against(
        &api,
        root.path(),
        &format!(
            "{}[severity]\nSoftLockup = \"fatal\"\n[taints.KernelReady]\n",
            only_checks(&["kernel"])
        ),
        &os(&host.args()),
    );
    host.log(&["watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [stress:4243]"]);
    wait_for(Duration::from_secs(20), "a forbidden taint write", || {
        sample(
            &scrape(port),
            "eksnode_taint_writes_total{result=\"forbidden\"}",
        )
        .is_some_and(|n| n >= 1.0)
    });
    assert_eq!(taints(&api), vec![user_taint], "nothing changed");
}

/// The EKS node monitoring agent writes KernelReady too. With its pod on the node the agent
/// never writes a condition; without the pod, a second writer seen on the Node makes the agent
/// step back after at most one write of its own: the condition does not flap.
#[test]
fn two_writers_of_the_same_conditions_do_not_flap() {
    // The monitoring agent's pod on the node: no condition write at all, events go on.
    let (_rt, api) = api_with_node_a("node-token-coexist");
    api.add_labeled_pod(
        "kube-system",
        "eks-node-monitoring-agent-x2x9z",
        "node-a",
        json!({"app.kubernetes.io/name": "eks-node-monitoring-agent", "app.kubernetes.io/instance": "eks-node-monitoring-agent"}),
    );
    api.add_labeled_pod(
        "kube-system",
        "aws-node-abcde",
        "node-a",
        json!({"app.kubernetes.io/name": "aws-node"}),
    );
    let root = tempfile::tempdir().unwrap();
    let host = FakeHost::new(root.path());
    host.proc.set_threads(1000);
    host.proc.set_files(9_000);
    let config = format!(
        "{}[coexistence]\nprobe_interval_secs = 0.5\n",
        only_checks(&["kernel"])
    );
    let (agent, port) = run_against(&api, root.path(), &config, &os(&host.args()));
    wait_for(Duration::from_secs(20), "the Warning's event", || {
        events_with(&api, "ApproachingMaxOpenFiles") == 1
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        condition_patches(&api).is_empty(),
        "no condition written beside the monitoring agent"
    );
    assert_eq!(
        sample(&scrape(port), "eksnode_conditions_stepped_back"),
        Some(1.0)
    );
    drop(agent);

    // No pod, but a second writer: it keeps KernelReady True with its own reason.
    let (_rt2, api) = api_with_node_a("node-token-coexist2");
    let root = tempfile::tempdir().unwrap();
    let host = FakeHost::new(root.path());
    host.proc.set_threads(1000);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let nma = {
        let api = std::sync::Arc::new(api);
        let writer_api = api.clone();
        let stop = stop.clone();
        let t = std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let now = time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap();
                writer_api.patch_node_status(
                    "node-a",
                    &json!({"status": {"conditions": [{
                        "type": "KernelReady", "status": "True", "reason": "KernelIsReady",
                        "message": "Monitoring for the Kernel system is active",
                        "lastHeartbeatTime": now, "lastTransitionTime": "2026-01-01T00:00:00Z"
                    }]}}),
                );
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        (api, t)
    };
    let api = nma.0.clone();
    let (_agent, port) = run_against(&api, root.path(), &config, &os(&host.args()));
    wait_for(Duration::from_secs(30), "the agent steps back", || {
        sample(&scrape(port), "eksnode_conditions_stepped_back") == Some(1.0)
    });
    let ours_before = condition_patches(&api).len();
    assert!(
        ours_before <= 2,
        "{ours_before} writes before stepping back"
    );
    // For the next 6 s KernelReady is the monitoring agent's, every time it is read.
    let started = Instant::now();
    let mut statuses = BTreeSet::new();
    while started.elapsed() < Duration::from_secs(6) {
        statuses.insert(api.condition("node-a", "KernelReady").unwrap()["status"].to_string());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        statuses,
        BTreeSet::from(["\"True\"".to_string()]),
        "no flapping"
    );
    assert_eq!(
        condition_patches(&api).len(),
        ours_before,
        "no write of ours after stepping back"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    nma.1.join().unwrap();
}

use eks_node_agent_tests::loopback_http::{Answer, Routes as Switch};

const ENIS: &str = "/v1/enis";
fn enis(total: u32, assigned: u32) -> Answer {
    Answer::Body(
        200,
        format!(r#"{{"TotalIPs":{total},"AssignedIPs":{assigned},"ENIs":{{}}}}"#),
    )
}
const AWS_CONFLIST: &str = r#"{"cniVersion":"0.4.0","name":"aws-cni","plugins":[{"name":"aws-cni","type":"aws-cni"},{"type":"portmap"}]}"#;

/// Everything the injections act on.
struct Env {
    root: PathBuf,
    host: FakeHost,
    api: std::sync::Arc<KubeApi>,
    kubelet: Switch,
    ipamd: Switch,
    containerd: std::sync::Mutex<Option<crate::daemon::Containerd>>,
    hung: std::sync::Mutex<Option<std::os::unix::net::UnixListener>>,
    store: Option<PathBuf>,
    cert: PathBuf,
}

impl Env {
    fn ctrd_dir(&self) -> PathBuf {
        self.root.join("ctrd")
    }
    fn socket(&self) -> PathBuf {
        self.ctrd_dir().join("containerd.sock")
    }
    fn containerd(&self, cri: bool) {
        let c = crate::daemon::start_containerd_with(&self.ctrd_dir(), cri);
        *self.containerd.lock().unwrap() = Some(c);
    }
    fn stop_containerd(&self) {
        drop(self.containerd.lock().unwrap().take());
        let _ = std::fs::remove_file(self.socket());
    }
    fn sh(&self, args: &[&str]) {
        let st = std::process::Command::new(args[0])
            .args(&args[1..])
            .status()
            .unwrap();
        assert!(st.success(), "{args:?}");
    }
}

/// One injected reason: how to cause it and how to end it.
struct Case {
    reason: &'static str,
    inject: fn(&Env),
    recover: fn(&Env),
}

fn case(reason: &'static str, inject: fn(&Env), recover: fn(&Env)) -> Case {
    Case {
        reason,
        inject,
        recover,
    }
}

fn pod_stuck() -> Value {
    let deleted = (time::OffsetDateTime::now_utc() - time::Duration::minutes(20))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "default", "uid": "4f0c-web-0",
                     "deletionTimestamp": deleted, "deletionGracePeriodSeconds": 30, "resourceVersion": "5"},
        "spec": {"nodeName": "node-a", "containers": [{"name": "web", "image": "nginx"}]},
        "status": {"phase": "Running", "containerStatuses": [{
            "name": "web", "image": "nginx", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}
    })
}

/// The Fatal reasons, per condition: injected one condition at a time per wave (each
/// condition's reasons in order), each one setting its condition False, then recovered.
fn fatal_cases() -> Vec<(&'static str, Vec<Case>)> {
    vec![
        (
            "KernelReady",
            vec![case(
                "ForkFailedOutOfPIDs",
                |e| e.host.proc.set_threads(1000),
                |e| e.host.proc.set_threads(100),
            )],
        ),
        (
            "NetworkingReady",
            vec![
                case(
                    "NetworkPluginNotReady",
                    |e| std::fs::remove_file(e.ctrd_dir().join("net.d/10-test.conflist")).unwrap(),
                    |e| {
                        write_atomic(
                            &e.ctrd_dir().join("net.d/10-test.conflist"),
                            crate::daemon::CNI_CONFLIST,
                        )
                    },
                ),
                case(
                    "CNIConfigMissing",
                    |e| std::fs::remove_file(e.host.net_d().join("10-calico.conflist")).unwrap(),
                    |e| {
                        write_atomic(
                            &e.host.net_d().join("10-calico.conflist"),
                            crate::daemon::CNI_CONFLIST,
                        )
                    },
                ),
                case(
                    "MissingLoopbackInterface",
                    |e| std::fs::remove_dir(e.host.sys().join("class/net/lo")).unwrap(),
                    |e| std::fs::create_dir(e.host.sys().join("class/net/lo")).unwrap(),
                ),
                case(
                    "InterfaceNotUp",
                    |e| e.host.set_eth0("0x1002", "0"),
                    |e| e.host.set_eth0("0x1003", "1"),
                ),
                case(
                    "InterfaceNotRunning",
                    |e| e.host.set_eth0("0x1003", "0"),
                    |e| e.host.set_eth0("0x1003", "1"),
                ),
                case(
                    "VpcCniConfigMissing",
                    |e| std::fs::remove_file(e.root.join("10-aws.conflist")).unwrap(),
                    |e| write_atomic(&e.root.join("10-aws.conflist"), AWS_CONFLIST),
                ),
                case(
                    "IPAMDNotRunning",
                    |e| e.ipamd.set(ENIS, Answer::Close),
                    |e| e.ipamd.set(ENIS, enis(29, 7)),
                ),
            ],
        ),
        (
            "StorageReady",
            vec![case(
                "FilesystemReadOnly",
                |e| {
                    if let Some(s) = &e.store {
                        e.sh(&["mount", "-o", "remount,ro", s.to_str().unwrap()]);
                    }
                },
                |e| {
                    if let Some(s) = &e.store {
                        e.sh(&["mount", "-o", "remount,rw", s.to_str().unwrap()]);
                    }
                },
            )],
        ),
        (
            "ContainerRuntimeReady",
            vec![
                case(
                    "PodStuckTerminating",
                    |e| e.api.add_pod_object(pod_stuck()),
                    |e| e.api.remove_pod("web-0"),
                ),
                case(
                    "ContainerdUnreachable",
                    |e| e.stop_containerd(),
                    |e| e.containerd(true),
                ),
                case(
                    "ContainerdNotAnswering",
                    |e| {
                        e.stop_containerd();
                        *e.hung.lock().unwrap() =
                            Some(std::os::unix::net::UnixListener::bind(e.socket()).unwrap());
                    },
                    |e| {
                        drop(e.hung.lock().unwrap().take());
                        let _ = std::fs::remove_file(e.socket());
                        e.containerd(true);
                    },
                ),
                case(
                    "ContainerRuntimeCRIFailed",
                    |e| {
                        e.stop_containerd();
                        e.containerd(false);
                    },
                    |e| {
                        e.stop_containerd();
                        e.containerd(true);
                    },
                ),
            ],
        ),
    ]
}

fn zombies(e: &Env, n: usize) {
    for i in 0..n {
        let dir = e.host.proc.dir.join(format!("{}", 40_000 + i));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("stat"),
            format!("{} (defunct) Z 1 1 1\n", 40_000 + i),
        )
        .unwrap();
    }
}

fn no_zombies(e: &Env) {
    for i in 0..25 {
        let _ = std::fs::remove_dir_all(e.host.proc.dir.join(format!("{}", 40_000 + i)));
    }
}

fn conntrack(e: &Env, count: u64) {
    let dir = e.host.proc.dir.join("sys/net/netfilter");
    std::fs::create_dir_all(&dir).unwrap();
    write_atomic(&dir.join("nf_conntrack_max"), "1000\n");
    write_atomic(&dir.join("nf_conntrack_count"), &format!("{count}\n"));
}

fn fill(e: &Env, name: &str, bytes: usize) {
    if let Some(s) = &e.store {
        std::fs::write(s.join(name), vec![7u8; bytes]).unwrap();
    }
}

fn files(e: &Env, n: usize) {
    if let Some(s) = &e.store {
        for i in 0..n {
            std::fs::write(s.join(format!("f{i}")), "").unwrap();
        }
    }
}

fn unfill(e: &Env) {
    if let Some(s) = &e.store {
        for entry in std::fs::read_dir(s).unwrap().flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn nothing(_: &Env) {}

/// The Warning reasons, one after the other: each an event and a metric, its condition True.
fn warning_cases() -> Vec<Case> {
    vec![
        case(
            "ApproachingKernelPidMax",
            |e| e.host.proc.set_threads(750),
            |e| e.host.proc.set_threads(100),
        ),
        case(
            "ApproachingMaxOpenFiles",
            |e| e.host.proc.set_files(7_500),
            |e| e.host.proc.set_files(1000),
        ),
        case(
            "ConntrackNearFull",
            |e| conntrack(e, 950),
            |e| conntrack(e, 10),
        ),
        case("ExcessiveZombieProcesses", |e| zombies(e, 22), no_zombies),
        case(
            "SoftLockup",
            |e| {
                e.host
                    .log(&["watchdog: BUG: soft lockup - CPU#2 stuck for 22s! [java:77]"])
            },
            nothing,
        ),
        case(
            "AppBlocked",
            |e| {
                e.host
                    .log(&["INFO: task jbd2/nvme0n1p1-8:312 blocked for more than 120 seconds."])
            },
            nothing,
        ),
        case(
            "KernelBug",
            |e| {
                e.host
                    .log(&["BUG: unable to handle page fault for address: ffff8881"])
            },
            nothing,
        ),
        case(
            "AppCrash",
            |e| {
                e.host
                    .log(&["python3[4242]: segfault at 0 ip 00007f sp 00007ffd error 4"])
            },
            nothing,
        ),
        case(
            "ConntrackExceededKernel",
            |e| {
                e.host
                    .log(&["nf_conntrack: nf_conntrack: table full, dropping packet"])
            },
            nothing,
        ),
        case(
            "OOMKilling",
            |e| {
                e.host
                    .log(&["Out of memory: Killed process 1234 (java) total-vm:1kB"])
            },
            nothing,
        ),
        case(
            "BlockDeviceIOError",
            |e| {
                e.host
                    .log(&["I/O error, dev nvme1n1, sector 2048 op 0x1:(WRITE)"])
            },
            nothing,
        ),
        case(
            "Ext4Error",
            |e| {
                e.host
                    .log(&["EXT4-fs error (device nvme1n1): ext4_find_entry:1455: inode #2"])
            },
            nothing,
        ),
        case(
            "XFSError",
            |e| {
                e.host
                    .log(&["XFS (nvme2n1): Corruption detected. Unmount and run xfs_repair"])
            },
            nothing,
        ),
        case(
            "FilesystemShutdown",
            |e| {
                e.host
                    .log(&["XFS (nvme2n1): Filesystem has been shut down due to log error (0x2)."])
            },
            nothing,
        ),
        case("DiskSpaceLow", |e| fill(e, "big", 1000 * 1024), unfill),
        case("InodesLow", |e| files(e, 99), unfill),
        case(
            "VpcCniConfigInvalid",
            |e| {
                write_atomic(
                    &e.root.join("10-aws.conflist"),
                    r#"{"plugins":[{"type":"bridge"}]}"#,
                )
            },
            |e| write_atomic(&e.root.join("10-aws.conflist"), AWS_CONFLIST),
        ),
        case(
            "IpamdBadAnswer",
            |e| e.ipamd.set(ENIS, Answer::Body(200, "<html>".into())),
            |e| e.ipamd.set(ENIS, enis(29, 7)),
        ),
        case(
            "IpamdMetricsUnreachable",
            |e| e.ipamd.set("/metrics", Answer::Body(503, String::new())),
            |e| {
                e.ipamd.set(
                    "/metrics",
                    Answer::Body(200, "awscni_assigned_ip_addresses 7\n".into()),
                )
            },
        ),
        case(
            "IPAMDNoIPs",
            |e| e.ipamd.set(ENIS, enis(29, 29)),
            |e| e.ipamd.set(ENIS, enis(29, 7)),
        ),
        case(
            "PodIPsNearlyExhausted",
            |e| e.ipamd.set(ENIS, enis(29, 27)),
            |e| e.ipamd.set(ENIS, enis(29, 7)),
        ),
        case(
            "KubeletUnreachable",
            |e| e.kubelet.set("/healthz", Answer::Close),
            |e| e.kubelet.set("/healthz", Answer::Body(200, "ok".into())),
        ),
        case(
            "KubeletUnhealthy",
            |e| {
                e.kubelet
                    .set("/healthz", Answer::Body(500, "[-]ping failed".into()))
            },
            |e| e.kubelet.set("/healthz", Answer::Body(200, "ok".into())),
        ),
        case(
            "CheckTimedOut",
            |e| e.kubelet.set("/healthz", Answer::Hang),
            |e| e.kubelet.set("/healthz", Answer::Body(200, "ok".into())),
        ),
        case(
            "KubeletCertificateExpired",
            |e| {
                crate::daemon::cert_until(
                    &e.cert,
                    time::OffsetDateTime::now_utc() - time::Duration::hours(1),
                );
            },
            nothing,
        ),
        case(
            "KubeletCertificateExpiring",
            |e| {
                crate::daemon::cert_until(
                    &e.cert,
                    time::OffsetDateTime::now_utc() + time::Duration::hours(2),
                );
            },
            nothing,
        ),
        case(
            "KubeletCertificateInvalid",
            |e| {
                std::fs::write(
                    &e.cert,
                    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                )
                .unwrap()
            },
            |e| {
                crate::daemon::cert_until(
                    &e.cert,
                    time::OffsetDateTime::now_utc() + time::Duration::days(300),
                );
            },
        ),
    ]
}

/// Reasons injected by other tests (named), or only reachable through a unit test here.
const COVERED_ELSEWHERE: &[(&str, &str)] = &[
    (
        "DockerUnreachable",
        "ecs::status::status_checks_the_cluster_the_agent_and_docker (real dockerd, then a missing socket)",
    ),
    (
        "EcsAgentUnreachable",
        "ecs::agent_check_reasons_against_the_introspection_emulator",
    ),
    (
        "EcsAgentNotRegistered",
        "ecs::agent_check_reasons_against_the_introspection_emulator",
    ),
    (
        "EcsAgentWrongCluster",
        "ecs::agent_check_reasons_against_the_introspection_emulator",
    ),
    (
        "KubeletCertificateMissing",
        "this test: the certificate is absent at start",
    ),
    (
        "ClockUnsynchronized",
        "daemon::unsynchronised_clock_is_a_warning_event_not_a_condition (this host's clock)",
    ),
    (
        "ClockUnreadable",
        "unit checks::clock::tests::clock_verdicts (adjtimex cannot be made to fail)",
    ),
    (
        "ContainerRuntimeNotReady",
        "unit checks::cri::tests::runtime_not_ready_or_missing_is_a_problem (containerd never reports RuntimeReady false on demand)",
    ),
    (
        "ContainerdUnitNotActive",
        "daemon::unit_state_from_real_systemd_feeds_checks_and_metrics (real systemd)",
    ),
    (
        "KubeletUnitNotActive",
        "daemon::unit_state_from_real_systemd_feeds_checks_and_metrics (real systemd)",
    ),
    (
        "KubeletFailed",
        "unit checks::units::tests::only_active_or_reloading_is_healthy",
    ),
    (
        "KubeletRepeatedRestart",
        "daemon::unit_state_from_real_systemd_feeds_checks_and_metrics (real systemd)",
    ),
    (
        "ContainerdRepeatedRestart",
        "unit: the same code as KubeletRepeatedRestart (checks::daemon::Context::restart_rise)",
    ),
    (
        "FilesystemError",
        "not injected: statfs(2) fails only on a broken filesystem (EIO), which cannot be made here",
    ),
    (
        "PodListFailed",
        "health::pod_list_failure (the API server refuses the list)",
    ),
    (
        "IamCredentialsExpiring",
        "daemon::iam_credentials_expiry_per_source_is_exported_and_checked",
    ),
    (
        "IamCredentialsExpired",
        "daemon::iam_credentials_expiry_per_source_is_exported_and_checked",
    ),
    (
        "InstanceRoleMissing",
        "daemon::iam_credentials_expiry_per_source_is_exported_and_checked",
    ),
    ("InstanceRoleUnreadable", "unit checks::iam::tests"),
    ("InstanceRoleCredentialsError", "unit checks::iam::tests"),
    ("SsmCredentialsMissing", "unit checks::iam::tests"),
    ("RolesAnywhereCertificateMissing", "unit checks::iam::tests"),
    ("RolesAnywhereCertificateInvalid", "unit checks::iam::tests"),
    ("NvidiaXID%dError", "health::accelerators_on_fake_hardware"),
    (
        "NvidiaXID%dWarning",
        "health::accelerators_on_fake_hardware",
    ),
    (
        "NvidiaDeviceCountMismatch",
        "health::accelerators_on_fake_hardware",
    ),
    (
        "NeuronDeviceCountMismatch",
        "health::accelerators_on_fake_hardware",
    ),
    ("NeuronDMAError", "health::accelerators_on_fake_hardware"),
    (
        "NeuronHBMUncorrectableError",
        "health::accelerators_on_fake_hardware",
    ),
    (
        "NeuronNCUncorrectableError",
        "health::accelerators_on_fake_hardware",
    ),
    (
        "NeuronSRAMUncorrectableError",
        "health::accelerators_on_fake_hardware",
    ),
    (
        "FabricManagerNotRunning",
        "health::accelerators_on_fake_hardware (real systemd)",
    ),
    (
        "NvidiaDoubleBitError",
        "health::nvml_readings_through_an_emulated_library (an emulated libnvidia-ml.so; the trait double in checks::accelerators::tests)",
    ),
    (
        "NvidiaNVLinkError",
        "health::nvml_readings_through_an_emulated_library (an emulated libnvidia-ml.so; the trait double in checks::accelerators::tests)",
    ),
    (
        "NvmlError",
        "health::nvml_readings_through_an_emulated_library (an emulated libnvidia-ml.so; the trait double in checks::accelerators::tests)",
    ),
];

/// The injection table covers the catalog: every reason is injected here or covered by the
/// test named in [`COVERED_ELSEWHERE`].
#[test]
fn every_reason_of_the_catalog_is_injected_somewhere() {
    let mut covered: BTreeSet<&str> = COVERED_ELSEWHERE.iter().map(|(r, _)| *r).collect();
    for (_, cases) in fatal_cases() {
        covered.extend(cases.iter().map(|c| c.reason));
    }
    covered.extend(warning_cases().iter().map(|c| c.reason));
    let catalog: BTreeSet<&str> = CATALOG.iter().map(|r| r.name).collect();
    assert_eq!(
        catalog.difference(&covered).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "reasons nobody injects"
    );
    assert_eq!(
        covered.difference(&catalog).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "not in the catalog"
    );
}

fn catalog_severity(reason: &str) -> &'static str {
    eks_node_agent::checks::reasons::lookup(reason)
        .unwrap()
        .severity
        .as_str()
}

fn condition_of(reason: &str) -> &'static str {
    eks_node_agent::checks::reasons::lookup(reason)
        .unwrap()
        .condition
        .map_or("", |c| c.as_str())
}

/// Each reason of the catalog that a running daemon can be made to see here (kernel log
/// records, procfs and sysfs values, real containerd's CRI answers, the API server's pods,
/// loopback stand-ins for kubelet and ipamd, tmpfs filesystems): a Fatal one sets its
/// condition False with its reason and recovery sets it True again; a Warning one is an event
/// while its condition stays True; both show in `eksnode_problem_active` and
/// `eksnode_problems_total`.
#[test]
fn each_reason_injected_into_a_running_daemon_has_its_exact_outcome() {
    let (_rt, api) = api_with_node_a("node-token-table");
    let api = std::sync::Arc::new(api);
    let root = tempfile::tempdir().unwrap();
    let host = FakeHost::new(root.path());
    std::fs::write(
        host.net_d().join("10-calico.conflist"),
        crate::daemon::CNI_CONFLIST,
    )
    .unwrap();
    write_atomic(&root.path().join("10-aws.conflist"), AWS_CONFLIST);
    let ctrd = root.path().join("ctrd");
    std::fs::create_dir_all(ctrd.join("net.d")).unwrap();
    std::fs::write(
        ctrd.join("net.d/10-test.conflist"),
        crate::daemon::CNI_CONFLIST,
    )
    .unwrap();
    let kubelet = Switch::start(&[("/healthz", Answer::Body(200, "ok".into()))]);
    let ipamd = Switch::start(&[
        (ENIS, enis(29, 7)),
        (
            "/metrics",
            Answer::Body(200, "awscni_assigned_ip_addresses 7\n".into()),
        ),
    ]);
    // A small tmpfs for the storage check's space, inodes and read-only cases (root only).
    let store = root.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let store = eks_node_agent_tests::e2e::is_root()
        .then(|| {
            std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=1m,nr_inodes=100", "tmpfs"])
                .arg(&store)
                .status()
                .ok()
                .filter(|s| s.success())
                .map(|_| store.clone())
        })
        .flatten();
    let env = Env {
        root: root.path().to_path_buf(),
        host,
        api: api.clone(),
        kubelet,
        ipamd,
        containerd: std::sync::Mutex::new(None),
        hung: std::sync::Mutex::new(None),
        store: store.clone(),
        cert: root.path().join("pki/kubelet-client-current.pem"),
    };
    env.containerd(true);
    let fast = "interval_secs = 0.2\n";
    let mut config = format!(
        "[networking]\ncni_grace_secs = 0\n[kernel]\nproblem_hold_secs = 3\n\
         [checks.kubelet]\n{fast}timeout_secs = 1\n[checks.containerd]\n{fast}[checks.vpc_cni]\n{fast}\
         [checks.network]\n{fast}[checks.kernel]\n{fast}[checks.storage]\n{fast}[checks.credentials]\n{fast}\
         [checks.pods]\n{fast}[checks.clock]\nenabled = false\n[checks.accelerators]\nenabled = false\n"
    );
    config.push_str("[coexistence]\nnode_monitoring_agent = \"ignore\"\n");
    let mut args = env.host.args();
    for (flag, value) in [
        (
            "--kubelet-healthz",
            format!("{}/healthz", env.kubelet.url()),
        ),
        ("--ipamd-introspection", env.ipamd.url()),
        ("--ipamd-metrics", format!("{}/metrics", env.ipamd.url())),
        ("--containerd-socket", env.socket().display().to_string()),
        ("--kubelet-client-cert", env.cert.display().to_string()),
    ] {
        args.push(flag.into());
        args.push(value.into());
    }
    if let Some(s) = &store {
        args.push("--storage-dir".into());
        args.push(s.clone().into());
    }
    args.push("--storage-dir".into());
    args.push(root.path().into());
    // The aws-node pod's binary: the VPC CNI is installed, its conflist can go missing.
    std::fs::write(root.path().join("opt-cni-bin-aws-cni"), "").unwrap();
    let (_agent, port) = run_agent(&api, root.path(), &config, &args);
    let metric = |series: &str| sample(&scrape(port), series);
    wait_for(Duration::from_secs(30), "all five conditions True", || {
        [
            "KernelReady",
            "NetworkingReady",
            "StorageReady",
            "ContainerRuntimeReady",
        ]
        .iter()
        .all(|c| {
            api.condition("node-a", c)
                .is_some_and(|c| c["status"] == "True")
        })
    });
    wait_for(
        Duration::from_secs(20),
        "KubeletCertificateMissing event",
        || events_with(&api, "KubeletCertificateMissing") == 1,
    );
    crate::daemon::cert_until(
        &env.cert,
        time::OffsetDateTime::now_utc() + time::Duration::days(300),
    );

    // Fatal: in waves, one reason per condition at a time.
    let groups = fatal_cases();
    let waves = groups.iter().map(|(_, c)| c.len()).max().unwrap();
    for wave in 0..waves {
        let now: Vec<(&str, &Case)> = groups
            .iter()
            .filter_map(|(ct, cases)| cases.get(wave).map(|c| (*ct, c)))
            .filter(|(_, c)| store.is_some() || c.reason != "FilesystemReadOnly")
            .collect();
        for (_, c) in &now {
            assert_eq!(catalog_severity(c.reason), "Fatal", "{}", c.reason);
            (c.inject)(&env);
        }
        for (ct, c) in &now {
            assert_eq!(condition_of(c.reason), *ct);
            wait_for(
                Duration::from_secs(40),
                &format!("{ct} False {}", c.reason),
                || condition_is(&api, ct, "False", c.reason),
            );
            let active = format!(
                "eksnode_problem_active{{condition=\"{ct}\",reason=\"{}\",severity=\"Fatal\"}}",
                c.reason
            );
            assert_eq!(metric(&active), Some(1.0), "{active}");
            assert!(
                metric(&format!(
                    "eksnode_problems_total{{reason=\"{}\"}}",
                    c.reason
                ))
                .is_some_and(|n| n >= 1.0),
                "{} counted",
                c.reason
            );
        }
        for (_, c) in &now {
            (c.recover)(&env);
        }
        for (ct, c) in &now {
            wait_for(
                Duration::from_secs(40),
                &format!("{ct} True after {}", c.reason),
                || condition_is(&api, ct, "True", ""),
            );
        }
    }

    // Warning: one after the other; an event, the metric, the condition stays True.
    for c in warning_cases() {
        if store.is_none() && matches!(c.reason, "DiskSpaceLow" | "InodesLow") {
            continue;
        }
        assert_eq!(catalog_severity(c.reason), "Warning", "{}", c.reason);
        (c.inject)(&env);
        wait_for(
            Duration::from_secs(20),
            &format!("{} event", c.reason),
            || events_with(&api, c.reason) >= 1,
        );
        let counted = metric(&format!(
            "eksnode_problems_total{{reason=\"{}\"}}",
            c.reason
        ));
        assert!(counted.is_some_and(|n| n >= 1.0), "{} counted", c.reason);
        let ev = api
            .events()
            .into_iter()
            .find(|e| e["reason"] == c.reason)
            .unwrap();
        assert_eq!(ev["type"], "Warning");
        let ct = condition_of(c.reason);
        if !ct.is_empty() {
            let cond = api.condition("node-a", ct).unwrap();
            assert_eq!(cond["status"], "True", "{}: {cond}", c.reason);
        }
        (c.recover)(&env);
    }
    // Nothing was ever False for a Warning reason.
    let warnings: BTreeSet<&str> = warning_cases().iter().map(|c| c.reason).collect();
    for patch in condition_patches(&api) {
        for c in patch["status"]["conditions"].as_array().unwrap() {
            let reason = c["reason"].as_str().unwrap();
            assert!(
                !(c["status"] == "False" && warnings.contains(reason)),
                "{patch}"
            );
        }
    }
    drop(env);
    if let Some(s) = store {
        let _ = std::process::Command::new("umount").arg(&s).status();
    }
}

/// `run` against the emulator with `args` (the caller's own --kubelet-healthz and friends).
fn run_agent(
    api: &KubeApi,
    dir: &Path,
    checks: &str,
    args: &[std::ffi::OsString],
) -> (crate::daemon::Proc, u16) {
    let config = dir.join("daemon.toml");
    std::fs::write(&config, checks).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig()).unwrap();
    let port = eks_node_agent_tests::free_port();
    let agent = crate::daemon::Proc(
        std::process::Command::new(crate::agent_bin())
            .arg("run")
            .args(["--node-name", "node-a", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--config")
            .arg(&config)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--kmsg")
            .arg(dir.join("kmsg"))
            .args(args)
            .env_remove("NOTIFY_SOCKET")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(Duration::from_secs(20), "agent /healthz", || {
        crate::daemon::http_get(port, "/healthz").is_some_and(|(code, _)| code == 200)
    });
    (agent, port)
}

/// The API server refuses to list the node's pods: `PodListFailed`, a Warning counted in the
/// metrics (no condition: the node is not at fault).
#[test]
fn pod_list_failure() {
    let (_rt, api) = api_with_node_a("node-token-pods");
    let root = tempfile::tempdir().unwrap();
    let host = FakeHost::new(root.path());
    let kubeconfig = api.kubeconfig().replace("node-token-pods", "revoked-token");
    let dir = root.path();
    std::fs::write(dir.join("daemon.toml"), only_checks(&["pods"])).unwrap();
    std::fs::write(dir.join("kubeconfig"), kubeconfig).unwrap();
    let port = eks_node_agent_tests::free_port();
    let _agent = crate::daemon::Proc(
        std::process::Command::new(crate::agent_bin())
            .args(["run", "--node-name", "node-a", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--config")
            .arg(dir.join("daemon.toml"))
            .arg("--kubeconfig")
            .arg(dir.join("kubeconfig"))
            .arg("--kmsg")
            .arg(host.kmsg())
            .args(host.args())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(Duration::from_secs(20), "PodListFailed counted", || {
        crate::daemon::http_get(port, "/metrics").is_some_and(|(_, text)| {
            sample(&text, "eksnode_problems_total{reason=\"PodListFailed\"}") == Some(1.0)
        })
    });
    assert!(
        api.requests()
            .iter()
            .any(|r| r.path == "/api/v1/pods" && r.status == 401)
    );
}

fn pci_device(sys: &Path, address: &str, vendor: &str, class: &str) {
    let dir = sys.join("bus/pci/devices").join(address);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("vendor"), format!("{vendor}\n")).unwrap();
    std::fs::write(dir.join("device"), "0x20b0\n").unwrap();
    std::fs::write(dir.join("class"), format!("{class}\n")).unwrap();
}

fn neuron_counter(sys: &Path, device: &str, counter: &str, total: u64) {
    let dir = sys
        .join("devices/virtual/neuron_device")
        .join(device)
        .join("stats/hardware")
        .join(counter);
    std::fs::create_dir_all(&dir).unwrap();
    write_atomic(&dir.join("total"), &format!("{total}\n"));
}

const ACCEL: &str = "AcceleratedHardwareReady";

/// AcceleratedHardwareReady on a p4d.24xlarge and a trn1.32xlarge made of a fake sysfs (no GPU
/// or Neuron device here): device counts against the instance type, NVIDIA XIDs and Neuron
/// errors from the kernel log (a Fatal XID stays for the boot, a restart included), the Neuron
/// driver's sysfs counters, and NVIDIA's fabric manager unit read from a real systemd.
#[test]
fn accelerators_on_fake_hardware() {
    use eks_node_agent_tests::systemd_dbus::SystemdUser;
    let (rt, api) = api_with_node_a("node-token-accel");
    let root = tempfile::tempdir().unwrap();
    let host = FakeHost::new(root.path());
    let sys = host.sys();
    for i in 0..8 {
        pci_device(
            &sys,
            &format!("0000:{:02x}:1c.0", 0x10 + i),
            "0x10de",
            "0x030200",
        );
    }
    pci_device(&sys, "0000:00:05.0", "0x1d0f", "0x020000"); // ENA: not an accelerator
    let systemd = match SystemdUser::unavailable() {
        Some(why) => {
            eprintln!("fabric manager part SKIPPED: {why}");
            None
        }
        None => {
            let config_home = root.path().join("config");
            let units = config_home.join("systemd/user");
            std::fs::create_dir_all(&units).unwrap();
            std::fs::write(
                units.join("nvidia-fabricmanager.service"),
                "[Service]\nExecStart=/bin/sleep 1000\n",
            )
            .unwrap();
            Some(rt.block_on(SystemdUser::start(&config_home)))
        }
    };
    let mut args = host.args();
    if let Some(s) = &systemd {
        // host.args() ends with "--systemd-bus none": point it at the real systemd.
        let n = args.len();
        args[n - 1] = s.address().into();
    }
    args.push("--instance-type".into());
    args.push("p4d.24xlarge".into());
    let config = only_checks(&["kernel", "accelerators"]);
    let (agent, port) = run_against(&api, root.path(), &config, &os(&args));
    let metric = |series: &str| sample(&scrape(port), series);
    if let Some(s) = &systemd {
        wait_for(Duration::from_secs(30), "FabricManagerNotRunning", || {
            condition_is(&api, ACCEL, "False", "FabricManagerNotRunning")
        });
        rt.block_on(s.start_unit("nvidia-fabricmanager.service"));
    }
    wait_for(
        Duration::from_secs(30),
        "AcceleratedHardwareReady True",
        || condition_is(&api, ACCEL, "True", "AcceleratedHardwareIsReady"),
    );
    assert_eq!(
        metric("eksnode_accelerator_devices{kind=\"nvidia\"}"),
        Some(8.0)
    );
    assert_eq!(
        metric("eksnode_accelerator_devices_expected{kind=\"nvidia\"}"),
        Some(8.0)
    );
    // A GPU falls off the bus.
    let gone = sys.join("bus/pci/devices/0000:17:1c.0");
    std::fs::remove_dir_all(&gone).unwrap();
    wait_for(Duration::from_secs(30), "NvidiaDeviceCountMismatch", || {
        condition_is(&api, ACCEL, "False", "NvidiaDeviceCountMismatch")
    });
    assert_eq!(
        metric("eksnode_accelerator_devices{kind=\"nvidia\"}"),
        Some(7.0)
    );
    pci_device(&sys, "0000:17:1c.0", "0x10de", "0x030200");
    wait_for(Duration::from_secs(30), "True again", || {
        condition_is(&api, ACCEL, "True", "")
    });
    // An XID off the Fatal list: a Warning event.
    host.log(&[
        "NVRM: Xid (PCI:0000:10:1c): 13, pid=4242, name=python3, Graphics SM Warp Exception",
    ]);
    wait_for(Duration::from_secs(20), "XID 13 event", || {
        events_with(&api, "NvidiaXID13Warning") == 1
    });
    assert!(condition_is(&api, ACCEL, "True", ""));
    // XID 79: the GPU fell off the bus. Fatal, and it stays.
    host.log(&[
        "NVRM: Xid (PCI:0000:10:1c): 79, pid=4242, name=python3, GPU has fallen off the bus.",
    ]);
    wait_for(Duration::from_secs(30), "NvidiaXID79Error", || {
        condition_is(&api, ACCEL, "False", "NvidiaXID79Error")
    });
    assert_eq!(
        metric("eksnode_accelerator_errors_total{reason=\"NvidiaXID79Error\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric("eksnode_accelerator_errors_total{reason=\"NvidiaXID13Warning\"}"),
        Some(1.0)
    );
    drop(agent);
    // A restart reads the kernel's ring buffer again: the fault is not forgotten.
    let (agent, _) = run_against(&api, root.path(), &config, &os(&args));
    std::thread::sleep(Duration::from_secs(3));
    assert!(condition_is(&api, ACCEL, "False", "NvidiaXID79Error"));
    drop(agent);
    drop(systemd);

    // trn1.32xlarge: 16 Neuron devices, one missing.
    let (_rt2, api) = api_with_node_a("node-token-neuron");
    let root = tempfile::tempdir().unwrap();
    let host = FakeHost::new(root.path());
    let sys = host.sys();
    for i in 0..15 {
        pci_device(
            &sys,
            &format!("0000:{:02x}:1e.0", 0x20 + i),
            "0x1d0f",
            "0x120000",
        );
    }
    let mut args = host.args();
    args.push("--instance-type".into());
    args.push("trn1.32xlarge".into());
    let (_agent, port) = run_against(&api, root.path(), &config, &os(&args));
    wait_for(Duration::from_secs(30), "NeuronDeviceCountMismatch", || {
        condition_is(&api, ACCEL, "False", "NeuronDeviceCountMismatch")
    });
    assert_eq!(
        sample(
            &scrape(port),
            "eksnode_accelerator_devices_expected{kind=\"neuron\"}"
        ),
        Some(16.0)
    );
    pci_device(&sys, "0000:2f:1e.0", "0x1d0f", "0x120000");
    wait_for(Duration::from_secs(30), "True", || {
        condition_is(&api, ACCEL, "True", "")
    });
    for (counter, reason) in [
        ("mem_ecc_uncorrected", "NeuronHBMUncorrectableError"),
        ("sram_ecc_uncorrected", "NeuronSRAMUncorrectableError"),
    ] {
        neuron_counter(&sys, "neuron4", counter, 3);
        wait_for(Duration::from_secs(30), reason, || {
            condition_is(&api, ACCEL, "False", reason)
        });
        neuron_counter(&sys, "neuron4", counter, 0);
        wait_for(Duration::from_secs(30), "True", || {
            condition_is(&api, ACCEL, "True", "")
        });
    }
    for (line, reason) in [
        (
            "neuron: nd4 NEURON_HW_ERR=DMA_ERROR queue=3",
            "NeuronDMAError",
        ),
        (
            "neuron: nd4 NEURON_HW_ERR=NC_UNCORRECTABLE_ERROR nc=1",
            "NeuronNCUncorrectableError",
        ),
    ] {
        host.log(&[line]);
        wait_for(Duration::from_secs(30), reason, || {
            condition_is(&api, ACCEL, "False", reason)
        });
    }
}

/// A node without accelerators has no accelerator check and no AcceleratedHardwareReady.
#[test]
fn no_accelerators_no_accelerated_hardware_condition() {
    let (_rt, api) = api_with_node_a("node-token-noaccel");
    let root = tempfile::tempdir().unwrap();
    let host = FakeHost::new(root.path());
    pci_device(&host.sys(), "0000:00:05.0", "0x1d0f", "0x020000");
    let mut args = host.args();
    args.push("--instance-type".into());
    args.push("m5.large".into());
    let config = only_checks(&["kernel", "accelerators"]);
    let (_agent, port) = run_against(&api, root.path(), &config, &os(&args));
    wait_for(Duration::from_secs(20), "KernelReady", || {
        condition_is(&api, "KernelReady", "True", "")
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(api.condition("node-a", ACCEL).is_none());
    assert_eq!(
        sample(
            &scrape(port),
            "eksnode_check_runs_total{check=\"accelerators\"}"
        ),
        None
    );
}

/// The reason table of docs/run.md, rendered from the catalog.
fn reason_table() -> String {
    let mut out = String::from(
        "| reason | condition | default | check | what is seen | why (our own reasons) |\n|---|---|---|---|---|---|\n",
    );
    for r in CATALOG {
        let name = r.name.replace("%d", "<N>");
        let condition = r.condition.map_or("(event only)", |c| c.as_str());
        let grace = if r.boot_grace {
            " (after the boot grace)"
        } else {
            ""
        };
        let why = if r.why.is_empty() {
            "the monitoring agent's".to_string()
        } else {
            r.why.to_string()
        };
        out.push_str(&format!(
            "| `{name}` | {condition} | {}{grace} | `{}` | {} | {why} |\n",
            r.severity.as_str(),
            r.check,
            r.detects.replace('|', "\\|")
        ));
    }
    out
}

/// docs/run.md's table of reasons is the catalog's (regenerate with
/// `EKS_AGENT_UPDATE_GOLDEN=1`).
#[test]
fn docs_run_md_lists_every_reason_as_the_catalog_has_it() {
    const BEGIN: &str = "<!-- reasons: generated from agent/src/checks/reasons.rs by the health::docs_run_md test -->\n";
    const END: &str = "<!-- end of reasons -->";
    let path = eks_node_agent_tests::repo_root().join("docs/run.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (head, rest) = doc
        .split_once(BEGIN)
        .expect("docs/run.md has the reasons marker");
    let (_, tail) = rest
        .split_once(END)
        .expect("docs/run.md has the end marker");
    let want = format!("{head}{BEGIN}{}{END}{tail}", reason_table());
    if std::env::var_os(eks_node_agent_tests::golden::UPDATE_ENV).is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    assert!(
        doc == want,
        "docs/run.md's reason table is stale: rerun with EKS_AGENT_UPDATE_GOLDEN=1"
    );
}

/// Builds the NVML emulator (tests/fixtures/nvml-emulator) into `dir` as `libnvidia-ml.so`.
fn build_nvml_emulator(dir: &Path) -> PathBuf {
    let src = eks_node_agent_tests::repo_root().join("tests/fixtures/nvml-emulator/nvml.rs");
    let out = dir.join("libnvidia-ml.so");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let st = std::process::Command::new(rustc)
        .args(["--edition", "2024", "--crate-type", "cdylib", "-O", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("rustc (the toolchain that builds these tests)");
    assert!(st.success(), "building the NVML emulator");
    out
}

/// The NVML path through the real run-time loading (`--nvml-library`) of an emulated
/// `libnvidia-ml.so` (no GPU here): uncorrected ECC errors are `NvidiaDoubleBitError`, rising
/// NVLink recovery and CRC errors `NvidiaNVLinkError` (both Fatal, recovered when they stop),
/// and NVML failing is an `NvmlError` Warning event.
#[test]
fn nvml_readings_through_an_emulated_library() {
    let (_rt, api) = api_with_node_a("node-token-nvml");
    let root = tempfile::tempdir().unwrap();
    let host = FakeHost::new(root.path());
    for i in 0..8 {
        pci_device(
            &host.sys(),
            &format!("0000:{:02x}:1c.0", 0x10 + i),
            "0x10de",
            "0x030200",
        );
    }
    let lib = build_nvml_emulator(root.path());
    let state = root.path().join("nvml-state");
    let healthy = "count 8\nnvlink 0 1 5 7\n";
    write_atomic(&state, healthy);
    let mut args = host.args();
    for a in ["--instance-type", "g6.48xlarge", "--nvml-library"] {
        args.push(a.into());
    }
    args.push(lib.into());
    // Long enough for a coalesced condition write (at most one per 5 s) to land.
    let config = format!(
        "{}[kernel]\nproblem_hold_secs = 12\n",
        only_checks(&["accelerators"])
    );
    std::fs::write(root.path().join("daemon.toml"), &config).unwrap();
    let kubeconfig = root.path().join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig()).unwrap();
    let port = eks_node_agent_tests::free_port();
    let _agent = crate::daemon::Proc(
        std::process::Command::new(crate::agent_bin())
            .args(["run", "--node-name", "node-a", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--config")
            .arg(root.path().join("daemon.toml"))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--kmsg")
            .arg(host.kmsg())
            .args(&args)
            .env("NVML_EMULATOR_STATE", &state)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(
        Duration::from_secs(30),
        "AcceleratedHardwareReady True",
        || condition_is(&api, ACCEL, "True", "AcceleratedHardwareIsReady"),
    );
    write_atomic(&state, "count 8\nnvlink 0 1 5 7\necc 3 2\n");
    wait_for(Duration::from_secs(30), "NvidiaDoubleBitError", || {
        condition_is(&api, ACCEL, "False", "NvidiaDoubleBitError")
    });
    write_atomic(&state, healthy);
    wait_for(Duration::from_secs(30), "True", || {
        condition_is(&api, ACCEL, "True", "")
    });
    write_atomic(&state, "count 8\nnvlink 0 1 6 9\n");
    wait_for(Duration::from_secs(30), "NvidiaNVLinkError", || {
        condition_is(&api, ACCEL, "False", "NvidiaNVLinkError")
    });
    // No further rise: it clears after the hold.
    wait_for(Duration::from_secs(30), "True again", || {
        condition_is(&api, ACCEL, "True", "")
    });
    write_atomic(&state, "fail\n");
    wait_for(Duration::from_secs(20), "NvmlError event", || {
        events_with(&api, "NvmlError") == 1
    });
    assert!(condition_is(&api, ACCEL, "True", ""), "a Warning");
    let text = scrape(port);
    assert_eq!(
        sample(
            &text,
            "eksnode_accelerator_errors_total{reason=\"NvidiaDoubleBitError\"}"
        ),
        Some(1.0),
        "{text}"
    );
}
