//! The catalog of every reason `run` reports: the condition it belongs to, its default
//! severity and what detects it. It is the one place severities are decided (the daemon's
//! config may override them per reason, [`Policy`]); the checks only name reasons.
//!
//! The severity model (the EKS node monitoring agent's): [`Severity::Fatal`] is a problem only
//! an action from outside the node can fix, and sets its condition False, which EKS node auto
//! repair acts on; [`Severity::Warning`] is an event and a metric, the condition stays True.
//! A reason the monitoring agent also reports (its published `reasons.yaml`) keeps its name,
//! its condition and its default severity; a test reads that file and checks. Our own reasons
//! say why they are what they are ([`Reason::why`]).

use std::collections::BTreeMap;

use crate::model::ConditionType;

use ConditionType::{
    AcceleratedHardwareReady as Accel, ContainerRuntimeReady as Runtime, KernelReady as Kernel,
    NetworkingReady as Net, StorageReady as Storage,
};
use Severity::{Fatal, Warning};

/// What a problem means for the node (the EKS node monitoring agent's severities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Only an action from outside the node fixes it: `run` sets the reason's condition False.
    Fatal,
    /// Degraded, or a problem in the making; the node still works: a Warning event and a
    /// metric, the condition stays True.
    Warning,
}

impl Severity {
    /// `Fatal` or `Warning`, as in the monitoring agent's file and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fatal => "Fatal",
            Self::Warning => "Warning",
        }
    }

    /// Parses `fatal`/`Fatal` or `warning`/`Warning`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "fatal" | "Fatal" => Some(Self::Fatal),
            "warning" | "Warning" => Some(Self::Warning),
            _ => None,
        }
    }
}

/// One reason of the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason {
    /// The CamelCase reason; `%d` stands for a number (`NvidiaXID%dError` is `NvidiaXID79Error`).
    pub name: &'static str,
    /// The condition a Fatal occurrence sets False; `None` for reasons that are only ever
    /// events (they cannot be promoted).
    pub condition: Option<ConditionType>,
    /// The default severity.
    pub severity: Severity,
    /// The check that reports it (its name in the config file).
    pub check: &'static str,
    /// What is observed, in a few words (for the documentation).
    pub detects: &'static str,
    /// Why our own reason has its severity; empty for the monitoring agent's reasons, whose
    /// severity is the agent's.
    pub why: &'static str,
    /// A not-ready state every node passes through at boot (no CNI yet): not a problem until
    /// the boot grace period is over.
    pub boot_grace: bool,
}

const fn nma(
    name: &'static str,
    condition: ConditionType,
    severity: Severity,
    check: &'static str,
    detects: &'static str,
) -> Reason {
    Reason {
        name,
        condition: Some(condition),
        severity,
        check,
        detects,
        why: "",
        boot_grace: false,
    }
}

const fn ours(
    name: &'static str,
    condition: Option<ConditionType>,
    severity: Severity,
    check: &'static str,
    detects: &'static str,
    why: &'static str,
) -> Reason {
    Reason {
        name,
        condition,
        severity,
        check,
        detects,
        why,
        boot_grace: false,
    }
}

const fn graced(mut r: Reason) -> Reason {
    r.boot_grace = true;
    r
}

