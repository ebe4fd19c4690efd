//! The checks `eks-node-agent run` keeps running: their kinds, the condition each owns, their
//! schedules and what they look at ([`Targets`]), and [`Context::run`], which runs one. The
//! daemon (`crate::daemon`) schedules them and turns their outcomes into conditions, events and
//! metrics (see the [module documentation](super)).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::kernel::{self, SharedKmsg};
use super::{Outcome, cri, iam, probes, units};
use crate::model::{ConditionType, paths};
use crate::net::{ClientBuilder, Proxy, Trust};

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
    /// ECS hosts: docker.service active and Docker's `/_ping`.
    Docker,
    /// ECS hosts: ecs.service active and the ECS agent's introspection API (registered,
    /// cluster, version, tasks).
    EcsAgent,
}

impl CheckKind {
    /// Every check.
    pub const ALL: [CheckKind; 9] = [
        Self::Kubelet,
        Self::Containerd,
        Self::VpcCni,
        Self::Kernel,
        Self::Storage,
        Self::Credentials,
        Self::Clock,
        Self::Docker,
        Self::EcsAgent,
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
            Self::Docker => "docker",
            Self::EcsAgent => "ecs_agent",
        }
    }

    /// The condition a [`Severity::Fatal`](super::Severity::Fatal) failure of this check sets
    /// False; `None` for checks whose failures are only metrics and events (kubelet health is the kubelet's own `Ready`; an unsynchronised
    /// clock is normal for the first minutes after boot and in containers, so it is a
    /// warning event and `node_timex_sync_status`, not KernelReady False).
    pub fn condition(self) -> Option<ConditionType> {
        match self {
            Self::Kubelet | Self::Credentials | Self::Clock | Self::EcsAgent => None,
            Self::Containerd | Self::Docker => Some(ConditionType::ContainerRuntimeReady),
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
    /// An ECS container instance: Docker and the ECS agent are checked instead of kubelet,
    /// containerd and the VPC CNI.
    pub ecs: Option<EcsTargets>,
}

/// What the checks of an ECS host look at.
#[derive(Debug, Clone)]
pub struct EcsTargets {
    /// Docker's socket.
    pub docker_socket: PathBuf,
    /// The ECS agent's introspection API.
    pub introspection: crate::facts::ecs_agent::Introspection,
    /// The cluster ecs.config names.
    pub cluster: String,
}

impl Targets {
    /// Whether a check applies to this host: kubelet, containerd and the VPC CNI on EKS nodes
    /// (the VPC CNI not on hybrid nodes), Docker and the ECS agent on ECS hosts.
    pub fn applies(&self, kind: CheckKind) -> bool {
        match kind {
            CheckKind::Kubelet | CheckKind::Containerd => self.ecs.is_none(),
            CheckKind::VpcCni => self.ecs.is_none() && !self.skip_vpc_cni,
            CheckKind::Docker | CheckKind::EcsAgent => self.ecs.is_some(),
            CheckKind::Kernel | CheckKind::Storage | CheckKind::Credentials | CheckKind::Clock => {
                true
            }
        }
    }
}

impl Default for Targets {
    fn default() -> Self {
        Self {
            kubelet_healthz: "http://127.0.0.1:10248/healthz".to_string(),
            containerd_socket: PathBuf::from(paths::CONTAINERD_SOCKET),
            cni_conflist: PathBuf::from(paths::VPC_CNI_CONFLIST),
            ipamd_introspection: "http://127.0.0.1:61679".to_string(),
            ipamd_metrics: "http://127.0.0.1:61678/metrics".to_string(),
            skip_vpc_cni: false,
            proc: PathBuf::from("/proc"),
            kmsg: PathBuf::from("/dev/kmsg"),
            storage_dirs: vec![
                PathBuf::from(paths::KUBELET_DIR),
                PathBuf::from(paths::CONTAINERD_DIR),
            ],
            kubelet_client_cert: PathBuf::from(paths::KUBELET_CLIENT_CERT),
            iam: iam::Source::None,
            systemd_bus: units::Bus::System,
            kubelet_unit: "kubelet.service".to_string(),
            containerd_unit: "containerd.service".to_string(),
            ecs: None,
        }
    }
}

/// What the checks share while the daemon runs: the targets, one loopback HTTP client, the
/// kernel log state, the systemd reader and, for the instance role's expiry, IMDS.
#[derive(Debug)]
pub struct Context {
    /// What the checks look at.
    pub targets: Targets,
    /// What the kernel log follower has seen.
    pub kmsg: SharedKmsg,
    http: reqwest::Client,
    units: units::Reader,
    /// IMDS, only when the IAM credentials are the instance role's.
    imds: Option<crate::facts::imds::Imds>,
}

impl Context {
    /// The context for `targets`. The checks speak plain HTTP to loopback endpoints (kubelet
    /// healthz, ipamd): their client trusts no CA (no certificate store is loaded, which keeps
    /// the resident set small), never uses a proxy, and bounds each request by the default
    /// check timeout.
    pub fn new(targets: Targets, kmsg: SharedKmsg) -> Result<Context, crate::net::client::Error> {
        let http = ClientBuilder::new()
            .trust(Trust::None)
            .proxy(Proxy::Never)
            .timeout(Schedule::default().timeout)
            .build()?;
        let imds = match &targets.iam {
            iam::Source::InstanceRole => match iam::imds_client() {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(error = %crate::model::text::error_chain(&e), "no IMDS client: the instance role's expiry is not watched");
                    None
                }
            },
            _ => None,
        };
        Ok(Context {
            units: units::Reader::new(targets.systemd_bus.clone()),
            targets,
            kmsg,
            http,
            imds,
        })
    }

    /// Runs one check of `kind` (unbounded: the caller applies the schedule's timeout).
    pub async fn run(&self, kind: CheckKind) -> Outcome {
        let t = &self.targets;
        match kind {
            CheckKind::Kubelet => {
                self.with_unit(
                    &t.kubelet_unit,
                    "Kubelet",
                    probes::kubelet(&self.http, &t.kubelet_healthz),
                )
                .await
            }
            CheckKind::Containerd => {
                self.with_unit(
                    &t.containerd_unit,
                    "Containerd",
                    cri::check(&t.containerd_socket),
                )
                .await
            }
            CheckKind::VpcCni => {
                probes::vpc_cni(
                    &self.http,
                    &t.cni_conflist,
                    &t.ipamd_introspection,
                    &t.ipamd_metrics,
                )
                .await
            }
            CheckKind::Kernel => {
                let tables = kernel::read_tables(&t.proc);
                let problem = self
                    .kmsg
                    .lock()
                    .ok()
                    .and_then(|s| s.active_problem(Instant::now()));
                kernel::evaluate(&tables, problem)
            }
            // statfs(2) of local directories answers in microseconds: run inline rather than
            // on tokio's blocking pool, whose threads (each with its own malloc arena) cost
            // more resident memory than the call.
            CheckKind::Storage => probes::storage(&t.storage_dirs),
            CheckKind::Clock => super::clock::evaluate(&crate::report::host::timex::read()),
            CheckKind::Docker => match &t.ecs {
                Some(e) => {
                    self.with_unit(
                        crate::model::ecs::DOCKER_UNIT,
                        "Docker",
                        super::ecs::docker(&e.docker_socket),
                    )
                    .await
                }
                None => Outcome::ok("not an ECS host"),
            },
            CheckKind::EcsAgent => match &t.ecs {
                Some(e) => {
                    self.with_unit(
                        crate::model::ecs::ECS_UNIT,
                        "EcsAgent",
                        super::ecs::agent(&e.introspection, Some(&e.cluster)),
                    )
                    .await
                }
                None => Outcome::ok("not an ECS host"),
            },
            CheckKind::Credentials => {
                let now = OffsetDateTime::now_utc().unix_timestamp();
                let cert = probes::credentials(&t.kubelet_client_cert, now);
                let iam = iam::check(&t.iam, self.imds.as_ref(), now).await;
                combine_credentials(cert, iam)
            }
        }
    }

    /// A check that depends on a systemd unit: the unit not active is the problem (with its
    /// state and restart count); otherwise the check's own probe decides. The unit's state
    /// rides along in the facts either way.
    async fn with_unit(
        &self,
        unit: &str,
        prefix: &str,
        probe: impl Future<Output = Outcome>,
    ) -> Outcome {
        let ((problem, unit_facts), mut out) =
            tokio::join!(units::check(&self.units, unit, prefix), probe);
        if let Some(problem) = problem {
            // The unit's problem is the verdict; what the probe measured (e.g. the CRI network
            // verdict) is kept.
            out = Outcome {
                facts: out.facts,
                ..problem
            };
        }
        out.facts.unit = unit_facts;
        out
    }
}

/// The credentials check's verdict: the kubelet certificate's problem first, then the IAM
/// credentials'; the facts of both are kept.
pub fn combine_credentials(cert: Outcome, iam: Option<Outcome>) -> Outcome {
    let Some(iam) = iam else { return cert };
    let iam_expiry = iam.facts.iam_expiry.clone();
    let mut out = match (cert.is_healthy(), iam.is_healthy()) {
        (false, _) => cert,
        (true, false) => Outcome {
            facts: cert.facts,
            ..iam
        },
        (true, true) => {
            let message = format!("{}; {}", cert.message, iam.message);
            Outcome {
                evidence: message.clone(),
                message,
                ..cert
            }
        }
    };
    out.facts.iam_expiry = iam_expiry;
    out
}
