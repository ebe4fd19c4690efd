//! The write-budget simulation: many simulated agents, each with the daemon's real pieces
//! (the verdict over every check's outcome with the catalog's severities, the condition state
//! machine with its coalescing, the taint reconciliation, the event rules and deduplication)
//! and the real kube-rs request path, against the Kubernetes API emulator, over simulated
//! minutes. Every write the API server sees counts: condition PATCHes, taint PATCHes, event
//! POSTs and PATCHes. `tests/tests/integration/daemon.rs` (`scale_simulation`) and bench-all's
//! `write-budget` section run it.

use std::collections::{BTreeMap, BTreeSet};

use eks_node_agent::checks::reasons::{Policy, Severity};
use eks_node_agent::checks::{CheckKind, Outcome};
use eks_node_agent::daemon::verdict;
use eks_node_agent::model::ConditionType;
use eks_node_agent::report::conditions::Conditions;
use eks_node_agent::report::kube::{EventDedup, NodeApi};
use eks_node_agent::report::taints::{self, Effect, TaintSpec};

use crate::kube_api::KubeApi;

/// What to simulate.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Simulated nodes.
    pub nodes: usize,
    /// Simulated minutes.
    pub minutes: i64,
    /// Seconds between two runs of a node's checks (the default interval).
    pub check_interval_secs: i64,
    /// Percent of nodes whose checks find problems at random (each run: healthy, a Fatal or a
    /// Warning problem, at even odds).
    pub flapping_percent: usize,
    /// Percent of nodes with accelerators (one more check, one more condition).
    pub accelerated_percent: usize,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            nodes: 2_000,
            minutes: 10,
            check_interval_secs: 30,
            flapping_percent: 5,
            accelerated_percent: 10,
        }
    }
}

/// What the API server saw.
#[derive(Debug, Clone, Default)]
pub struct Writes {
    /// Condition PATCHes.
    pub conditions: u64,
    /// Taint PATCHes.
    pub taints: u64,
    /// Event creates and series bumps.
    pub events: u64,
    /// Wall time of the run.
    pub wall: std::time::Duration,
}

impl Writes {
    /// Every write.
    pub fn total(&self) -> u64 {
        self.conditions + self.taints + self.events
    }

    /// Writes per node per simulated minute.
    pub fn per_node_minute(&self, plan: &Plan) -> f64 {
        self.total() as f64 / plan.nodes as f64 / plan.minutes as f64
    }
}

/// One simulated node.
struct Node {
    latest: BTreeMap<CheckKind, Outcome>,
    conditions: Conditions,
    active: BTreeSet<(CheckKind, String)>,
    last_event: BTreeMap<String, i64>,
    dedup: EventDedup,
    taints_applied: Vec<taints::Taint>,
}

/// The problems a flapping node's checks find, by kind: (Fatal, Warning).
const FLAPS: [(CheckKind, &str, &str); 4] = [
    (CheckKind::Kernel, "ForkFailedOutOfPIDs", "SoftLockup"),
    (
        CheckKind::Network,
        "CNIConfigMissing",
        "PodIPsNearlyExhausted",
    ),
    (CheckKind::Storage, "FilesystemReadOnly", "DiskSpaceLow"),
    (
        CheckKind::Accelerators,
        "NvidiaXID79Error",
        "NvidiaXID13Warning",
    ),
];

