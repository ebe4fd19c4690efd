//! An Amazon ECS container instance: `/etc/ecs/ecs.config` (0644) with every non-secret key,
//! the secret keys (private registry auth) in `/var/lib/ecs/ecs.config` (0600, the other
//! `EnvironmentFile` of ecs-init's `ecs.service`), on IAM Roles Anywhere hosts the credentials
//! file the ECS agent reads and the unit that keeps it fresh, the environment drop-ins, and the
//! services: Docker, then ecs-init's `ecs.service`. ecs-init keeps doing what it does on the
//! ECS-optimized AMI (the credentials endpoint route, the agent container, GPU setup); the
//! agent replaces the user-data shell line that wrote ecs.config.

use super::hybrid::{RefreshUnit, credentials_refresh_unit};
use super::plan::{FileSpec, Plan, ServiceSpec};
use super::system;
use crate::config::NodeConfig;
use crate::config::ecs::EcsOptions;
use crate::model::ecs::{self as ecs_model, EcsCredentials, EcsValues};
use crate::model::paths::{ROLES_ANYWHERE_CERTIFICATE, ROLES_ANYWHERE_PRIVATE_KEY};

/// The `ecs.config` keys and values of a host, in the order written: the typed fields first,
/// then `spec.ecs.config` by key. Secret keys are included (see [`ecs_model::is_secret_key`]).
pub fn pairs(ecs: &EcsOptions, values: &EcsValues) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: String| out.push((k.to_owned(), v));
    put(ecs_model::KEY_CLUSTER, values.cluster.clone());
    if values.external || ecs.region.is_some() {
        put(ecs_model::KEY_REGION, values.region.clone());
    }
    if values.external {
        put(ecs_model::KEY_EXTERNAL, "true".into());
    }
    let flag = |b: bool| b.to_string();
    if let Some(v) = ecs.task_iam_role {
        put(ecs_model::KEY_TASK_IAM_ROLE, flag(v));
    }
    if let Some(v) = ecs.task_iam_role_network_host {
        put(ecs_model::KEY_TASK_IAM_ROLE_NETWORK_HOST, flag(v));
    }
    match ecs.awsvpc_trunking {
        Some(true) => {
            put(ecs_model::KEY_TASK_ENI, "true".into());
            put(ecs_model::KEY_HIGH_DENSITY_ENI, "true".into());
        }
        Some(false) => put(ecs_model::KEY_HIGH_DENSITY_ENI, "false".into()),
        None => {}
    }
    if !ecs.logging_drivers.is_empty() {
        put(
            ecs_model::KEY_LOGGING_DRIVERS,
            serde_json::to_string(&ecs.logging_drivers).unwrap_or_default(),
        );
    }
    if let Some(mib) = ecs.reserved_memory_mib {
        put(ecs_model::KEY_RESERVED_MEMORY, mib.to_string());
    }
    if let Some(c) = &ecs.image_cleanup {
        if let Some(enabled) = c.enabled {
            put(ecs_model::KEY_DISABLE_IMAGE_CLEANUP, flag(!enabled));
        }
        if let Some(v) = &c.interval {
            put(ecs_model::KEY_IMAGE_CLEANUP_INTERVAL, v.clone());
        }
        if let Some(v) = &c.minimum_age {
            put(ecs_model::KEY_IMAGE_MINIMUM_CLEANUP_AGE, v.clone());
        }
        if let Some(n) = c.images_per_cycle {
            put(ecs_model::KEY_IMAGES_PER_CYCLE, n.to_string());
        }
    }
    if let Some(v) = ecs.spot_draining {
        put(ecs_model::KEY_SPOT_DRAINING, flag(v));
    }
    for (key, map) in [
        (ecs_model::KEY_INSTANCE_ATTRIBUTES, &ecs.instance_attributes),
        (ecs_model::KEY_INSTANCE_TAGS, &ecs.instance_tags),
    ] {
        if !map.is_empty() {
            put(key, serde_json::to_string(map).unwrap_or_default());
        }
    }
    if let Some(auth) = &ecs.registry_auth {
        put(ecs_model::KEY_AUTH_TYPE, auth.kind.name().into());
        put(
            ecs_model::KEY_AUTH_DATA,
            serde_json::to_string(&auth.data).unwrap_or_default(),
        );
    }
    for (k, v) in &ecs.config {
        put(k, v.clone());
    }
    out
}

fn env_file(header: &str, pairs: &[&(String, String)]) -> String {
    let mut text = String::from(header);
    for (k, v) in pairs {
        text.push_str(k);
        text.push('=');
        text.push_str(v);
        text.push('\n');
    }
    text
}

