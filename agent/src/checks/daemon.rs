//! The checks `eks-node-agent run` keeps running: their kinds, the condition each owns, their
//! schedules and what they look at ([`Targets`]), and [`Context::run`], which runs one. The
//! daemon (`crate::daemon`) schedules them and turns their outcomes into conditions, events and
//! metrics (see the [module documentation](super)).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::kernel::{self, SharedKmsg};
use super::{Outcome, Problem, accelerators, cri, iam, network, nvml, pods, probes, units};
use crate::model::{ConditionType, InstanceType, paths};
use crate::net::{ClientBuilder, Proxy, Trust};

/// The checks the daemon runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CheckKind {
    /// kubelet.service active (systemd over D-Bus) and kubelet's healthz endpoint.
    Kubelet,
    /// containerd.service active (systemd over D-Bus) and containerd's CRI
    /// `RuntimeService/Status` (RuntimeReady, NetworkReady).
    Containerd,
    /// VPC CNI config and ipamd (where the VPC CNI is installed).
    VpcCni,
    /// Pod networking whatever the CNI: a CNI config, loopback, the primary interface.
    Network,
    /// Kernel tables (pids, files, conntrack) and kernel log problems.
    Kernel,
    /// Read-only or full kubelet/containerd filesystems.
    Storage,
    /// Expiry of the kubelet client certificate and of the node's IAM credentials.
    Credentials,
    /// The kernel's clock discipline (adjtimex): an unsynchronised clock is an event.
    Clock,
    /// GPUs and Neuron devices (only on nodes that have them).
    Accelerators,
    /// Pods stuck terminating (the API server's pods of the node and the runtime's sandboxes).
    Pods,
    /// ECS hosts: docker.service active and Docker's `/_ping`.
    Docker,
    /// ECS hosts: ecs.service active and the ECS agent's introspection API (registered,
    /// cluster, version, tasks).
    EcsAgent,
}

impl CheckKind {
    /// Every check.
    pub const ALL: [CheckKind; 12] = [
        Self::Kubelet,
        Self::Containerd,
        Self::VpcCni,
        Self::Network,
        Self::Kernel,
        Self::Storage,
        Self::Credentials,
        Self::Clock,
        Self::Accelerators,
        Self::Pods,
        Self::Docker,
        Self::EcsAgent,
    ];

