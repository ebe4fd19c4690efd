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
        me.set_eth0_flags("0x1043");
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

    fn set_eth0_flags(&self, flags: &str) {
        std::fs::create_dir_all(self.sys().join("class/net/eth0")).unwrap();
        write_atomic(
            &self.sys().join("class/net/eth0/flags"),
            &format!("{flags}\n"),
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
    api.add_pod(
        "kube-system",
        "eks-node-monitoring-agent-x2x9z",
        "node-a",
        json!({"app.kubernetes.io/name": "eks-node-monitoring-agent", "app.kubernetes.io/instance": "eks-node-monitoring-agent"}),
    );
    api.add_pod(
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
