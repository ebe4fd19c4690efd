//! The checks of an Amazon ECS container instance: Docker (`GET /_ping` on its socket) and the
//! ECS container agent (its introspection API: registered with a container instance ARN, the
//! cluster it is in, its version, and its tasks by state).

use std::path::Path;
use std::time::Duration;

use super::{EcsFacts, Facts, Outcome, Severity};
use crate::facts::ecs_agent::{self, Introspection};

/// How long one Docker request may take.
pub const DOCKER_TIMEOUT: Duration = Duration::from_secs(3);

/// Docker answers `GET /_ping` with `OK` on its socket.
pub async fn docker(socket: &Path) -> Outcome {
    match crate::facts::docker::ping(socket, DOCKER_TIMEOUT).await {
        Ok(()) => Outcome::ok(format!("Docker answers /_ping on {}", socket.display())).with_facts(
            Facts {
                docker_up: Some(true),
                ..Facts::default()
            },
        ),
        Err(e) => Outcome::fail(
            "DockerUnreachable",
            format!(
                "{}; check `systemctl status docker` and `journalctl -u docker`",
                crate::model::text::error_chain(&e)
            ),
        )
        .with_fix(
            "start Docker (systemctl start docker) and look at its log (journalctl -u docker)",
        )
        .with_facts(Facts {
            docker_up: Some(false),
            ..Facts::default()
        }),
    }
}

/// The ECS agent answers its introspection API, is registered (a container instance ARN) in
/// `cluster` (when given); its tasks are counted by state.
pub async fn agent(api: &Introspection, cluster: Option<&str>) -> Outcome {
    let meta = match api.metadata().await {
        Ok(m) => m,
        Err(e) => {
            return Outcome::fail(
                "EcsAgentUnreachable",
                format!(
                    "{}; check `systemctl status ecs` and /var/log/ecs/ecs-agent.log",
                    crate::model::text::error_chain(&e)
                ),
            )
            .with_fix(
                "start the ECS agent (systemctl start ecs) and look at /var/log/ecs/ecs-agent.log",
            )
            .with_facts(Facts {
                ecs: Some(EcsFacts::default()),
                ..Facts::default()
            });
        }
    };
    let tasks = api.tasks().await.unwrap_or_default();
    let facts = EcsFacts {
        connected: meta
            .container_instance_arn
            .as_deref()
            .is_some_and(|a| !a.is_empty()),
        cluster: meta.cluster.clone(),
        version: meta.version_number().unwrap_or_default().to_owned(),
        tasks: ecs_agent::tasks_by_state(&tasks),
    };
    let with = |o: Outcome| {
        o.with_facts(Facts {
            ecs: Some(facts.clone()),
            ..Facts::default()
        })
    };
    let Some(arn) = meta.container_instance_arn.filter(|a| !a.is_empty()) else {
        return with(
            Outcome::fail(
                "EcsAgentNotRegistered",
                format!(
                    "the ECS agent ({}) has not registered a container instance in cluster {:?}",
                    meta.version, meta.cluster
                ),
            )
            .with_fix("check /var/log/ecs/ecs-agent.log: the cluster name and region in /etc/ecs/ecs.config, the host's credentials and its route to the ECS endpoints"),
        );
    };
    if let Some(want) = cluster
        && want != meta.cluster
        && !arn.contains(&format!("/{want}/"))
    {
        return with(
            Outcome::fail(
                "EcsAgentWrongCluster",
                format!(
                    "the ECS agent is registered in cluster {:?}, not {want:?} as ecs.config says",
                    meta.cluster
                ),
            )
            .with_severity(Severity::Warning)
            .with_fix("restart the ECS agent after changing ECS_CLUSTER (its checkpoint keeps the old registration: remove /var/lib/ecs/data/ecs_agent_data.json)"),
        );
    }
    let running = facts.tasks.get("RUNNING").copied().unwrap_or(0);
    with(Outcome::ok(format!(
        "ECS agent {} registered as {arn} in cluster {}; {running} task(s) running",
        facts.version, meta.cluster
    )))
}
