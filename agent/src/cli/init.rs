//! `eks-node-agent init`: sources -> NodeConfig -> facts -> values -> plan -> apply.
//!
//! Two phases as in nodeadm: `config` writes files and kernel settings, `run` brings up
//! containerd then kubelet. `--skip` leaves one out so boot can be split around cloud-init.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};

use super::config::SourceArgs;
use crate::apply::{Applier, Root};
use crate::auth::credentials;
use crate::config::Loaded;
use crate::facts::{self, imds::Imds};
use crate::{compute, exit, render};

/// Render the node's configuration and bring up containerd and kubelet.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    eks-node-agent init                                  # user data, then /etc/eks-node-agent/config.d/\n  \
    eks-node-agent init --dry-run -c file://examples/hybrid-iam-roles-anywhere.yaml\n  \
    eks-node-agent init --root ./node-root -c file:///tmp/nodeconfig.yaml\n  \
    eks-node-agent init --skip run                       # files only (before cloud-init)")]
pub struct InitArgs {
    #[command(flatten)]
    sources: SourceArgs,
    /// Print the plan (files with a diff against disk, sysctls, service actions); write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Apply under this directory instead of `/` (skips sysctls and services).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Leave out a phase: `config` (disks, files, sysctls) or `run` (services). Repeatable.
    #[arg(long, value_enum, value_name = "PHASE")]
    skip: Vec<Phase>,
    /// Which /dev/disk/by-id links are instance-store disks (`*` and `?` wildcards), for
    /// spec.instance.localStorage.
    #[arg(
        long,
        value_name = "GLOB",
        env = "EKS_NODE_AGENT_LOCAL_DISK_PATTERN",
        default_value = crate::facts::disks::DEFAULT_DISK_PATTERN
    )]
    local_disk_pattern: String,
}

/// The phases of `init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Phase {
    /// Write files and kernel settings.
    Config,
    /// Start containerd and kubelet.
    Run,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

pub(crate) fn run(args: InitArgs) -> anyhow::Result<exit::Code> {
    let rt = runtime()?;
    rt.block_on(async {
        let started = Instant::now();
        let imds = Imds::new()?;
        let loaded = crate::config::load_with_imds(&args.sources.sources, &imds).await?;
        let phases = Phases::new(&args);
        phases.done("sources", started);
        tracing::info!(documents = loaded.documents.len(), "config loaded");
        execute(&args, loaded, imds, phases).await
    })
}

/// `bootstrap` (legacy flags) ends here with its translated config.
pub(crate) fn run_loaded(loaded: Loaded) -> anyhow::Result<exit::Code> {
    let args = InitArgs {
        sources: SourceArgs {
            sources: Vec::new(),
        },
        dry_run: false,
        root: None,
        skip: Vec::new(),
        local_disk_pattern: std::env::var("EKS_NODE_AGENT_LOCAL_DISK_PATTERN")
            .unwrap_or_else(|_| crate::facts::disks::DEFAULT_DISK_PATTERN.to_owned()),
    };
    let rt = runtime()?;
    rt.block_on(async {
        let phases = Phases::new(&args);
        execute(&args, loaded, Imds::new()?, phases).await
    })
}

/// Records how long each phase took: in the log, and (on a real run on the host) in the file
/// `run` exports as metrics.
struct Phases {
    on_host: bool,
}

impl Phases {
    fn new(args: &InitArgs) -> Phases {
        Phases {
            on_host: args.root.is_none() && !args.dry_run,
        }
    }

    fn done(&self, phase: &str, started: Instant) {
        let took = started.elapsed();
        tracing::info!(phase, duration_ms = took.as_secs_f64() * 1e3, "phase done");
        if self.on_host {
            crate::apply::phases::record_default(phase, took);
        }
    }
}

/// Pick the provider, register (SSM), discover, compute, render, apply.
async fn execute(
    args: &InitArgs,
    loaded: Loaded,
    imds: Imds,
    phases: Phases,
) -> anyhow::Result<exit::Code> {
    let config = &loaded.config;
    let root = args.root.as_ref().map_or_else(Root::host, Root::at);
    let applier = Applier::new(root.clone());
    let mut report = crate::apply::Report::default();

    let t = Instant::now();
    let provider = config.discovery(&credentials::process_env)?;
    let (registered, agent_installed) = facts::host::ssm_state(root.dir());
    let registration = render::registration(config, registered, agent_installed)?;
    if args.dry_run {
        print!(
            "{}",
            applier.dry_run_actions(&registration, "before discovery")
        );
    } else {
        report.merge(applier.apply_actions(&registration).await?);
    }
    let context = facts::provider::Context::new(imds, root.dir());
    let mut found = provider.discover(&context).await?;
    if config.spec.instance.local_storage.strategy.is_some()
        && (args.dry_run || !args.skip.contains(&Phase::Config))
    {
        let query = facts::disks::Query {
            pattern: args.local_disk_pattern.clone(),
            root: root.dir().to_path_buf(),
        };
        let on_ec2 = matches!(provider.name(), "ec2" | "outpost");
        found.local_storage =
            Some(facts::disks::discover(&query, on_ec2.then_some(&context.imds)).await?);
    }
    tracing::info!(provider = provider.name(), "facts gathered");
    phases.done("discover", t);

    let t = Instant::now();
    let node = match compute::values::resolve(config, &found) {
        Ok(node) => node,
        Err(e) => {
            if let (compute::values::Error::LocalStorage(_), Some(strategy)) =
                (&e, config.spec.instance.local_storage.strategy)
                && root.is_host()
                && !args.dry_run
            {
                crate::apply::disks::record_refusal(
                    strategy.as_str(),
                    &crate::model::text::error_chain(&e),
                );
            }
            return Err(e.into());
        }
    };
    let plan = render::render(config, &node);
    tracing::info!(files = plan.files.len(), node_name = %node.node_name, max_pods = node.max_pods, "plan rendered");
    phases.done("render", t);

    if args.dry_run {
        print!("{}", applier.dry_run(&plan)?);
        return Ok(exit::Code::Success);
    }
    if !args.skip.contains(&Phase::Config) {
        let t = Instant::now();
        // The disks first: files under the directories moved onto them land there.
        if plan.storage.is_some() {
            report.merge(applier.apply_storage(&plan).await?);
            phases.done("storage", t);
        }
        let t = Instant::now();
        report.merge(applier.apply_files(&plan)?);
        report.merge(applier.apply_sysctls(&plan)?);
        report.merge(applier.apply_actions(&plan).await?);
        tracing::info!(changed = report.files_changed().count(), "files written");
        phases.done("config", t);
    }
    if !args.skip.contains(&Phase::Run) {
        let t = Instant::now();
        let files = report.clone();
        report.merge(applier.run_services(&plan, &files).await?);
        phases.done("run", t);
    }
    eprint!("{report}");
    Ok(exit::Code::Success)
}