/// Every reason `run` reports.
pub static CATALOG: &[Reason] = &[
    // KernelReady: the kernel log, kernel tables, the clock.
    nma(
        "SoftLockup",
        Kernel,
        Warning,
        "kernel",
        "kernel log `BUG: soft lockup`",
    ),
    nma(
        "AppBlocked",
        Kernel,
        Warning,
        "kernel",
        "kernel log `task ... blocked for more than`",
    ),
    nma(
        "KernelBug",
        Kernel,
        Warning,
        "kernel",
        "kernel log `BUG:`, `Oops:`, `kernel BUG at`",
    ),
    nma(
        "AppCrash",
        Kernel,
        Warning,
        "kernel",
        "kernel log `segfault at`, `traps:`",
    ),
    nma(
        "ConntrackExceededKernel",
        Kernel,
        Warning,
        "kernel",
        "kernel log `nf_conntrack: table full, dropping packet`",
    ),
    ours(
        "OOMKilling",
        Some(Kernel),
        Warning,
        "kernel",
        "kernel log `Out of memory: Killed process`",
        "the OOM killer acting on a workload is the workload's limit, not a node fault; the kubelet's memory eviction handles pressure",
    ),
    nma(
        "ApproachingKernelPidMax",
        Kernel,
        Warning,
        "kernel",
        "threads at 70% of min(`kernel.pid_max`, `kernel.threads-max`)",
    ),
    nma(
        "ForkFailedOutOfPIDs",
        Kernel,
        Fatal,
        "kernel",
        "threads at min(`kernel.pid_max`, `kernel.threads-max`): fork fails",
    ),
    nma(
        "ApproachingMaxOpenFiles",
        Kernel,
        Warning,
        "kernel",
        "allocated file handles at 70% of `fs.file-max`",
    ),
    nma(
        "ExcessiveZombieProcesses",
        Kernel,
        Warning,
        "kernel",
        "20 or more zombie processes in /proc",
    ),
    ours(
        "ConntrackNearFull",
        Some(Kernel),
        Warning,
        "kernel",
        "conntrack entries at 90% of `nf_conntrack_max`",
        "nothing is dropped yet; a full table is ConntrackExceededKernel",
    ),
    nma(
        "ClockUnsynchronized",
        Kernel,
        Warning,
        "clock",
        "`adjtimex(2)` reports STA_UNSYNC",
    ),
    ours(
        "ClockUnreadable",
        Some(Kernel),
        Warning,
        "clock",
        "`adjtimex(2)` fails",
        "a host whose clock state cannot be read (a container) is not a broken node",
    ),
    // NetworkingReady: the CNI the node runs, the CRI's view of it, the node's interfaces.
    graced(ours(
        "CNIConfigMissing",
        Some(Net),
        Fatal,
        "network",
        "no CNI config in the runtime's CNI config directory",
        "no pod can get a network until a CNI is installed, which only the cluster (a DaemonSet) can do",
    )),
    graced(ours(
        "NetworkPluginNotReady",
        Some(Net),
        Fatal,
        "containerd",
        "CRI `NetworkReady` false",
        "the runtime cannot set up pod networks; the kubelet reports the node NotReady for the same reason",
    )),
    nma(
        "MissingLoopbackInterface",
        Net,
        Fatal,
        "network",
        "no `lo` in /sys/class/net",
    ),
    nma(
        "InterfaceNotUp",
        Net,
        Fatal,
        "network",
        "the default route's interface is administratively down",
    ),
    nma(
        "InterfaceNotRunning",
        Net,
        Fatal,
        "network",
        "the default route's interface is up without a carrier",
    ),
    graced(ours(
        "VpcCniConfigMissing",
        Some(Net),
        Fatal,
        "vpc_cni",
        "the VPC CNI is installed but `10-aws.conflist` is absent",
        "the VPC CNI writes its config once ipamd is ready; without it no pod gets an address",
    )),
    ours(
        "VpcCniConfigInvalid",
        Some(Net),
        Warning,
        "vpc_cni",
        "`10-aws.conflist` does not name the `aws-cni` plugin",
        "a chained or customised config may be deliberate; pods still get addresses if the chain works",
    ),
    graced(nma(
        "IPAMDNotRunning",
        Net,
        Fatal,
        "vpc_cni",
        "ipamd's introspection endpoint (`:61679`) does not answer",
    )),
    ours(
        "IpamdBadAnswer",
        Some(Net),
        Warning,
        "vpc_cni",
        "ipamd answers its introspection endpoint with something else than its ENI list",
        "ipamd runs (it answered); an answer we cannot read is not proof that pods lack addresses",
    ),
    ours(
        "IpamdMetricsUnreachable",
        Some(Net),
        Warning,
        "vpc_cni",
        "ipamd's metrics endpoint (`:61678`) does not answer",
        "only ipamd's metrics are lost; pod networking still works",
    ),
    nma(
        "IPAMDNoIPs",
        Net,
        Warning,
        "vpc_cni",
        "every IP ipamd holds is assigned",
    ),
    ours(
        "PodIPsNearlyExhausted",
        Some(Net),
        Warning,
        "vpc_cni",
        "90% of ipamd's IPs assigned",
        "ipamd may still attach an ENI; the next pods may be fine",
    ),
    // StorageReady: the kubelet's and containerd's filesystems and the kernel log.
    ours(
        "FilesystemReadOnly",
        Some(Storage),
        Fatal,
        "storage",
        "the kubelet's or containerd's directory is on a read-only filesystem",
        "pods can neither start nor write; a filesystem remounted read-only after errors needs repair or replacement from outside",
    ),
    ours(
        "FilesystemError",
        Some(Storage),
        Fatal,
        "storage",
        "`statfs(2)` of the kubelet's or containerd's directory fails",
        "the filesystem does not answer (an XFS shutdown, a lost device): nothing on the node brings it back",
    ),
    ours(
        "DiskSpaceLow",
        Some(Storage),
        Warning,
        "storage",
        "under 5% space left",
        "the kubelet's image garbage collection and eviction free space from inside the node; DiskPressure stops scheduling",
    ),
    ours(
        "InodesLow",
        Some(Storage),
        Warning,
        "storage",
        "under 5% inodes left",
        "as DiskSpaceLow: eviction and image garbage collection act on it",
    ),
    nma(
        "BlockDeviceIOError",
        Storage,
        Warning,
        "storage",
        "kernel log `I/O error, dev`, `Buffer I/O error`",
    ),
    ours(
        "Ext4Error",
        Some(Storage),
        Warning,
        "storage",
        "kernel log `EXT4-fs error`",
        "the monitoring agent makes no filesystem error Fatal; a remount read-only of the kubelet's filesystem is FilesystemReadOnly",
    ),
    ours(
        "XFSError",
        Some(Storage),
        Warning,
        "storage",
        "kernel log `XFS (dev): ... error`, `Corruption detected`",
        "as Ext4Error; a shut-down XFS under the kubelet's directory fails statfs: FilesystemError",
    ),
    ours(
        "FilesystemShutdown",
        Some(Storage),
        Warning,
        "storage",
        "kernel log: XFS shut down, ext4 remounted read-only",
        "the filesystem may hold no node directory; when it does, FilesystemReadOnly or FilesystemError is Fatal",
    ),
    // ContainerRuntimeReady: containerd, the kubelet's unit, pods.
    ours(
        "ContainerRuntimeNotReady",
        Some(Runtime),
        Fatal,
        "containerd",
        "CRI `RuntimeReady` false",
        "the runtime says it cannot run containers",
    ),
    ours(
        "ContainerdUnreachable",
        Some(Runtime),
        Fatal,
        "containerd",
        "containerd's socket refuses connections",
        "no container can start or stop",
    ),
    // ECS container instances (`run --ecs`, which writes nothing to Kubernetes: metrics only).
    ours(
        "DockerUnreachable",
        Some(Runtime),
        Fatal,
        "docker",
        "Docker does not answer `GET /_ping` on its socket (ECS hosts)",
        "an ECS host's container runtime: no task starts or stops",
    ),
    ours(
        "EcsAgentUnreachable",
        None,
        Warning,
        "ecs_agent",
        "the ECS agent's introspection API does not answer (ECS hosts)",
        "ECS sees the agent disconnected and stops placing tasks; ecs.service restarts it",
    ),
    ours(
        "EcsAgentNotRegistered",
        None,
        Warning,
        "ecs_agent",
        "the ECS agent answers but reports no container instance ARN (ECS hosts)",
        "normal while it registers; ECS places nothing until it has",
    ),
    ours(
        "EcsAgentWrongCluster",
        None,
        Warning,
        "ecs_agent",
        "the ECS agent is registered in another cluster than ecs.config names (ECS hosts)",
        "the host works, for another cluster than intended",
    ),
    ours(
        "ContainerdNotAnswering",
        Some(Runtime),
        Fatal,
        "containerd",
        "containerd takes the connection but does not answer within 3 s",
        "as ContainerdUnreachable: containerd is hung",
    ),
    ours(
        "ContainerRuntimeCRIFailed",
        Some(Runtime),
        Fatal,
        "containerd",
        "the CRI Status call fails (e.g. the CRI plugin is disabled)",
        "the kubelet cannot use the runtime",
    ),
    ours(
        "ContainerdUnitNotActive",
        Some(Runtime),
        Fatal,
        "containerd",
        "containerd.service not active (systemd)",
        "the runtime is down; systemd gave up restarting it or it was stopped",
    ),
    nma(
        "ContainerdRepeatedRestart",
        Runtime,
        Warning,
        "containerd",
        "containerd.service `NRestarts` above 3 and rising",
    ),
    nma(
        "KubeletRepeatedRestart",
        Runtime,
        Warning,
        "kubelet",
        "kubelet.service `NRestarts` above 3 and rising",
    ),
    nma(
        "KubeletFailed",
        Runtime,
        Warning,
        "kubelet",
        "kubelet.service in the `failed` state (systemd)",
    ),
    ours(
        "KubeletUnitNotActive",
        Some(Runtime),
        Warning,
        "kubelet",
        "kubelet.service inactive or (re)starting (systemd)",
        "the kubelet's own Ready condition reports a kubelet that is down; this is the systemd view, for the event",
    ),
    ours(
        "KubeletUnhealthy",
        Some(Runtime),
        Warning,
        "kubelet",
        "kubelet's healthz answers other than `ok`",
        "the kubelet's own Ready condition covers it",
    ),
    ours(
        "KubeletUnreachable",
        Some(Runtime),
        Warning,
        "kubelet",
        "kubelet's healthz does not answer",
        "the kubelet's own Ready condition covers it",
    ),
    nma(
        "PodStuckTerminating",
        Runtime,
        Fatal,
        "pods",
        "a pod deleted past its grace period whose sandbox the runtime still holds",
    ),
    // AcceleratedHardwareReady: NVIDIA GPUs and AWS Neuron devices.
    nma(
        "NvidiaXID%dError",
        Accel,
        Fatal,
        "accelerators",
        "kernel log `NVRM: Xid (PCI:...): N` with N in the Fatal XID list",
    ),
    nma(
        "NvidiaXID%dWarning",
        Accel,
        Warning,
        "accelerators",
        "kernel log `NVRM: Xid (PCI:...): N` with any other N",
    ),
    nma(
        "NvidiaDeviceCountMismatch",
        Accel,
        Fatal,
        "accelerators",
        "NVIDIA GPUs on the PCI bus differ from the instance type's count",
    ),
    nma(
        "NvidiaDoubleBitError",
        Accel,
        Fatal,
        "accelerators",
        "NVML: volatile uncorrected (double-bit) ECC errors above 0",
    ),
    nma(
        "NvidiaNVLinkError",
        Accel,
        Fatal,
        "accelerators",
        "NVML: an NVLink's recovery or data CRC error counter rising",
    ),
    nma(
        "FabricManagerNotRunning",
        Accel,
        Fatal,
        "accelerators",
        "nvidia-fabricmanager.service not active on an NVSwitch instance type",
    ),
    ours(
        "NvmlError",
        Some(Accel),
        Warning,
        "accelerators",
        "libnvidia-ml.so is present but NVML fails",
        "a driver/library mismatch stops our reading, not necessarily the GPUs",
    ),
    nma(
        "NeuronDMAError",
        Accel,
        Fatal,
        "accelerators",
        "kernel log `NEURON_HW_ERR=DMA_ERROR`",
    ),
    nma(
        "NeuronHBMUncorrectableError",
        Accel,
        Fatal,
        "accelerators",
        "kernel log `NEURON_HW_ERR=HBM_UNCORRECTABLE_ERROR`; sysfs `stats/hardware/mem_ecc_uncorrected` above 0",
    ),
    nma(
        "NeuronNCUncorrectableError",
        Accel,
        Fatal,
        "accelerators",
        "kernel log `NEURON_HW_ERR=NC_UNCORRECTABLE_ERROR`",
    ),
    nma(
        "NeuronSRAMUncorrectableError",
        Accel,
        Fatal,
        "accelerators",
        "kernel log `NEURON_HW_ERR=SRAM_UNCORRECTABLE_ERROR`; sysfs `stats/hardware/sram_ecc_uncorrected` above 0",
    ),
    ours(
        "NeuronDeviceCountMismatch",
        Some(Accel),
        Fatal,
        "accelerators",
        "Neuron devices on the PCI bus differ from the instance type's count",
        "as NvidiaDeviceCountMismatch: a device gone from the bus comes back only with new hardware",
    ),
    // Events only: the kubelet's credentials and the checks themselves.
    ours(
        "KubeletCertificateExpired",
        None,
        Warning,
        "credentials",
        "the kubelet client certificate's notAfter passed",
        "the kubelet's own Ready condition follows; the event says why",
    ),
    ours(
        "KubeletCertificateExpiring",
        None,
        Warning,
        "credentials",
        "under 24 h left on the kubelet client certificate",
        "the kubelet rotates it; the event is the early notice",
    ),
    ours(
        "KubeletCertificateInvalid",
        None,
        Warning,
        "credentials",
        "the kubelet client certificate does not parse",
        "as KubeletCertificateExpired",
    ),
    ours(
        "KubeletCertificateMissing",
        None,
        Warning,
        "credentials",
        "no kubelet client certificate",
        "a node still bootstrapping has none",
    ),
    ours(
        "IamCredentialsExpiring",
        None,
        Warning,
        "credentials",
        "the node's IAM credentials near expiry",
        "an early notice; the kubelet still authenticates",
    ),
    ours(
        "IamCredentialsExpired",
        None,
        Warning,
        "credentials",
        "the node's IAM credentials expired",
        "the kubelet's Ready condition follows",
    ),
    ours(
        "InstanceRoleMissing",
        None,
        Warning,
        "credentials",
        "IMDS has no instance profile",
        "as IamCredentialsExpired",
    ),
    ours(
        "InstanceRoleUnreadable",
        None,
        Warning,
        "credentials",
        "IMDS does not answer for the role",
        "IMDS trouble is often transient",
    ),
    ours(
        "InstanceRoleCredentialsError",
        None,
        Warning,
        "credentials",
        "IMDS reports a credentials error code",
        "as InstanceRoleUnreadable",
    ),
    ours(
        "SsmCredentialsMissing",
        None,
        Warning,
        "credentials",
        "the SSM agent's credentials file is missing",
        "as IamCredentialsExpired",
    ),
    ours(
        "RolesAnywhereCertificateMissing",
        None,
        Warning,
        "credentials",
        "the Roles Anywhere certificate is missing",
        "as IamCredentialsExpired",
    ),
    ours(
        "RolesAnywhereCertificateInvalid",
        None,
        Warning,
        "credentials",
        "the Roles Anywhere certificate does not parse",
        "as IamCredentialsExpired",
    ),
    ours(
        "PodListFailed",
        None,
        Warning,
        "pods",
        "the API server does not list the node's pods",
        "the API server or the node's identity, not the node, is at fault",
    ),
    ours(
        "CheckTimedOut",
        None,
        Warning,
        "any",
        "a check took longer than its timeout",
        "a slow check is not proof of a broken node; the thing it waits on reports its own reason",
    ),
];

