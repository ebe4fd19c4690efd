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
