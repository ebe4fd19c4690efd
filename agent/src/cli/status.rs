//! `eks-node-agent status`: pre-flight and post-join checks, one line per check with its
//! status, the evidence and the fix. Exit 0 when nothing fails (warnings allowed), 1 when a
//! check fails, 2 when the configuration or a flag is bad.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use ipnet::IpNet;

use super::config::SourceArgs;
use crate::checks::status::{self, ClockSource, Inputs};
use crate::exit;

/// Check that this host can join (or has joined) its cluster.
#[derive(Debug, Args)]
#[command(
    after_help = "Checks: config, credentials, sts-identity, api-server, node-ip, clock, swap, \
    kubelet-version, containerd-version, proxy, ports, cni-firewall, local-storage, \
    ulimits, kubelet-serving-cert, node.\n\n\
    Examples:\n  \
    eks-node-agent status\n  \
    eks-node-agent status -c file:///etc/eks-node-agent/config.d/ --output json\n  \
    eks-node-agent status -c file://nodeconfig.yaml --node-ip 10.80.1.5 --remote-node-network 10.80.0.0/16"
)]
pub struct StatusArgs {
    #[command(flatten)]
    sources: SourceArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// The node IP to check against the remote node networks [default: the kubelet's
    /// --node-ip in spec.kubelet.flags, else the address that routes to the API server].
    #[arg(long, value_name = "IP")]
    node_ip: Option<IpAddr>,
    /// A remote node network to check the node IP against instead of asking DescribeCluster
    /// (repeatable).
    #[arg(long = "remote-node-network", value_name = "CIDR")]
    remote_node_networks: Vec<IpNet>,
    /// STS endpoint URL [default: AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL, the regional one].
    #[arg(long, value_name = "URL")]
    sts_endpoint: Option<String>,
    /// EKS endpoint URL for DescribeCluster [default: AWS_ENDPOINT_URL_EKS, the regional one].
    #[arg(long, value_name = "URL")]
    eks_endpoint: Option<String>,
    /// IAM Roles Anywhere endpoint URL [default: the region's].
    #[arg(long, value_name = "URL")]
    rolesanywhere_endpoint: Option<String>,
    /// ECS hosts: ECS endpoint URL for DescribeClusters [default: AWS_ENDPOINT_URL_ECS, the
    /// regional one].
    #[arg(long, value_name = "URL")]
    ecs_endpoint: Option<String>,
    /// ECS hosts: the ECS agent's introspection API.
    #[arg(long, value_name = "URL", env = "ECS_AGENT_INTROSPECTION_ENDPOINT",
          default_value = crate::model::ecs::INTROSPECTION_ENDPOINT)]
    ecs_introspection: String,
    /// ECS hosts: Docker's socket.
    #[arg(long, value_name = "PATH", default_value = crate::model::ecs::DOCKER_SOCKET)]
    docker_socket: std::path::PathBuf,
    /// The proc filesystem to read swaps and sockets from.
    #[arg(long, value_name = "DIR", default_value = status::DEFAULT_PROC_ROOT)]
    proc_root: PathBuf,
    /// The host root under which the host's files are read (systemd drop-ins, the kubelet's
    /// config and certificates, CNI configs, firewalld and ufw configuration).
    #[arg(long, value_name = "DIR", default_value = status::DEFAULT_HOST_ROOT)]
    host_root: PathBuf,
    /// Read the clock state from this JSON file of raw `struct timex` fields instead of
    /// adjtimex(2) (offline diagnosis, tests).
    #[arg(long, value_name = "FILE", hide = true)]
    clock_state: Option<PathBuf>,
    /// The Node whose object the `node` check reads [default: spec.hybrid.iamRolesAnywhere.nodeName,
    /// the SSM managed instance ID, the host name].
    #[arg(long, value_name = "NAME")]
    node_name: Option<String>,
    /// The kubelet's kubeconfig (under --host-root); the `node` check runs once it exists.
    #[arg(long, value_name = "PATH", default_value = status::KUBELET_KUBECONFIG)]
    kubeconfig: PathBuf,
    /// Seconds each check may take.
    #[arg(long, value_name = "SECS", default_value_t = status::CHECK_TIMEOUT.as_secs())]
    timeout: u64,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Two lines per check: status, name and evidence; then the fix.
    Text,
    /// `{"checks": [{"name", "status", "evidence", "fix", "problems"?}...], "summary": {...}}`,
    /// also when the configuration does not load (a failing `config` check).
    Json,
}

pub(crate) fn run(args: StatusArgs) -> anyhow::Result<exit::Code> {
    // Loaded before the runtime starts: the IMDS user-data source runs its own. Scripts parse
    // the JSON report, so a configuration that does not load is a failing `config` check
    // there (the exit code is the error's, 2 for bad input), and an error on stderr in text.
    let loaded = match args.sources.load() {
        Ok(loaded) => loaded,
        Err(err) if args.output == Output::Json => {
            let report = status::Report {
                checks: vec![status::config_failed(&err)],
            };
            print!("{}", report.json());
            eprintln!("error: {err}");
            return Ok(super::exit_code::classify(&err));
        }
        Err(err) => return Err(err),
    };
    let config_check = status::config_loaded(&loaded);
    let mut inputs = Inputs::new(loaded.config);
    inputs.proc_root = args.proc_root;
    inputs.host_root = args.host_root;
    inputs.node_ip = args.node_ip;
    inputs.remote_node_networks = args.remote_node_networks;
    inputs.sts_endpoint = args.sts_endpoint;
    inputs.eks_endpoint = args.eks_endpoint;
    inputs.rolesanywhere_endpoint = args.rolesanywhere_endpoint;
    inputs.ecs_endpoint = args.ecs_endpoint;
    inputs.ecs_introspection = args.ecs_introspection;
    inputs.docker_socket = args.docker_socket;
    inputs.node_name = args.node_name;
    inputs.kubeconfig = args.kubeconfig;
    if let Some(path) = args.clock_state {
        inputs.clock_source = ClockSource::File(path);
    }
    if args.timeout == 0 {
        return Err(exit::BadInput("--timeout must be at least 1 second".into()).into());
    }
    inputs.timeout = std::time::Duration::from_secs(args.timeout);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut report = rt.block_on(status::run(&inputs));
    report.checks.insert(0, config_check);
    match args.output {
        Output::Text => print!("{}", report.text()),
        Output::Json => print!("{}", report.json()),
    }
    Ok(if report.passed() {
        exit::Code::Success
    } else {
        exit::Code::Failure
    })
}