/// The NVIDIA XID codes whose kernel log line is Fatal (`NvidiaXID<N>Error`); any other XID is
/// a `NvidiaXID<N>Warning`. The EKS node monitoring agent's list of well-known XIDs (its
/// `WellKnownXidCodes`, monitors/nvidia/dcgm/dcgm_policies.go), which reasons.yaml does not
/// carry; docs/run.md gives each code's meaning.
pub const FATAL_XIDS: [u32; 21] = [
    46, 48, 54, 62, 63, 64, 74, 79, 95, 109, 110, 119, 120, 136, 140, 142, 143, 151, 155, 156, 158,
];

/// The reason of an NVIDIA XID in the kernel log.
pub fn xid_reason(xid: u32) -> String {
    if FATAL_XIDS.contains(&xid) {
        format!("NvidiaXID{xid}Error")
    } else {
        format!("NvidiaXID{xid}Warning")
    }
}

/// True when `name` is `template` with each `%d` replaced by one or more digits.
pub fn matches_template(template: &str, name: &str) -> bool {
    match template.split_once("%d") {
        None => template == name,
        Some((head, tail)) => {
            let Some(rest) = name.strip_prefix(head) else {
                return false;
            };
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            digits > 0 && matches_template(tail, &rest[digits..])
        }
    }
}

