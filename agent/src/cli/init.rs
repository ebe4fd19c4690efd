//! `eks-node-agent init`: sources -> NodeConfig -> facts -> values -> plan -> apply.
//!
//! Two phases as in nodeadm: `config` writes files and kernel settings, `run` brings up
//! containerd then kubelet. `--skip` leaves one out so boot can be split around cloud-init; the
//! config phase then leaves its resolved state (services, pending restarts, explanations) in
//! /run/eks-node-agent/ for the run phase, which uses it instead of discovering again.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};

mod ecs;

use super::config::SourceArgs;
use crate::apply::state::{self, InitState, Unusable};
use crate::apply::{Applier, Root};
use crate::auth::credentials;
use crate::config::Loaded;
use crate::facts::host::{KUBELET_BINARY, KubeletVersionError};
use crate::facts::{self, imds::Imds};
use crate::model::version::NEWEST_KNOWN_KUBELET;
use crate::model::{Discovered, NodeValues, Version};
use crate::{compute, exit, render};

/// Render the node's configuration and bring up containerd and kubelet.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    eks-node-agent init                                  # user data, then /etc/eks-node-agent/config.d/\n  \
    eks-node-agent init --dry-run -c file://examples/hybrid-iam-roles-anywhere.yaml\n  \
    eks-node-agent init --dry-run --kubelet-version 1.29 -c file://examples/ec2.yaml\n  \
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
    /// The kubelet binary whose `--version` keys the kubelet's settings.
    #[arg(long, value_name = "PATH", default_value = KUBELET_BINARY)]
    kubelet_binary: PathBuf,
    /// The kubelet's version (e.g. 1.29 or v1.33.5), instead of `kubelet --version`: for a dry
    /// run or `--root` on a machine without the kubelet. Without it and without a kubelet, a
    /// dry run or `--root` assumes the newest version the agent knows (and says so).
    #[arg(long, value_name = "VERSION", value_parser = parse_version)]
    kubelet_version: Option<Version>,
    /// Refuse a configuration with warnings (unknown feature gates or disabledMounts names):
    /// exit 2 before anything is written.
    #[arg(long)]
    strict: bool,
    /// Talk to systemd on this D-Bus address instead of the system bus (services then run even
    /// with --root): for containers and tests.
    #[arg(long, value_name = "ADDRESS")]
    systemd_bus: Option<String>,
    /// ECS hosts: the ECS agent's introspection API, polled after the run phase until it
    /// reports a container instance ARN (ECS Anywhere).
    #[arg(long, value_name = "URL", env = "ECS_AGENT_INTROSPECTION_ENDPOINT",
          default_value = crate::model::ecs::INTROSPECTION_ENDPOINT)]
    ecs_introspection: String,
    /// ECS Anywhere: how many seconds the run phase waits for the agent's container instance
    /// ARN before failing.
    #[arg(long, value_name = "SECS", default_value_t = crate::facts::ecs_agent::DEFAULT_REGISTRATION_WAIT.as_secs())]
    ecs_wait: u64,
    #[command(flatten)]
    lock: super::LockArgs,
}

pub(crate) fn parse_version(text: &str) -> Result<Version, String> {
    Version::parse_word(text).ok_or_else(|| {
        format!("\"{text}\" is not a Kubernetes version; expected MAJOR.MINOR[.PATCH], e.g. 1.33 or v1.33.5")
    })
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
        kubelet_binary: PathBuf::from(KUBELET_BINARY),
        kubelet_version: None,
        strict: false,
        systemd_bus: None,
        ecs_introspection: crate::model::ecs::INTROSPECTION_ENDPOINT.into(),
        ecs_wait: crate::facts::ecs_agent::DEFAULT_REGISTRATION_WAIT.as_secs(),
        lock: super::LockArgs {
            lock_wait: crate::apply::lock::DEFAULT_LOCK_WAIT.as_secs(),
        },
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

/// The kubelet's version for the plan, and how it was had: `--kubelet-version`, else what the
/// kubelet binary says; on the host itself a missing kubelet is an error, a dry run or a
/// `--root` run assumes the newest version the agent knows.
pub(crate) fn kubelet_version(
    flag: Option<Version>,
    binary: &std::path::Path,
    on_host: bool,
) -> Result<(Version, String), KubeletVersionError> {
    if let Some(v) = flag {
        return Ok((v, format!("{v}: --kubelet-version")));
    }
    match crate::facts::host::kubelet_version(binary)? {
        Some(v) => Ok((v, format!("{v}: `{} --version`", binary.display()))),
        None if on_host => Err(KubeletVersionError::Missing {
            path: binary.to_path_buf(),
        }),
        None => {
            tracing::warn!(
                "no kubelet at {}: assuming kubelet {NEWEST_KNOWN_KUBELET}, the newest version whose settings the agent knows; pass --kubelet-version to plan for another",
                binary.display()
            );
            Ok((
                NEWEST_KNOWN_KUBELET,
                format!(
                    "{NEWEST_KNOWN_KUBELET}: assumed (no kubelet at {}; the newest version the agent knows)",
                    binary.display()
                ),
            ))
        }
    }
}

/// Resolves the node's values from what discovery found, with the kubelet's version.
pub(crate) fn resolve(
    loaded: &Loaded,
    mut found: Discovered,
    kubelet: (Version, String),
) -> anyhow::Result<NodeValues> {
    found.host.kubelet_version = Some(kubelet.0);
    let mut node = compute::values::resolve(&loaded.config, &found)?;
    node.explain.insert("kubelet version".into(), kubelet.1);
    Ok(node)
}

/// Each kubelet setting of `config.json` with its source, the user's keys included.
pub(crate) fn kubelet_sources(loaded: &Loaded, node: &NodeValues) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = render::kubelet::settings(node)
        .into_iter()
        .map(|s| (s.key.to_owned(), s.source))
        .collect();
    let where_ = if render::kubelet::uses_dropin(&loaded.config, node) {
        "its drop-in, which wins over config.json"
    } else {
        "merged over config.json (kubelet before 1.29)"
    };
    for key in loaded.config.spec.kubelet.config.keys() {
        let set_by = loaded
            .provenance
            .get(&format!("spec.kubelet.config.{key}"))
            .or_else(|| {
                loaded
                    .provenance
                    .iter()
                    .find(|(k, _)| k.starts_with(&format!("spec.kubelet.config.{key}.")))
                    .map(|(_, v)| v)
            })
            .map_or_else(String::new, |d| format!(" in {d}"));
        out.insert(
            key.clone(),
            format!("spec.kubelet.config{set_by} ({where_})"),
        );
    }
    out
}

