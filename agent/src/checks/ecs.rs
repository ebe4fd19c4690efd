//! The checks of an Amazon ECS container instance: Docker (`GET /_ping` on its socket) and the
//! ECS container agent (its introspection API: registered with a container instance ARN, the
//! cluster it is in, its version, and its tasks by state).

use std::path::Path;
use std::time::Duration;

use super::{EcsFacts, Facts, Outcome};
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
            Outcome::warn(
                "EcsAgentWrongCluster",
                format!(
                    "the ECS agent is registered in cluster {:?}, not {want:?} as ecs.config says",
                    meta.cluster
                ),
            )
            .with_fix("restart the ECS agent after changing ECS_CLUSTER (its checkpoint keeps the old registration: remove /var/lib/ecs/data/ecs_agent_data.json)"),
        );
    }
    let running = facts.tasks.get("RUNNING").copied().unwrap_or(0);
    with(Outcome::ok(format!(
        "ECS agent {} registered as {arn} in cluster {}; {running} task(s) running",
        facts.version, meta.cluster
    )))
}

/// `status` on an ECS host (after the `config` check the caller adds): the host's credentials, the ECS API (the cluster
/// exists: DescribeClusters), the ECS agent (registered) and Docker (`/_ping`), the clock.
pub async fn status(inputs: &super::status::Inputs) -> super::status::Report {
    use super::status::{
        CLOCK, CREDENTIALS, Checked, ECS_AGENT, ECS_CLUSTER, ECS_DOCKER, Report, fail, ok,
    };
    let config = &inputs.config;
    let ecs = config.spec.ecs.clone().unwrap_or_default();
    let cluster = ecs.cluster.clone().unwrap_or_default();
    let limit = inputs.timeout;
    let creds_fix = if ecs
        .external
        .as_ref()
        .is_some_and(|e| e.iam_roles_anywhere.is_some())
    {
        "check spec.ecs.external.iamRolesAnywhere: the certificate and key exist and match, the certificate chains to the trust anchor, the profile lists the role and the role trusts rolesanywhere.amazonaws.com"
    } else if ecs.external.is_some() {
        "register the host with its SSM activation (`eks-node-agent init`) and check that amazon-ssm-agent is running: it keeps /root/.aws/credentials fresh"
    } else {
        "attach an instance profile with the ECS container instance role and keep IMDSv2 reachable; set spec.ecs.region or AWS_REGION when no region is found"
    };
    let creds = tokio::time::timeout(limit, super::credentials::resolve(inputs))
        .await
        .unwrap_or_else(|_| Err(format!("resolving credentials: no answer within {limit:?}")));
    let introspection = Introspection::new(&inputs.ecs_introspection);
    let agent_check = async {
        match &introspection {
            Ok(api) => tokio::time::timeout(limit, agent(api, Some(&cluster)))
                .await
                .unwrap_or_else(|_| Outcome::fail("EcsAgentUnreachable", "no answer in time")),
            Err(e) => Outcome::fail("EcsAgentUnreachable", e.to_string()),
        }
    };
    let describe = async {
        let Ok(resolved) = &creds else {
            return fail(
                "EcsApiNotChecked",
                "no credentials to call ECS with (see credentials)",
                creds_fix,
            );
        };
        let provider = aws_credential_types::provider::SharedCredentialsProvider::new(
            resolved.credentials.clone(),
        );
        let sdk = crate::facts::sdk_config(resolved.region.as_str(), Some(provider)).await;
        let mut b = aws_sdk_ecs::config::Builder::from(&sdk);
        if let Some(e) = &inputs.ecs_endpoint {
            b = b.endpoint_url(e);
        }
        let client = aws_sdk_ecs::Client::from_conf(b.build());
        let call = client.describe_clusters().clusters(&cluster).send();
        match tokio::time::timeout(limit, call).await {
            Err(_) => fail(
                "EcsApiUnreachable",
                format!("DescribeClusters: no answer within {limit:?}"),
                "check the host's route (or proxy) to the ECS endpoint of the region",
            ),
            Ok(Err(e)) => {
                use aws_sdk_ecs::error::ProvideErrorMetadata;
                let detail = match e.code() {
                    Some(code) => format!("{code}: {}", e.message().unwrap_or_default()),
                    None => aws_sdk_ecs::error::DisplayErrorContext(&e).to_string(),
                };
                fail(
                    "EcsApiUnreachable",
                    format!("DescribeClusters in {}: {detail}", resolved.region),
                    "check the host's route (or proxy) to the ECS endpoint and that its role may call ecs:DescribeClusters",
                )
            }
            Ok(Ok(out)) => match out
                .clusters()
                .iter()
                .find(|c| c.cluster_name() == Some(cluster.as_str()))
            {
                Some(c) if c.status() == Some("ACTIVE") => ok(format!(
                    "cluster {cluster} in {} is ACTIVE with {} registered container instance(s)",
                    resolved.region,
                    c.registered_container_instances_count()
                )),
                Some(c) => fail(
                    "EcsClusterInactive",
                    format!(
                        "cluster {cluster} in {} is {}",
                        resolved.region,
                        c.status().unwrap_or("of unknown status")
                    ),
                    "use an ACTIVE cluster in spec.ecs.cluster",
                ),
                None => fail(
                    "EcsClusterNotFound",
                    format!(
                        "DescribeClusters in {} does not know cluster {cluster}{}",
                        resolved.region,
                        out.failures()
                            .first()
                            .and_then(|f| f.reason())
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default()
                    ),
                    "create the cluster (aws ecs create-cluster) or fix spec.ecs.cluster and the region",
                ),
            },
        }
    };
    let docker_check = tokio::time::timeout(limit, docker(&inputs.docker_socket));
    let (cluster_outcome, agent_outcome, docker_outcome) =
        tokio::join!(describe, agent_check, docker_check);
    let docker_outcome =
        docker_outcome.unwrap_or_else(|_| Outcome::fail("DockerUnreachable", "no answer in time"));
    let clock = super::clock::read(&inputs.clock_source);
    Report {
        checks: vec![
            Checked::new(
                CREDENTIALS,
                super::credentials::check(&creds.map(|r| r.found), creds_fix),
            ),
            Checked::new(ECS_CLUSTER, cluster_outcome),
            Checked::new(ECS_AGENT, agent_outcome),
            Checked::new(ECS_DOCKER, docker_outcome),
            Checked::new(CLOCK, super::clock::check(&clock)),
        ],
    }
}
