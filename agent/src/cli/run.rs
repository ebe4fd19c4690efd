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
Checks: kubelet, containerd, vpc_cni, kernel, storage, credentials, clock. Their intervals and\n\
timeouts come from the config file ([checks.NAME] interval_secs, timeout_secs, enabled),\n\
re-read on SIGHUP. Node conditions written: KernelReady, NetworkingReady, StorageReady,\n\
ContainerRuntimeReady. EC2 lifecycle events (spot interruption, rebalance, scheduled\n\
maintenance, Auto Scaling termination): [lifecycle] in the config file, read at start\n\
(docs/lifecycle.md).")]
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
}

/// Runs the daemon until SIGTERM.
pub fn run(args: RunArgs) -> anyhow::Result<exit::Code> {
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
    let settings = Settings {
        listen: args.listen,
        kubeconfig: (!args.no_kubernetes).then_some(args.kubeconfig),
        node_name,
        config_file: Some(args.config),
        targets: Targets {
            kubelet_healthz: args.kubelet_healthz,
            containerd_socket: args.containerd_socket,
            cni_conflist: args.cni_conflist,
            ipamd_introspection: args.ipamd_introspection,
            ipamd_metrics: args.ipamd_metrics,
            skip_vpc_cni: args.hybrid,
            proc: args.proc.clone(),
            kmsg: args.kmsg,
            storage_dirs: args.storage_dirs,
            kubelet_client_cert: args.kubelet_client_cert,
            iam,
            systemd_bus: crate::checks::units::Bus::parse(&args.systemd_bus),
            kubelet_unit: args.kubelet_unit,
            containerd_unit: args.containerd_unit,
        },
        host: HostPaths {
            proc: args.proc,
            sys: args.sys,
        },
        init_phases: args.init_phases,
        lifecycle: crate::daemon::LifecycleHost {
            ec2,
            state_file: args.lifecycle_state,
        },
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(daemon::run(settings))?;
    Ok(exit::Code::Success)
}
