//! `init` on an Amazon ECS container instance (`spec.ecs`): register with SSM (ECS Anywhere
//! with an activation), discover (IMDS on EC2; the registration or a first IAM Roles Anywhere
//! session on ECS Anywhere), render ecs.config and the rest, apply, start Docker and
//! ecs.service, and on ECS Anywhere wait (bounded) until the agent reports its container
//! instance ARN.

use std::time::{Duration, Instant};

use super::{InitArgs, Phase, Phases};
use crate::apply::{Applier, Root};
use crate::config::Loaded;
use crate::facts::ecs_agent::Introspection;
use crate::facts::imds::Imds;
use crate::{compute, exit, render};

pub(super) async fn execute(
    args: &InitArgs,
    loaded: &Loaded,
    imds: Imds,
    phases: &Phases,
) -> anyhow::Result<exit::Code> {
    let config = &loaded.config;
    let root = args.root.as_ref().map_or_else(Root::host, Root::at);
    let mut applier = Applier::new(root.clone());
    if let Some(bus) = &args.systemd_bus {
        applier = applier.with_bus_address(bus.clone());
    }
    // Bad flags fail before anything changes.
    let introspection = Introspection::new(&args.ecs_introspection)?;
    let mut report = crate::apply::Report::default();
    let mut lock = super::LockOnce::new(&args.lock, &root);

    let t = Instant::now();
    let (provider, found) =
        super::register_and_discover(args, config, &applier, imds, &mut lock, &mut report).await?;
    tracing::info!(provider = provider.name(), "facts gathered");
    phases.done("discover", t);

    let t = Instant::now();
    let values = compute::ecs::resolve(config, &found)?;
    let plan = render::ecs::render(config, &values);
    tracing::info!(files = plan.files.len(), cluster = %values.cluster, region = %values.region,
        external = values.external, "ECS plan rendered");
    phases.done("render", t);

    if args.dry_run {
        print!("{}", applier.dry_run(&plan)?);
        return Ok(exit::Code::Success);
    }
    lock.take()?;
    if !args.skip.contains(&Phase::Config) {
        let t = Instant::now();
        report.merge(applier.apply_files(&plan)?);
        report.merge(applier.apply_actions(&plan).await?);
        tracing::info!(changed = report.files_changed().count(), "files written");
        phases.done("config", t);
    }
    if !args.skip.contains(&Phase::Run) {
        let t = Instant::now();
        let files = report.clone();
        report.merge(applier.run_services(&plan, &files).await?);
        if values.external {
            let wait = Duration::from_secs(args.ecs_wait);
            tracing::info!(
                endpoint = introspection.endpoint(),
                wait_secs = args.ecs_wait,
                "waiting for the ECS agent to register the container instance"
            );
            let meta = introspection.wait_for_registration(wait).await?;
            let arn = meta.container_instance_arn.unwrap_or_default();
            tracing::info!(container_instance_arn = %arn, cluster = %meta.cluster, version = %meta.version,
                "the ECS agent registered the container instance");
            eprintln!("ECS container instance {arn} (cluster {})", meta.cluster);
        }
        phases.done("run", t);
    }
    eprint!("{report}");
    Ok(exit::Code::Success)
}