/// The catalog entry of a reason, by its name or a name its template makes.
pub fn lookup(name: &str) -> Option<&'static Reason> {
    CATALOG
        .iter()
        .find(|r| r.name == name || matches_template(r.name, name))
}

/// The severity policy: the catalog's defaults with the operator's overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Per reason (a name or a catalog template), the severity to use instead of the default.
    pub overrides: BTreeMap<String, Severity>,
}

/// Why an override is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The reason is not in the catalog.
    #[error("unknown reason {name:?}{hint}")]
    Unknown {
        /// The name given.
        name: String,
        /// ` (did you mean ...?)` or empty.
        hint: String,
    },
    /// A reason that feeds no condition cannot be Fatal.
    #[error("{name} sets no condition, so it cannot be made fatal (it is only ever an event)")]
    NoCondition {
        /// The name given.
        name: String,
    },
}

impl Policy {
    /// Adds an override after checking the reason exists and can take the severity.
    pub fn set(&mut self, name: &str, severity: Severity) -> Result<(), PolicyError> {
        let Some(entry) = lookup(name) else {
            let best = CATALOG
                .iter()
                .map(|r| (strsim::jaro_winkler(r.name, name), r.name))
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .filter(|(score, _)| *score > 0.8)
                .map(|(_, n)| format!(" (did you mean {n}?)"))
                .unwrap_or_default();
            return Err(PolicyError::Unknown {
                name: name.to_string(),
                hint: best,
            });
        };
        if severity == Fatal && entry.condition.is_none() {
            return Err(PolicyError::NoCondition {
                name: name.to_string(),
            });
        }
        self.overrides.insert(name.to_string(), severity);
        Ok(())
    }