/// Renders the whole plan for an ECS container instance (the config has `spec.ecs`).
pub fn render(config: &NodeConfig, values: &EcsValues) -> Plan {
    let ecs = config.spec.ecs.clone().unwrap_or_default();
    let all = pairs(&ecs, values);
    let (secret, public): (Vec<_>, Vec<_>) =
        all.iter().partition(|(k, _)| ecs_model::is_secret_key(k));
    let mut files = vec![FileSpec::new(
        ecs_model::ECS_CONFIG,
        env_file(
            "# Written by eks-node-agent from the NodeConfig (spec.ecs); read by ecs-init.\n",
            &public,
        ),
        &[ecs_model::ECS_UNIT],
    )];
    if !secret.is_empty() {
        files.push(
            FileSpec::new(
                ecs_model::ECS_SECRET_CONFIG,
                env_file(
                    "# Written by eks-node-agent: the secret ECS agent settings (spec.ecs.registryAuth); read by ecs-init.\n",
                    &secret,
                ),
                &[ecs_model::ECS_UNIT],
            )
            .secret(),
        );
    }
    let mut services = vec![ServiceSpec {
        unit: ecs_model::DOCKER_UNIT.into(),
        wait_for_socket: Some(ecs_model::DOCKER_SOCKET.into()),
    }];
    let ira = ecs
        .external
        .as_ref()
        .and_then(|e| e.iam_roles_anywhere.as_ref())
        .filter(|_| values.credentials == EcsCredentials::RolesAnywhere);
    if let Some(ira) = ira {
        if let Some(creds) = &values.file_credentials {
            files.push(
                FileSpec::new(
                    ecs_model::ECS_ANYWHERE_CREDENTIALS_FILE,
                    creds.contents.clone(),
                    &[],
                )
                .secret(),
            );
        }
        let (unit, service) = credentials_refresh_unit(&RefreshUnit {
            unit: ecs_model::ECS_CREDENTIALS_UNIT,
            setting: "spec.ecs.external.iamRolesAnywhere",
            purpose: "the IAM Roles Anywhere credentials file of the ECS agent",
            reader: "the ECS agent (ecs-init binds /root/.aws at /rotatingcreds)",
            agent_binary: &values.agent_binary.display().to_string(),
            certificate: ira
                .certificate_path
                .as_deref()
                .unwrap_or(ROLES_ANYWHERE_CERTIFICATE),
            private_key: ira
                .private_key_path
                .as_deref()
                .unwrap_or(ROLES_ANYWHERE_PRIVATE_KEY),
            trust_anchor_arn: ira.trust_anchor_arn.as_deref().unwrap_or_default(),
            profile_arn: ira.profile_arn.as_deref().unwrap_or_default(),
            role_arn: ira.role_arn.as_deref().unwrap_or_default(),
            role_session_name: ira.role_session_name.as_deref(),
            region: ira
                .trust_anchor_arn
                .as_deref()
                .and_then(|a| a.split(':').nth(3))
                .filter(|r| !r.is_empty())
                .unwrap_or(&values.region),
            file: ecs_model::ECS_ANYWHERE_CREDENTIALS_FILE,
        });
        files.push(unit);
        // ecs.service starts after the first renewal is under way, and with it.
        files.push(FileSpec::new(
            ecs_model::ECS_SERVICE_DROPIN,
            format!(
                "# Written by eks-node-agent (spec.ecs.external.iamRolesAnywhere): the ECS agent's\n\
                 # credentials file is kept fresh by {unit}.\n\
                 [Unit]\n\
                 Wants={unit}\n\
                 After={unit}\n",
                unit = ecs_model::ECS_CREDENTIALS_UNIT
            ),
            &[ecs_model::ECS_UNIT],
        ));
        services.push(service);
    }
    // The agent's own daemon runs as an ECS host's (`run --ecs`): no Kubernetes writes, Docker
    // and ECS agent checks, ECS draining on lifecycle events. The package's unit reads
    // EKS_NODE_AGENT_RUN_ARGS; /etc/default/eks-node-agent still wins when it sets it.
    files.push(FileSpec::new(
        ecs_model::AGENT_SERVICE_DROPIN,
        "# Written by eks-node-agent (spec.ecs): the daemon runs as an ECS container instance's.\n\
         [Service]\n\
         Environment=EKS_NODE_AGENT_RUN_ARGS=--ecs\n",
        &[ecs_model::AGENT_UNIT],
    ));
    files.extend(system::environment_dropins_for(
        config,
        &[ecs_model::DOCKER_UNIT, ecs_model::ECS_UNIT],
    ));
    files.extend(system::resolved_dropin(config));
    services.push(ServiceSpec {
        unit: ecs_model::ECS_UNIT.into(),
        wait_for_socket: None,
    });
    Plan {
        files,
        sysctls: Vec::new(),
        actions: Vec::new(),
        storage: None,
        services,
    }
}
