//! Health checks. Each check has its own interval and timeout, returns an [`Outcome`] and can
//! recover: nothing is latched, the next healthy run clears the problem. The decision logic
//! is pure (thresholds over parsed values); the probes are a few lines of IO around it.

pub mod cri;
pub mod iam;
pub mod kernel;
pub mod probes;
pub mod units;

use std::path::PathBuf;
use std::time::Duration;

pub use crate::model::ConditionType;

/// What one run of a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// True when healthy.
    pub healthy: bool,
    /// CamelCase reason, e.g. `ContainerdUnreachable`; empty when healthy.
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
    /// Numbers the check measured, for the metrics.
    pub facts: Facts,
}

/// Numbers a check measured on the way, exported as `eksnode_*` metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// IPs ipamd holds in its warm pool and attached ENIs.
    pub cni_total_ips: Option<u64>,
    /// IPs ipamd has handed to pods.
    pub cni_assigned_ips: Option<u64>,
    /// The kubelet client certificate's notAfter, seconds since the epoch.
    pub cert_not_after_unix: Option<i64>,
    /// When the node's IAM credentials expire.
    pub iam_expiry: Option<iam::Expiry>,
    /// The container runtime's CRI `RuntimeReady`.
    pub runtime_ready: Option<bool>,
    /// The container runtime's CRI `NetworkReady`, which feeds NetworkingReady.
    pub network: Option<NetworkVerdict>,
    /// The systemd unit the check depends on, as systemd reported it.
    pub unit: Option<UnitFacts>,
    /// A warning on a healthy outcome (e.g. pod IPs nearly exhausted): a Warning event
    /// when it appears, not a condition change.
    pub warning: Option<Warning>,
}

/// A transient warning: reason and message for the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// CamelCase reason.
    pub reason: String,
    /// Detail.
    pub message: String,
}

/// A systemd unit's state, for the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFacts {
    /// The unit name, e.g. `kubelet.service`.
    pub unit: String,
    /// `ActiveState` is active (or reloading).
    pub active: bool,
    /// `NRestarts`.
    pub restarts: Option<u32>,
}

/// Whether pod networking is ready, as a check other than the VPC CNI check saw it (the
/// container runtime's CRI `NetworkReady`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkVerdict {
    /// True when ready.
    pub ready: bool,
    /// CamelCase reason when not ready.
    pub reason: String,
    /// Detail.
    pub message: String,
}

impl Outcome {
    /// A healthy outcome.
    pub fn ok(message: impl Into<String>) -> Self {
        Self {
            healthy: true,
            reason: String::new(),
            message: message.into(),
            facts: Facts::default(),
        }
    }

    /// The same outcome carrying measured numbers.
    pub fn with_facts(mut self, facts: Facts) -> Self {
        self.facts = facts;
        self
    }

    /// A problem with a reason.
    pub fn problem(reason: &str, message: impl Into<String>) -> Self {
        Self {
            healthy: false,
            reason: reason.to_string(),
            message: message.into(),
            facts: Facts::default(),
        }
    }
}

/// The checks the daemon runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CheckKind {
    /// kubelet.service active (systemd over D-Bus) and kubelet's healthz endpoint.
    Kubelet,
    /// containerd.service active (systemd over D-Bus) and containerd's CRI
    /// `RuntimeService/Status` (RuntimeReady, NetworkReady).
    Containerd,
    /// VPC CNI config and ipamd.
    VpcCni,
    /// Kernel tables (pids, files, conntrack) and kernel log problems.
    Kernel,
    /// Read-only or full kubelet/containerd filesystems.
    Storage,
    /// Expiry of the kubelet client certificate and of the node's IAM credentials.
    Credentials,
    /// The kernel's clock discipline (adjtimex): an unsynchronised clock is an event.
    Clock,
}

impl CheckKind {
    /// Every check.
    pub const ALL: [CheckKind; 7] = [
        Self::Kubelet,
        Self::Containerd,
        Self::VpcCni,
        Self::Kernel,
        Self::Storage,
        Self::Credentials,
        Self::Clock,
    ];