    /// The severity of `reason`: an override of the exact name, else of its template, else
    /// the catalog's default. A reason missing from the catalog (a bug) is a Warning, which
    /// never sets a condition False.
    pub fn severity(&self, reason: &str) -> Severity {
        if let Some(s) = self.overrides.get(reason) {
            return *s;
        }
        let Some(entry) = lookup(reason) else {
            return Warning;
        };
        self.overrides
            .get(entry.name)
            .copied()
            .unwrap_or(entry.severity)
    }

    /// The condition a Fatal occurrence of `reason` sets False.
    pub fn condition(&self, reason: &str) -> Option<ConditionType> {
        lookup(reason).and_then(|r| r.condition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_camel_case() {
        let mut seen = std::collections::BTreeSet::new();
        for r in CATALOG {
            assert!(seen.insert(r.name), "{} twice", r.name);
            assert!(
                r.name.starts_with(|c: char| c.is_ascii_uppercase())
                    && r.name
                        .replace("%d", "")
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric()),
                "{}",
                r.name
            );
            assert!(!r.detects.is_empty(), "{}", r.name);
            if r.condition.is_none() {
                assert_eq!(r.severity, Warning, "{}: no condition, so Warning", r.name);
            }
            if r.boot_grace {
                assert_eq!(r.condition, Some(ConditionType::NetworkingReady));
            }
        }
    }

    #[test]
    fn templates_match_numbers_only() {
        assert!(matches_template("NvidiaXID%dError", "NvidiaXID79Error"));
        assert!(!matches_template("NvidiaXID%dError", "NvidiaXIDError"));
        assert!(!matches_template("NvidiaXID%dError", "NvidiaXID7xError"));
        assert!(matches_template("SoftLockup", "SoftLockup"));
        assert_eq!(lookup("NvidiaXID13Warning").unwrap().severity, Warning);
        assert_eq!(xid_reason(79), "NvidiaXID79Error");
        assert_eq!(xid_reason(13), "NvidiaXID13Warning");
        assert_eq!(lookup(&xid_reason(48)).unwrap().severity, Fatal);
    }

    #[test]
    fn overrides_by_name_or_template_and_their_errors() {
        let mut p = Policy::default();
        assert_eq!(p.severity("SoftLockup"), Warning);
        p.set("SoftLockup", Fatal).unwrap();
        assert_eq!(p.severity("SoftLockup"), Fatal);
        p.set("NvidiaXID%dWarning", Fatal).unwrap();
        assert_eq!(p.severity("NvidiaXID13Warning"), Fatal);
        p.set("NvidiaXID31Warning", Warning).unwrap();
        assert_eq!(
            p.severity("NvidiaXID31Warning"),
            Warning,
            "exact name first"
        );
        assert_eq!(p.severity("NoSuchReason"), Warning);
        let e = p.set("SoftLockpu", Fatal).unwrap_err();
        assert!(e.to_string().contains("did you mean SoftLockup"), "{e}");
        let e = p.set("KubeletCertificateExpired", Fatal).unwrap_err();
        assert!(matches!(e, PolicyError::NoCondition { .. }));
        p.set("KubeletCertificateExpired", Warning).unwrap();
    }
}
