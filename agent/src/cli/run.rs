//! `eks-node-agent run`: the node health and metrics daemon (a `Type=notify` service).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use crate::checks::Targets;
use crate::daemon::{self, Settings};
use crate::exit;
use crate::model::paths;
use crate::report::host::HostPaths;

/// Run the health and metrics daemon.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    eks-node-agent run                                   # as the systemd service does\n  \
    eks-node-agent run --no-kubernetes --listen 127.0.0.1:9256\n  \
    eks-node-agent run --hybrid --config /etc/eks-node-agent/daemon.toml\n\n\
Checks: kubelet, containerd, vpc_cni, network, kernel, storage, credentials, clock,\n\
accelerators. The config file (re-read on SIGHUP) sets their schedules ([checks.NAME]), each\n\
reason's severity ([severity]), opt-in taints of False conditions ([taints.CONDITION]) and the\n\
rule for the EKS node monitoring agent ([coexistence]); docs/run.md lists every reason. Node\n\
conditions written: KernelReady, NetworkingReady, StorageReady, ContainerRuntimeReady, and\n\
AcceleratedHardwareReady on nodes with GPUs or Neuron devices. EC2 lifecycle events (spot\n\
interruption, rebalance, scheduled maintenance, Auto Scaling termination): [lifecycle] in the\n\
config file, read at start (docs/lifecycle.md).")]
pub struct RunArgs {
    /// Address of /metrics and /healthz.
    #[arg(long, value_name = "ADDR", default_value = crate::report::http::DEFAULT_LISTEN, env = "EKS_NODE_AGENT_LISTEN")]
    pub listen: SocketAddr,
    /// The kubelet's kubeconfig; the agent writes conditions and events with its identity.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/var/lib/kubelet/kubeconfig"
    )]
    pub kubeconfig: PathBuf,
    /// Do not write conditions or events (metrics and sd_notify only).
    #[arg(long)]
    pub no_kubernetes: bool,
    /// The Node's name (default: the host name, which is what the kubelet registers).
    #[arg(long, value_name = "NAME", env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// The daemon's config file (TOML); missing means defaults.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/etc/eks-node-agent/daemon.toml"
    )]
    pub config: PathBuf,
    /// A hybrid node: skip the VPC CNI check.
    #[arg(long)]
    pub hybrid: bool,
    /// kubelet's healthz URL.
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:10248/healthz"
    )]
    pub kubelet_healthz: String,
    /// containerd's socket.
    #[arg(
        long,
        value_name = "PATH",
        default_value = paths::CONTAINERD_SOCKET
    )]
    pub containerd_socket: PathBuf,
    /// The VPC CNI's CNI config.
    #[arg(
        long,
        value_name = "PATH",
        default_value = paths::VPC_CNI_CONFLIST
    )]
    pub cni_conflist: PathBuf,
    /// A file whose presence means the VPC CNI is installed (repeatable; its conflist counts
    /// too). Without any, the VPC CNI checks do not apply and the network check judges the
    /// node's CNI.
    #[arg(long = "vpc-cni-marker", value_name = "PATH", default_values = ["/opt/cni/bin/aws-cni", crate::checks::daemon::VPC_CNI_STATE_DIR])]
    pub vpc_cni_markers: Vec<PathBuf>,
    /// The container runtime's CNI config directory (containerd's `conf_dir`).
    #[arg(long, value_name = "DIR", default_value = paths::CNI_CONF_DIR)]
    pub cni_conf_dir: PathBuf,
    /// The instance type, for the accelerator counts (default: the DMI product name, which
    /// EC2's Nitro firmware sets to the instance type).
    #[arg(long, value_name = "TYPE")]
    pub instance_type: Option<String>,
    /// NVML's library (default: `libnvidia-ml.so` on the library search path; absent means
    /// no NVML readings, not an error).
    #[arg(long, value_name = "PATH")]
    pub nvml_library: Option<PathBuf>,
    /// NVIDIA's fabric manager unit, required on NVSwitch systems.
    #[arg(long, value_name = "UNIT", default_value = crate::checks::accelerators::FABRIC_MANAGER_UNIT)]
    pub fabric_manager_unit: String,
    /// ipamd's introspection endpoint.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:61679")]
    pub ipamd_introspection: String,
    /// ipamd's metrics endpoint.
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:61678/metrics"
    )]
    pub ipamd_metrics: String,
    /// procfs (for kernel tables and host metrics).
    #[arg(long, value_name = "DIR", default_value = "/proc")]
    pub proc: PathBuf,
    /// sysfs (for host metrics).
    #[arg(long, value_name = "DIR", default_value = "/sys")]
    pub sys: PathBuf,
    /// The kernel log device.
    #[arg(long, value_name = "PATH", default_value = "/dev/kmsg")]
    pub kmsg: PathBuf,
    /// Directories whose filesystems must be writable with space left (repeatable).
    #[arg(long = "storage-dir", value_name = "DIR", default_values = [paths::KUBELET_DIR, paths::CONTAINERD_DIR])]
    pub storage_dirs: Vec<PathBuf>,
    /// The kubelet's client certificate.
    #[arg(
        long,
        value_name = "PATH",
        default_value = paths::KUBELET_CLIENT_CERT
    )]
    pub kubelet_client_cert: PathBuf,
    /// systemd's D-Bus for the kubelet and containerd units' state: `system`, a bus address
    /// (`unix:path=...`), or `none` to not read unit state.
    #[arg(long, value_name = "ADDRESS", default_value = "system")]
    pub systemd_bus: String,
    /// Where the node's IAM credentials come from, to export and check their expiry: `auto`
    /// (hybrid: Roles Anywhere if the hybrid AWS config names a certificate, else SSM; EC2 by
    /// firmware: the instance role; else none), `none`, `instance-role`, `ssm[=PATH]`,
    /// `roles-anywhere[=CERT]`.
    #[arg(long, value_name = "SOURCE", default_value = "auto")]
    pub iam_credentials: String,
    /// The phase durations `init` recorded (exported as
    /// eksnode_bootstrap_phase_duration_seconds).
    #[arg(long, value_name = "PATH", default_value = crate::report::phases::DEFAULT_PATH)]
    pub init_phases: PathBuf,
    /// The kubelet's systemd unit.
    #[arg(long, value_name = "UNIT", default_value = "kubelet.service")]
    pub kubelet_unit: String,
    /// containerd's systemd unit.
    #[arg(long, value_name = "UNIT", default_value = "containerd.service")]
    pub containerd_unit: String,
    /// The EC2 lifecycle watchers' state file (what they did, so a restart resumes).
    #[arg(long, value_name = "PATH", default_value = crate::lifecycle::state::DEFAULT_PATH)]
    pub lifecycle_state: PathBuf,
    /// The host is an Amazon ECS container instance: nothing is written to Kubernetes, and the
    /// lifecycle drain sets the container instance to DRAINING through the ECS API.
    #[arg(long)]
    pub ecs: bool,
    /// With --ecs: the ECS agent's config, whose ECS_CLUSTER names the cluster.
    #[arg(long, value_name = "PATH", default_value = crate::model::ecs::ECS_CONFIG)]
    pub ecs_config: PathBuf,
    /// With --ecs: Docker's API socket.
    #[arg(long, value_name = "PATH", default_value = crate::model::ecs::DOCKER_SOCKET)]
    pub docker_socket: PathBuf,
    /// With --ecs: the ECS agent's introspection API.
    #[arg(long, value_name = "URL", env = "ECS_AGENT_INTROSPECTION_ENDPOINT",
          default_value = crate::model::ecs::INTROSPECTION_ENDPOINT)]
    pub ecs_introspection: String,
}