    /// The name used in metrics, logs and config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kubelet => "kubelet",
            Self::Containerd => "containerd",
            Self::VpcCni => "vpc_cni",
            Self::Kernel => "kernel",
            Self::Storage => "storage",
            Self::Credentials => "credentials",
            Self::Clock => "clock",
        }
    }

    /// The condition a failure of this check sets False; `None` for checks that only report
    /// metrics and events (kubelet health is the kubelet's own `Ready`; an unsynchronised
    /// clock is normal for the first minutes after boot and in containers, so it is a
    /// warning event and `node_timex_sync_status`, not KernelReady False).
    pub fn condition(self) -> Option<ConditionType> {
        match self {
            Self::Kubelet | Self::Credentials | Self::Clock => None,
            Self::Containerd => Some(ConditionType::ContainerRuntimeReady),
            Self::VpcCni => Some(ConditionType::NetworkingReady),
            Self::Kernel => Some(ConditionType::KernelReady),
            Self::Storage => Some(ConditionType::StorageReady),
        }
    }

    /// Parses a check name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Default time between two runs of a check.
pub const DEFAULT_INTERVAL_SECS: u64 = 30;
/// Default bound on one run of a check.
pub const DEFAULT_TIMEOUT_SECS: u64 = 5;

/// When a check runs and how long it may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Time between runs.
    pub interval: Duration,
    /// Bound on one run; a run that takes longer is a failure with reason `CheckTimedOut`.
    pub timeout: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(DEFAULT_INTERVAL_SECS),
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
        }
    }
}

/// Every path and endpoint the checks look at, with production defaults.
#[derive(Debug, Clone)]
pub struct Targets {
    /// kubelet's healthz URL.
    pub kubelet_healthz: String,
    /// containerd's gRPC socket.
    pub containerd_socket: PathBuf,
    /// The VPC CNI's CNI config file.
    pub cni_conflist: PathBuf,
    /// ipamd's introspection base URL.
    pub ipamd_introspection: String,
    /// ipamd's metrics URL.
    pub ipamd_metrics: String,
    /// The VPC CNI check is skipped (hybrid nodes use another CNI).
    pub skip_vpc_cni: bool,
    /// procfs.
    pub proc: PathBuf,
    /// The kernel log device.
    pub kmsg: PathBuf,
    /// Directories whose filesystems must be writable with space left.
    pub storage_dirs: Vec<PathBuf>,
    /// The kubelet's client certificate.
    pub kubelet_client_cert: PathBuf,
    /// Where the node's IAM credentials come from, for their expiry.
    pub iam: iam::Source,
    /// systemd's bus, for the kubelet and containerd units' state.
    pub systemd_bus: units::Bus,
    /// The kubelet's unit.
    pub kubelet_unit: String,
    /// containerd's unit.
    pub containerd_unit: String,
}

impl Default for Targets {
    fn default() -> Self {
        Self {
            kubelet_healthz: "http://127.0.0.1:10248/healthz".to_string(),
            containerd_socket: PathBuf::from("/run/containerd/containerd.sock"),
            cni_conflist: PathBuf::from("/etc/cni/net.d/10-aws.conflist"),
            ipamd_introspection: "http://127.0.0.1:61679".to_string(),
            ipamd_metrics: "http://127.0.0.1:61678/metrics".to_string(),
            skip_vpc_cni: false,
            proc: PathBuf::from("/proc"),
            kmsg: PathBuf::from("/dev/kmsg"),
            storage_dirs: vec![
                PathBuf::from("/var/lib/kubelet"),
                PathBuf::from("/var/lib/containerd"),
            ],
            kubelet_client_cert: PathBuf::from("/var/lib/kubelet/pki/kubelet-client-current.pem"),
            iam: iam::Source::None,
            systemd_bus: units::Bus::System,
            kubelet_unit: "kubelet.service".to_string(),
            containerd_unit: "containerd.service".to_string(),
        }
    }
}