/// The run phase alone, from the config phase's state; `None` when there is no usable state
/// (the caller discovers again).
async fn run_from_state(
    args: &InitArgs,
    loaded: &Loaded,
    applier: &Applier,
    phases: &Phases,
) -> anyhow::Result<Option<exit::Code>> {
    let root = applier.root();
    let found = InitState::load(root).and_then(|s| {
        s.check(
            root,
            &state::config_sha256(&loaded.config),
            &state::boot_id(),
        )
        .map(|()| s)
    });
    let mut saved = match found {
        Ok(s) => s,
        Err(why) => {
            if why == Unusable::Missing {
                tracing::info!("{why}; discovering again");
            } else {
                tracing::warn!("{why}; ignoring it and discovering again");
            }
            return Ok(None);
        }
    };
    tracing::info!(
        restart = ?saved.units_to_restart,
        daemon_reload = saved.daemon_reload,
        "run phase from the config phase's state (no discovery)"
    );
    let t = Instant::now();
    let plan = render::Plan {
        services: saved.services.clone(),
        ..render::Plan::default()
    };
    let report = applier.run_services(&plan, &saved.files_report()).await?;
    phases.done("run", t);
    // The restarts are done: a later run phase in this boot has none left to do.
    saved.units_to_restart.clear();
    saved.daemon_reload = false;
    if !args.dry_run {
        saved.save(root)?;
    }
    eprint!("{report}");
    Ok(Some(exit::Code::Success))
}

/// The node's provider, the registration before discovery (an SSM activation: printed in a dry
/// run, else carried out), then discovery.
/// The host lock, taken before init's first change to the host (so a configuration or a
/// discovery that is refused leaves no trace) and held to the end; a dry run never takes it.
pub(super) struct LockOnce<'a> {
    args: &'a super::LockArgs,
    root: &'a Root,
    held: Option<crate::apply::lock::HostLock>,
}

impl<'a> LockOnce<'a> {
    pub(super) fn new(args: &'a super::LockArgs, root: &'a Root) -> Self {
        LockOnce {
            args,
            root,
            held: None,
        }
    }

    /// Takes the lock unless this init already holds it (waits up to `--lock-wait`).
    pub(super) fn take(&mut self) -> anyhow::Result<()> {
        if self.held.is_none() {
            self.held = Some(tokio::task::block_in_place(|| {
                self.args.acquire(self.root, "init")
            })?);
        }
        Ok(())
    }
}