/// Runs the simulation against a fresh emulator on `rt`.
pub fn simulate(rt: &tokio::runtime::Runtime, plan: Plan) -> Writes {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let api = rt.block_on(KubeApi::start("scale-token"));
    api.allow_token("scale-admin");
    let dir = tempfile::tempdir().expect("tempdir");
    let kc_path = dir.path().join("kubeconfig");
    std::fs::write(&kc_path, api.kubeconfig_for("scale-admin")).expect("kubeconfig");
    for i in 0..plan.nodes {
        api.add_node(&format!("node-{i}"), serde_json::json!([]));
    }
    let client = rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(&kc_path).expect("kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("config");
        kube::Client::try_from(cfg).expect("client")
    });
    let apis: Vec<NodeApi> = (0..plan.nodes)
        .map(|i| NodeApi::with_client(client.clone(), &format!("node-{i}")))
        .collect();
    // Every condition tainted: the worst case for taint writes.
    let specs: BTreeMap<ConditionType, TaintSpec> = ConditionType::ALL
        .into_iter()
        .map(|ct| {
            (
                ct,
                TaintSpec {
                    key: format!("eks-node-agent/{}", ct.as_str()),
                    effect: Effect::NoSchedule,
                },
            )
        })
        .collect();
    let policy = Policy::default();
    let mut nodes: Vec<Node> = (0..plan.nodes)
        .map(|_| Node {
            latest: BTreeMap::new(),
            conditions: Conditions::default(),
            active: BTreeSet::new(),
            last_event: BTreeMap::new(),
            dedup: EventDedup::default(),
            taints_applied: Vec::new(),
        })
        .collect();
    // A small deterministic PRNG (xorshift) so runs are reproducible.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let start = time::OffsetDateTime::now_utc();
    let flapping = plan.nodes * plan.flapping_percent / 100;
    let accelerated = plan.nodes * plan.accelerated_percent / 100;
    let mut writes = Writes::default();
    let wall = std::time::Instant::now();
    for second in 0..plan.minutes * 60 {
        let now = start + time::Duration::seconds(second);
        let mut condition_batch = Vec::new();
        let mut event_batch = Vec::new();
        for (i, node) in nodes.iter_mut().enumerate() {
            // Each node's checks run every interval, staggered by node.
            if (second + i as i64) % plan.check_interval_secs == 0 {
                let kinds = [
                    CheckKind::Kubelet,
                    CheckKind::Containerd,
                    CheckKind::VpcCni,
                    CheckKind::Network,
                    CheckKind::Kernel,
                    CheckKind::Storage,
                    CheckKind::Credentials,
                    CheckKind::Clock,
                    CheckKind::Pods,
                ];
                for kind in kinds
                    .into_iter()
                    .chain((i < accelerated).then_some(CheckKind::Accelerators))
                {
                    let outcome = match FLAPS.iter().find(|(k, _, _)| *k == kind) {
                        Some((_, fatal, warning)) if i < flapping => match rand() % 3 {
                            0 => Outcome::fail(fatal, format!("{fatal} at {second}s")),
                            1 => Outcome::fail(warning, format!("{warning} at {second}s")),
                            _ => Outcome::ok(format!("fine at {second}s")),
                        },
                        _ => Outcome::ok(format!("fine at {second}s")),
                    };
                    node.latest.insert(kind, outcome);
                }
                let v = verdict::verdict(&node.latest, &policy, false);
                let mut active = BTreeSet::new();
                for a in &v.active {
                    let key = (a.kind, a.reason.clone());
                    let due = node
                        .last_event
                        .get(&a.reason)
                        .is_none_or(|at| second - at >= 60);
                    if !node.active.contains(&key) && a.severity == Severity::Warning && due {
                        node.last_event.insert(a.reason.clone(), second);
                        let action =
                            node.dedup
                                .action(&format!("node-{i}"), &a.reason, &a.message, now);
                        event_batch.push((i, action, a.reason.clone(), a.message.clone()));
                    }
                    active.insert(key);
                }
                node.active = active;
                for (ct, d) in v.conditions {
                    node.conditions.set(ct, d);
                }
            }
            if let Some(patch) = node.conditions.due(now) {
                condition_batch.push((i, patch));
            }
        }
        let results = rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for (i, patch) in condition_batch {
                let api = apis[i].clone();
                set.spawn(async move { (i, api.patch_conditions(&patch).await.map(|()| patch)) });
            }
            for (i, action, reason, note) in event_batch {
                let api = apis[i].clone();
                set.spawn(async move {
                    api.emit(action, true, &reason, &note)
                        .await
                        .expect("event accepted");
                    (usize::MAX, Ok(Vec::new()))
                });
            }
            set.join_all().await
        });
        let mut taint_batch = Vec::new();
        for (i, result) in results {
            if i == usize::MAX {
                continue;
            }
            let patch = result.expect("PATCH accepted");
            let node = &mut nodes[i];
            node.conditions.committed(&patch, now);
            let desired: Vec<taints::Taint> = specs
                .iter()
                .filter_map(|(ct, spec)| {
                    let (healthy, reason, _) = node.conditions.written(*ct)?;
                    (!healthy).then(|| taints::wanted(spec, reason))
                })
                .collect();
            if desired != node.taints_applied {
                node.taints_applied = desired.clone();
                taint_batch.push((i, desired));
            }
        }
        rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for (i, desired) in taint_batch {
                let api = apis[i].clone();
                set.spawn(async move {
                    let current = api.taints().await.expect("GET node");
                    let owned = taints::parse_owned(current.owned.as_deref());
                    if let Some(change) = taints::reconcile(&current.taints, &owned, &desired) {
                        api.set_taints(
                            &current.resource_version,
                            &change.taints,
                            change.owned.as_deref(),
                        )
                        .await
                        .expect("taint PATCH accepted");
                    }
                });
            }
            set.join_all().await
        });
    }
    for r in api.requests() {
        match (r.method.as_str(), r.path.as_str()) {
            ("PATCH", p) if p.ends_with("/status") => writes.conditions += 1,
            ("PATCH", p) if p.starts_with("/api/v1/nodes/") => writes.taints += 1,
            ("POST" | "PATCH", p) if p.contains("/events") => writes.events += 1,
            _ => {}
        }
    }
    writes.wall = wall.elapsed();
    writes
}