    /// The name used in metrics, logs and config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kubelet => "kubelet",
            Self::Containerd => "containerd",
            Self::VpcCni => "vpc_cni",
            Self::Network => "network",
            Self::Kernel => "kernel",
            Self::Storage => "storage",
            Self::Credentials => "credentials",
            Self::Clock => "clock",
            Self::Accelerators => "accelerators",
            Self::Pods => "pods",
            Self::Docker => "docker",
            Self::EcsAgent => "ecs_agent",
        }
    }

    /// Its default schedule: [`Schedule::default`], but the pod check, which lists pods from
    /// the API server, runs every [`pods::DEFAULT_INTERVAL_SECS`].
    pub fn default_schedule(self) -> Schedule {
        match self {
            Self::Pods => Schedule {
                interval: Duration::from_secs(pods::DEFAULT_INTERVAL_SECS),
                ..Schedule::default()
            },
            _ => Schedule::default(),
        }
    }

    /// The condition this check reports on while healthy (it is written True once the check
    /// ran); `None` for checks whose reasons are Warnings unless the operator promotes them
    /// (kubelet health is the kubelet's own `Ready`; an unsynchronised clock is normal for the
    /// first minutes after boot). Which condition a Fatal problem sets False is its reason's
    /// (the catalog, [`super::reasons`]).
    pub fn condition(self) -> Option<ConditionType> {
        match self {
            Self::Kubelet | Self::Credentials | Self::Clock | Self::EcsAgent => None,
            Self::Containerd | Self::Pods | Self::Docker => {
                Some(ConditionType::ContainerRuntimeReady)
            }
            Self::VpcCni | Self::Network => Some(ConditionType::NetworkingReady),
            Self::Kernel => Some(ConditionType::KernelReady),
            Self::Storage => Some(ConditionType::StorageReady),
            Self::Accelerators => Some(ConditionType::AcceleratedHardwareReady),
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

/// ipamd's state directory (its checkpoint `ipam.json` lives there).
pub const VPC_CNI_STATE_DIR: &str = "/var/run/aws-node";

/// Every path and endpoint the checks look at, with production defaults.
#[derive(Debug, Clone)]
pub struct Targets {
    /// kubelet's healthz URL.
    pub kubelet_healthz: String,
    /// containerd's gRPC socket.
    pub containerd_socket: PathBuf,
    /// The VPC CNI's CNI config file.
    pub cni_conflist: PathBuf,
    /// Files the VPC CNI's aws-node pod leaves on the host: any of them (or the conflist)
    /// means the VPC CNI is installed and its checks apply.
    pub vpc_cni_markers: Vec<PathBuf>,
    /// The container runtime's CNI config directory.
    pub cni_conf_dir: PathBuf,
    /// sysfs (PCI devices, network interfaces, the DMI product name, Neuron counters).
    pub sys: PathBuf,
    /// The instance type (for the accelerator counts); `None`: the DMI product name.
    pub instance_type: Option<InstanceType>,
    /// Where NVML is loaded from; `None`: `libnvidia-ml.so` on the library search path.
    pub nvml_library: Option<PathBuf>,
    /// NVIDIA's fabric manager unit.
    pub fabric_manager_unit: String,
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
    /// Whether a check applies to this host: kubelet, containerd, the network, pods and the VPC
    /// CNI on EKS nodes (the VPC CNI not on hybrid nodes), Docker and the ECS agent on ECS
    /// hosts; the kernel, storage, credentials, clock and accelerators everywhere.
    pub fn applies(&self, kind: CheckKind) -> bool {
        match kind {
            CheckKind::Kubelet | CheckKind::Containerd | CheckKind::Network | CheckKind::Pods => {
                self.ecs.is_none()
            }
            CheckKind::VpcCni => self.ecs.is_none() && !self.skip_vpc_cni,
            CheckKind::Docker | CheckKind::EcsAgent => self.ecs.is_some(),
            CheckKind::Kernel
            | CheckKind::Storage
            | CheckKind::Credentials
            | CheckKind::Clock
            | CheckKind::Accelerators => true,
        }
    }
}

impl Default for Targets {
    fn default() -> Self {
        Self {
            kubelet_healthz: "http://127.0.0.1:10248/healthz".to_string(),
            containerd_socket: PathBuf::from(paths::CONTAINERD_SOCKET),
            cni_conflist: PathBuf::from(paths::VPC_CNI_CONFLIST),
            vpc_cni_markers: vec![
                PathBuf::from(paths::CNI_BIN_DIR).join("aws-cni"),
                PathBuf::from(VPC_CNI_STATE_DIR),
            ],
            cni_conf_dir: PathBuf::from(paths::CNI_CONF_DIR),
            sys: PathBuf::from("/sys"),
            instance_type: None,
            nvml_library: None,
            fabric_manager_unit: accelerators::FABRIC_MANAGER_UNIT.to_string(),
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
    /// The instance type the accelerator counts compare with.
    instance_type: Option<InstanceType>,
    /// NVML, when `libnvidia-ml.so` is present; the error when it is but fails.
    nvml: Result<Option<nvml::Library>, String>,
    nvlink: Mutex<accelerators::NvlinkState>,
    /// Per unit: the last `NRestarts` and when it last rose above the threshold.
    restarts: Mutex<BTreeMap<String, (u32, Option<Instant>)>>,
    /// The API server, for the pod check.
    kube: Option<crate::report::kube::NodeApi>,
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
        let instance_type = targets
            .instance_type
            .clone()
            .or_else(|| accelerators::instance_type_from_dmi(&targets.sys));
        Ok(Context {
            units: units::Reader::new(targets.systemd_bus.clone()),
            nvml: Ok(None),
            instance_type,
            targets,
            kmsg,
            http,
            imds,
            nvlink: Mutex::default(),
            restarts: Mutex::default(),
            kube: None,
        })
    }

    /// The API server the pod check lists the node's pods from.
    pub fn set_kube(&mut self, api: crate::report::kube::NodeApi) {
        self.kube = Some(api);
    }

    /// Whether the node has accelerators (the accelerator check runs only then).
    pub fn has_accelerators(&self) -> bool {
        accelerators::present(&self.targets.sys, self.instance_type.as_ref())
    }

    /// Loads NVML for the accelerator check (once, at start, on nodes with NVIDIA GPUs).
    pub fn load_nvml(&mut self) {
        self.nvml = nvml::load(self.targets.nvml_library.as_ref());
        match &self.nvml {
            Ok(Some(_)) => tracing::info!("NVML loaded: ECC and NVLink errors are watched"),
            Ok(None) => tracing::info!("no libnvidia-ml.so: ECC and NVLink errors are not read"),
            Err(e) => tracing::warn!(error = %e, "NVML present but failing"),
        }
    }

    fn kmsg_active(&self, condition: ConditionType) -> Vec<Problem> {
        self.kmsg
            .lock()
            .map(|s| s.active(Instant::now(), condition))
            .unwrap_or_default()
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
                    &t.vpc_cni_markers,
                    &t.ipamd_introspection,
                    &t.ipamd_metrics,
                )
                .await
            }
            CheckKind::Network => network::check(&t.cni_conf_dir, &t.sys, &t.proc),
            CheckKind::Kernel => kernel::evaluate(
                &kernel::read_tables(&t.proc),
                self.kmsg_active(ConditionType::KernelReady),
            ),
            // statfs(2) of local directories answers in microseconds: run inline rather than
            // on tokio's blocking pool, whose threads (each with its own malloc arena) cost
            // more resident memory than the call.
            CheckKind::Storage => kernel::with_log(
                probes::storage(&t.storage_dirs),
                self.kmsg_active(ConditionType::StorageReady),
            ),
            CheckKind::Accelerators => self.accelerators().await,
            CheckKind::Pods => {
                let Some(api) = &self.kube else {
                    return Outcome::ok("no Kubernetes client: pods are not looked at");
                };
                let (listed, sandboxes) =
                    tokio::join!(api.pods(), cri::list_sandboxes(&t.containerd_socket));
                match listed {
                    Ok(pods) => pods::evaluate(
                        &pods,
                        sandboxes.as_deref().ok(),
                        OffsetDateTime::now_utc().unix_timestamp(),
                    ),
                    // Not a node problem: the API server or our identity.
                    Err(e) => Outcome::warn(
                        "PodListFailed",
                        format!(
                            "cannot list the node's pods: {}",
                            crate::model::text::error_chain(&e)
                        ),
                    ),
                }
            }
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
                Outcome::combine(std::iter::once(cert).chain(iam).collect())
            }
        }
    }

    /// The accelerator check: counts, the kernel log, NVML, Neuron sysfs, fabric manager.
    async fn accelerators(&self) -> Outcome {
        let t = &self.targets;
        let counts = accelerators::counts(&t.sys, self.instance_type.as_ref());
        let (nvml, nvlink_rise) = match &self.nvml {
            Ok(Some(lib)) => {
                let reading = accelerators::read_nvml(Some(lib as &dyn nvml::Gpus));
                let rise = match &reading {
                    Some(Ok(gpus)) => {
                        let hold = self
                            .kmsg
                            .lock()
                            .map(|k| k.hold())
                            .unwrap_or(kernel::PROBLEM_HOLD);
                        self.nvlink
                            .lock()
                            .ok()
                            .and_then(|mut s| s.observe(gpus, Instant::now(), hold))
                    }
                    _ => None,
                };
                (reading, rise)
            }
            Ok(None) => (None, None),
            Err(e) => (Some(Err(e.clone())), None),
        };
        let fabric_manager_down = if counts.nvidia > 0
            && accelerators::needs_fabric_manager(&t.sys, self.instance_type.as_ref())
        {
            match self.units.read(&t.fabric_manager_unit).await {
                Ok(Some(state)) if !state.is_active() => {
                    Some(format!("{} ({})", state.active_state, state.sub_state))
                }
                _ => None,
            }
        } else {
            None
        };
        accelerators::evaluate(&accelerators::Seen {
            counts,
            instance_type: self.instance_type.as_ref().map(|i| i.as_str().to_string()),
            log: self.kmsg_active(ConditionType::AcceleratedHardwareReady),
            nvml,
            nvlink_rise,
            neuron_ecc: accelerators::neuron_ecc(&t.sys),
            fabric_manager_down,
        })
    }

    /// A check that depends on a systemd unit: the unit not active is the problem (with its
    /// state and restart count) ahead of the check's own probe's; `NRestarts` above
    /// [`units::REPEATED_RESTART_MIN`] and rising is `<prefix>RepeatedRestart`. The unit's
    /// state rides along in the facts either way.
    async fn with_unit(
        &self,
        unit: &str,
        prefix: &str,
        probe: impl Future<Output = Outcome>,
    ) -> Outcome {
        let ((problem, unit_facts), out) =
            tokio::join!(units::check(&self.units, unit, prefix), probe);
        let mut parts = Vec::with_capacity(3);
        parts.extend(problem);
        parts.push(out);
        if let Some(n) = unit_facts.as_ref().and_then(|u| u.restarts)
            && let Some(message) = self.restart_rise(unit, n)
        {
            parts.push(Outcome::warn(&format!("{prefix}RepeatedRestart"), message));
        }
        let mut out = Outcome::combine(parts);
        out.facts.unit = unit_facts;
        out
    }

    /// Records `NRestarts` of `unit`; a message while a rise above the threshold is recent.
    fn restart_rise(&self, unit: &str, n: u32) -> Option<String> {
        let now = Instant::now();
        let mut seen = self.restarts.lock().ok()?;
        let entry = seen.entry(unit.to_string()).or_insert((0, None));
        if n > units::REPEATED_RESTART_MIN && n > entry.0 {
            entry.1 = Some(now);
        }
        entry.0 = n;
        entry
            .1
            .filter(|at| now.saturating_duration_since(*at) < units::REPEATED_RESTART_HOLD)
            .map(|_| format!("{unit} has restarted {n} times (systemd NRestarts), the last time within {} minutes", units::REPEATED_RESTART_HOLD.as_secs() / 60))
    }
}