async fn register_and_discover(
    args: &InitArgs,
    config: &crate::config::NodeConfig,
    applier: &Applier,
    imds: Imds,
    lock: &mut LockOnce<'_>,
    report: &mut crate::apply::Report,
) -> anyhow::Result<(facts::provider::Provider, Discovered)> {
    let root = applier.root();
    let provider = config.discovery(&credentials::process_env)?;
    let (registered, agent_installed) = facts::host::ssm_state(root.dir());
    let registration = render::registration(config, registered, agent_installed)?;
    if args.dry_run {
        print!(
            "{}",
            applier.dry_run_actions(&registration, "before discovery")
        );
    } else {
        if !registration.actions.is_empty() {
            lock.take()?;
        }
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
    Ok((provider, found))
}

/// Pick the provider, register (SSM), discover, compute, render, apply.
async fn execute(
    args: &InitArgs,
    loaded: Loaded,
    imds: Imds,
    phases: Phases,
) -> anyhow::Result<exit::Code> {
    loaded.check_warnings(args.strict)?;
    if loaded.config.is_ecs() {
        return ecs::execute(args, &loaded, imds, &phases).await;
    }
    let config = &loaded.config;
    let root = args.root.as_ref().map_or_else(Root::host, Root::at);
    let mut lock = LockOnce::new(&args.lock, &root);
    let mut applier = Applier::new(root.clone());
    if let Some(bus) = &args.systemd_bus {
        applier = applier.with_bus_address(bus.clone());
    }
    let run_only = args.skip.contains(&Phase::Config) && !args.skip.contains(&Phase::Run);
    if run_only && !args.dry_run {
        lock.take()?;
        if let Some(code) = run_from_state(args, &loaded, &applier, &phases).await? {
            return Ok(code);
        }
    }
    let mut report = crate::apply::Report::default();

    let t = Instant::now();
    // The kubelet's version first: a host without the kubelet fails before anything changes.
    let on_host = args.root.is_none() && !args.dry_run;
    let binary = args.kubelet_binary.clone();
    let flag = args.kubelet_version;
    let kubelet = tokio::task::spawn_blocking(move || kubelet_version(flag, &binary, on_host))
        .await
        .map_err(facts::Error::HostFacts)??;
    let (provider, found) =
        register_and_discover(args, config, &applier, imds, &mut lock, &mut report).await?;
    tracing::info!(provider = provider.name(), kubelet = %kubelet.0, "facts gathered");
    phases.done("discover", t);

    let t = Instant::now();
    let node = match resolve(&loaded, found, kubelet) {
        Ok(node) => node,
        Err(e) => {
            // A layout the disks cannot take (RAID10 short of disks, a member gone) is what
            // `status` must show: recorded as the setup's error.
            if let (Some(compute::values::Error::LocalStorage(refused)), Some(strategy)) = (
                e.downcast_ref::<compute::values::Error>(),
                config.spec.instance.local_storage.strategy,
            ) && root.is_host()
                && !args.dry_run
            {
                crate::apply::disks::record_refusal(
                    strategy.as_str(),
                    &crate::model::text::error_chain(refused),
                );
            }
            return Err(e);
        }
    };
    let plan = render::render(config, &node);
    tracing::info!(files = plan.files.len(), node_name = %node.node_name, max_pods = node.max_pods, "plan rendered");
    if let Some(state) = &node.warm_pool_hold {
        tracing::info!(target_state = %state, unit = render::WARM_POOL_HOLD,
            "warm pool: the kubelet is held until the instance is InService");
    }
    phases.done("render", t);

    if args.dry_run {
        print!("{}", applier.dry_run(&plan)?);
        return Ok(exit::Code::Success);
    }
    lock.take()?;
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
        // The state the run phase reads (and `config show --explain` on the host): on the host,
        // and under a root when the run phase is left for later.
        if root.is_host() || args.skip.contains(&Phase::Run) {
            InitState::new(
                &root,
                state::config_sha256(config),
                plan.services.clone(),
                &report,
                node.explain.clone(),
                kubelet_sources(&loaded, &node),
            )
            .save(&root)?;
        }
        phases.done("config", t);
    }
    if !args.skip.contains(&Phase::Run) {
        let t = Instant::now();
        let files = report.clone();
        report.merge(applier.run_services(&plan, &files).await?);
        phases.done("run", t);
        if !args.skip.contains(&Phase::Config) && root.is_host() {
            // Both phases ran: no restart is left for a later run phase.
            let mut done = InitState::new(
                &root,
                state::config_sha256(config),
                plan.services.clone(),
                &crate::apply::Report::default(),
                node.explain.clone(),
                kubelet_sources(&loaded, &node),
            );
            done.units_to_restart.clear();
            done.save(&root)?;
        }
    }
    eprint!("{report}");
    Ok(exit::Code::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_kubelet_is_an_error_on_the_host_and_assumed_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("kubelet");
        let err = kubelet_version(None, &missing, true).unwrap_err();
        assert!(matches!(err, KubeletVersionError::Missing { .. }));
        let text = err.to_string();
        assert!(
            text.contains(&missing.display().to_string()) && text.contains("--kubelet-binary"),
            "{text}"
        );
        assert_eq!(
            crate::exit::Classify::exit_code(&err),
            crate::exit::Code::Failure
        );
        let (v, why) = kubelet_version(None, &missing, false).unwrap();
        assert_eq!(v, NEWEST_KNOWN_KUBELET);
        assert!(why.contains("assumed"), "{why}");
        let given = Version::from((1, 29, 0));
        assert_eq!(
            kubelet_version(Some(given), &missing, true).unwrap().0,
            given
        );
    }
}
