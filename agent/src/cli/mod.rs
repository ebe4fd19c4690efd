//! The command line: one file per subcommand. `main` parses, starts logging, runs the command,
//! prints the error chain (each cause on its own line) and maps it to the exit code.

use clap::{Args, Parser, Subcommand};

use crate::exit;

mod bootstrap;
mod collect;
mod config;
pub mod credentials;
mod exit_code;
mod init;
mod install;
mod logging;
mod max_pods;
mod run;
mod status;
pub mod token;
mod uninstall;
mod upgrade;
mod version;
mod warm_pool;

/// eks-node-agent: bootstrap an EKS worker host, join it with IAM credentials, prepare it for
/// the VPC CNI, and report its health.
#[derive(Debug, Parser)]
#[command(name = "eks-node-agent", version, propagate_version = true)]
#[command(after_help = "Examples:\n  \
    eks-node-agent config check -c file:///etc/eks-node-agent/config.d/\n  \
    eks-node-agent config show -c file://examples/ec2.yaml --explain\n  \
    eks-node-agent bootstrap my-cluster --kubelet-extra-args '--node-labels=a=b' --print-config")]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text, env = "EKS_NODE_AGENT_LOG_FORMAT")]
    pub log_format: logging::LogFormat,
    /// More log detail: -v debug, -vv trace.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render the node's configuration and bring up containerd and kubelet.
    Init(Box<init::InitArgs>),
    /// Read, merge and validate NodeConfig sources.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Translate legacy /etc/eks/bootstrap.sh flags into a NodeConfig.
    Bootstrap(Box<bootstrap::BootstrapArgs>),
    /// Compute the max pods of an instance type (drop-in for max-pods-calculator.sh).
    MaxPods(max_pods::MaxPodsArgs),
    /// Print a k8s-aws-v1 token for the cluster (the kubelet's exec credential plugin).
    Token(token::TokenArgs),
    /// Print IAM Roles Anywhere credentials in the credential_process format.
    Credentials(credentials::CredentialsArgs),
    /// Run the node health and metrics daemon (conditions, events, /metrics, sd_notify).
    Run(Box<run::RunArgs>),
    /// Pre-flight and post-join checks: credentials, STS, API server, node IP, clock, swap,
    /// kubelet/containerd versions, proxy, ports (exit 1 when one fails).
    Status(Box<status::StatusArgs>),
    /// Install kubelet, containerd, CNI plugins and the ECR credential provider from a verified mirror.
    Install(Box<install::InstallArgs>),
    /// Upgrade kubelet, containerd and CNI plugins in place: cordon, drain, install, restart,
    /// wait for Ready, uncordon; roll back on failure.
    Upgrade(Box<upgrade::UpgradeArgs>),
    /// Remove every file the agent wrote; with --deregister, deregister the SSM hybrid node.
    Uninstall(uninstall::UninstallArgs),
    /// Collect a support bundle (tar.gz) of the node's logs, configs and state, secrets redacted.
    Collect(Box<collect::CollectArgs>),
    /// Print the version and build information.
    Version(version::VersionArgs),
    /// Hold the kubelet of an Auto Scaling warm-pool instance until it is InService, then start it.
    WarmPoolWait(warm_pool::WarmPoolArgs),
}

/// How long a command that changes the host waits for another to finish (the host lock,
/// see [`crate::apply::lock`]).
#[derive(Debug, Clone, Args)]
pub struct LockArgs {
    /// Seconds to wait when another init, install, upgrade or uninstall holds the host lock
    /// (/run/eks-node-agent/host.lock) before failing; 0 fails at once.
    #[arg(long, value_name = "SECS", default_value_t = crate::apply::lock::DEFAULT_LOCK_WAIT.as_secs())]
    pub lock_wait: u64,
}

impl LockArgs {
    /// Takes the host lock of `root` for `command`, saying on stderr whom it waits for.
    pub(crate) fn acquire(
        &self,
        root: &crate::apply::Root,
        command: &str,
    ) -> anyhow::Result<crate::apply::lock::HostLock> {
        let wait = std::time::Duration::from_secs(self.lock_wait);
        Ok(crate::apply::lock::HostLock::acquire(
            root,
            command,
            wait,
            |holder| {
                eprintln!(
                    "waiting up to {} s for the host lock held by {holder}",
                    self.lock_wait
                );
            },
        )?)
    }
}

/// The user-data source for `imds://user-data`.
pub(crate) fn user_data_fetcher() -> Box<dyn crate::config::UserDataFetch> {
    Box::new(crate::config::ImdsUserData)
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<exit::Code> {
    match cli.command {
        Command::Init(args) => init::run(*args),
        Command::Config(cmd) => config::run(cmd),
        Command::Bootstrap(args) => bootstrap::run(*args),
        Command::MaxPods(args) => max_pods::run(args),
        Command::Token(args) => token::run(args),
        Command::Credentials(args) => credentials::run(args),
        Command::Run(args) => run::run(*args),
        Command::Status(args) => status::run(*args),
        Command::Install(args) => install::run(*args),
        Command::Upgrade(args) => upgrade::run(*args),
        Command::Uninstall(args) => uninstall::run(args),
        Command::Collect(args) => collect::run(*args),
        Command::Version(args) => version::run(args),
        Command::WarmPoolWait(args) => warm_pool::run(args),
    }
}

/// The whole process: parse, log, run, report.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logging::init(cli.global.log_format, cli.global.verbose);
    match run(cli) {
        Ok(code) => code.into(),
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            exit_code::classify(&err).into()
        }
    }
}