/// The ECS cluster of `--ecs-config` (`default` when ECS_CLUSTER is unset, as the agent does).
fn ecs_target(args: &RunArgs) -> anyhow::Result<Option<crate::lifecycle::ecs::EcsTarget>> {
    if !args.ecs {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&args.ecs_config).map_err(|e| {
        exit::BadInput(format!(
            "--ecs-config {}: {e}; run `eks-node-agent init` first, or point --ecs-config at the ECS agent's config",
            args.ecs_config.display()
        ))
    })?;
    let ecs = crate::config::ecs::parse_ecs_config(&text).map_err(|e| {
        exit::BadInput(format!(
            "{}: line {}: {}: {}",
            args.ecs_config.display(),
            e.line,
            e.key,
            e.message
        ))
    })?;
    let introspection = crate::facts::ecs_agent::Introspection::new(&args.ecs_introspection)
        .map_err(|e| exit::BadInput(format!("--ecs-introspection: {e}")))?;
    Ok(Some(crate::lifecycle::ecs::EcsTarget {
        cluster: ecs.cluster.unwrap_or_else(|| "default".to_owned()),
        introspection,
    }))
}

/// Runs the daemon until SIGTERM.
pub fn run(args: RunArgs) -> anyhow::Result<exit::Code> {
    let ecs = ecs_target(&args)?;
    let node_name = match args.node_name {
        Some(n) => n,
        None => std::fs::read_to_string(args.proc.join("sys/kernel/hostname"))
            .map(|s| s.trim().to_string())
            .context("cannot read the host name; pass --node-name")?,
    };
    let env = crate::auth::credentials::process_env;
    let iam = match crate::checks::iam::Source::parse(&args.iam_credentials, &env) {
        Ok(Some(source)) => source,
        Ok(None) => crate::checks::iam::detect(args.hybrid, &args.sys, &env),
        Err(e) => {
            return Err(exit::BadInput(format!(
                "--iam-credentials {:?}: {e}",
                args.iam_credentials
            ))
            .into());
        }
    };
    // `[lifecycle] enabled = "auto"` is on where the IAM credentials check finds the EC2
    // instance role: EC2 firmware, not a hybrid node, IMDS not turned off.
    let ec2 = crate::checks::iam::detect(args.hybrid, &args.sys, &env)
        == crate::checks::iam::Source::InstanceRole;
    let instance_type = match args
        .instance_type
        .as_deref()
        .map(crate::model::InstanceType::parse)
    {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            return Err(exit::BadInput(format!("--instance-type: {e}")).into());
        }
    };
    let settings = Settings {
        listen: args.listen,
        // An ECS host has no Node: nothing is written to Kubernetes.
        kubeconfig: (!args.no_kubernetes && !args.ecs).then_some(args.kubeconfig.clone()),
        node_name,
        config_file: Some(args.config),
        targets: Targets {
            kubelet_healthz: args.kubelet_healthz,
            containerd_socket: args.containerd_socket,
            cni_conflist: args.cni_conflist,
            vpc_cni_markers: args.vpc_cni_markers,
            cni_conf_dir: args.cni_conf_dir,
            sys: args.sys.clone(),
            instance_type,
            nvml_library: args.nvml_library,
            fabric_manager_unit: args.fabric_manager_unit,
            ipamd_introspection: args.ipamd_introspection,
            ipamd_metrics: args.ipamd_metrics,
            skip_vpc_cni: args.hybrid,
            proc: args.proc.clone(),
            kmsg: args.kmsg,
            // On an ECS host the default directories are Docker's and the ECS agent's.
            storage_dirs: if args.ecs
                && args.storage_dirs
                    == [
                        PathBuf::from(paths::KUBELET_DIR),
                        PathBuf::from(paths::CONTAINERD_DIR),
                    ] {
                vec![
                    PathBuf::from("/var/lib/docker"),
                    PathBuf::from("/var/lib/ecs"),
                ]
            } else {
                args.storage_dirs
            },
            kubelet_client_cert: args.kubelet_client_cert,
            iam,
            systemd_bus: crate::checks::units::Bus::parse(&args.systemd_bus),
            kubelet_unit: args.kubelet_unit,
            containerd_unit: args.containerd_unit,
            ecs: ecs.as_ref().map(|t| crate::checks::daemon::EcsTargets {
                docker_socket: args.docker_socket.clone(),
                introspection: t.introspection.clone(),
                cluster: t.cluster.clone(),
            }),
        },
        host: HostPaths {
            proc: args.proc,
            sys: args.sys,
        },
        init_phases: args.init_phases,
        lifecycle: crate::daemon::LifecycleHost {
            ec2,
            state_file: args.lifecycle_state.clone(),
            ecs,
        },
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(daemon::run(settings))?;
    Ok(exit::Code::Success)
}
