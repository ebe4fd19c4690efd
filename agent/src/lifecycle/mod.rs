//! EC2 lifecycle events, handled on the node: the daemon polls IMDS for a spot interruption
//! notice, a rebalance recommendation, scheduled maintenance and the Auto Scaling target
//! lifecycle state ([`watch`]); each event kind has its actions ([`config`]): a
//! `eks-node-agent/<kind>:NoSchedule` taint, cordon, the exclude-from-load-balancers label, a
//! deadline-aware drain through the Eviction API ([`drain`]), the out-of-service taint, and
//! for a scale-in the Auto Scaling lifecycle hook's completion ([`asg`]). [`engine`] decides
//! and acts, and keeps what it did in a state file so that a restarted daemon resumes
//! ([`state`]). At boot, [`warm_pool`] holds the kubelet of a warm-pool instance until it is
//! in service. docs/lifecycle.md is the user's guide.

pub mod asg;
pub mod config;
pub mod drain;
pub mod engine;
pub mod events;
pub mod metrics;
pub mod state;
pub mod warm_pool;
pub mod watch;

pub use config::{Action, Settings};

/// The events the watchers act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// `spot/instance-action`: EC2 reclaims the spot instance (two minutes' notice).
    SpotInterruption,
    /// `events/recommendations/rebalance`: the spot instance is at elevated risk.
    RebalanceRecommendation,
    /// `events/maintenance/scheduled`: a reboot, stop or retirement is scheduled.
    ScheduledMaintenance,
    /// `autoscaling/target-lifecycle-state` is `Terminated`: Auto Scaling scales in.
    AsgTermination,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 4] = [
        EventKind::SpotInterruption,
        EventKind::RebalanceRecommendation,
        EventKind::ScheduledMaintenance,
        EventKind::AsgTermination,
    ];

    /// The name in metrics, logs, the state file and the taint key.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::SpotInterruption => "spot-interruption",
            EventKind::RebalanceRecommendation => "rebalance-recommendation",
            EventKind::ScheduledMaintenance => "scheduled-maintenance",
            EventKind::AsgTermination => "asg-termination",
        }
    }

    /// The daemon.toml table under `[lifecycle]`.
    pub fn table(self) -> &'static str {
        match self {
            EventKind::SpotInterruption => "spot_interruption",
            EventKind::RebalanceRecommendation => "rebalance_recommendation",
            EventKind::ScheduledMaintenance => "scheduled_maintenance",
            EventKind::AsgTermination => "asg_termination",
        }
    }

    /// The reason of the Kubernetes Event.
    pub fn reason(self) -> &'static str {
        match self {
            EventKind::SpotInterruption => "SpotInterruption",
            EventKind::RebalanceRecommendation => "RebalanceRecommendation",
            EventKind::ScheduledMaintenance => "ScheduledMaintenance",
            EventKind::AsgTermination => "AutoScalingTermination",
        }
    }

    /// The taint this kind puts on the Node: `eks-node-agent/<kind>`, effect NoSchedule.
    pub fn taint_key(self) -> String {
        format!("{TAINT_PREFIX}{}", self.as_str())
    }

    /// Parses [`EventKind::as_str`].
    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The prefix of the taints the watchers own.
pub const TAINT_PREFIX: &str = "eks-node-agent/";
/// The label that takes the Node out of external load balancers.
pub const EXCLUDE_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
/// The out-of-service taint's key (Kubernetes' non-graceful node shutdown).
pub const OUT_OF_SERVICE_KEY: &str = "node.kubernetes.io/out-of-service";
/// The out-of-service taint's value.
pub const OUT_OF_SERVICE_VALUE: &str = "nodeshutdown";

/// A message for the Node's Kubernetes Events, which the daemon writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Warning (true) or Normal.
    pub warning: bool,
    /// The reason, e.g. `SpotInterruption`.
    pub reason: String,
    /// The note.
    pub note: String,
}

/// What the daemon hands the lifecycle watchers at start.
#[derive(Debug)]
pub struct Start<'a> {
    /// `[lifecycle]`.
    pub settings: Settings,
    /// The host is EC2 (`enabled = "auto"` is on).
    pub ec2: bool,
    /// The Node's name.
    pub node: String,
    /// The daemon's kubeconfig (`None`: `--no-kubernetes`), used unless `[lifecycle]
    /// kubeconfig` names another.
    pub kubeconfig: Option<std::path::PathBuf>,
    /// The state file.
    pub state_file: std::path::PathBuf,
    /// The daemon's metrics, which the lifecycle metrics join.
    pub metrics: &'a crate::report::metrics::Metrics,
}

/// Starts the watchers and the engine when `enabled` says so (`auto`: on EC2): IMDS with the
/// process's endpoint settings, a Kubernetes client of its own without client-side retries
/// (the drain retries a budget's 429 against its own deadline). Returns the engine's task and
/// the Node events it wants written; `None` when off or when IMDS cannot be used.
pub async fn start(
    s: Start<'_>,
) -> Result<
    Option<(
        tokio::task::JoinHandle<()>,
        tokio::sync::mpsc::UnboundedReceiver<Notice>,
    )>,
    prometheus::Error,
> {
    use config::Enabled;
    let on = match s.settings.enabled {
        Enabled::On => true,
        Enabled::Off => false,
        Enabled::Auto => s.ec2,
    };
    if !on {
        tracing::info!(enabled = ?s.settings.enabled, "EC2 lifecycle watchers off");
        return Ok(None);
    }
    let metrics = metrics::Metrics::register(s.metrics)?;
    let imds = match crate::facts::imds::Imds::new() {
        Ok(i) => i.quiet().with_policy(watch::WATCH_POLICY),
        Err(e) => {
            tracing::error!(error = %crate::model::text::error_chain(&e), "no IMDS client: EC2 lifecycle events are not watched");
            return Ok(None);
        }
    };
    let kubeconfig = s.settings.kubeconfig.clone().or(s.kubeconfig);
    let kube = match &kubeconfig {
        Some(path) => match crate::report::kube::client(path, false).await {
            Ok(c) => Some(crate::report::node_ops::NodeOps::new(c, &s.node)),
            Err(e) => {
                tracing::error!(error = %crate::model::text::error_chain(&e), "lifecycle: no Kubernetes client; taints, cordon and drains are skipped");
                None
            }
        },
        None => None,
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = engine::spawn(engine::Inputs {
        settings: s.settings,
        node: s.node,
        kube,
        imds: std::sync::Arc::new(imds),
        state_path: s.state_file,
        metrics,
        notices: tx,
    });
    Ok(Some((task, rx)))
}
