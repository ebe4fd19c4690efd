//! The resolved values of an ECS container instance: the region (the user's, else the
//! instance's), where its credentials come from, and the instance's ID.

use super::Error;
use crate::config::NodeConfig;
use crate::model::Discovered;
use crate::model::ecs::{EcsCredentials, EcsValues};

/// Resolves an ECS host's values from the config (which has `spec.ecs`) and what discovery
/// found. A user-set value always wins.
pub fn resolve(config: &NodeConfig, found: &Discovered) -> Result<EcsValues, Error> {
    let ecs = config.spec.ecs.clone().unwrap_or_default();
    let mut explain = std::collections::BTreeMap::new();
    let region = match (&ecs.region, &found.instance) {
        (Some(r), _) => {
            explain.insert("region".into(), format!("{r}: spec.ecs.region"));
            r.clone()
        }
        (None, Some(i)) => {
            explain.insert(
                "region".into(),
                format!("{}: the instance identity document", i.region),
            );
            i.region.to_string()
        }
        (None, None) => return Err(Error::EcsNoRegion),
    };
    let external = ecs.external.as_ref();
    let credentials = match external {
        None => EcsCredentials::InstanceRole,
        Some(e) if e.iam_roles_anywhere.is_some() => EcsCredentials::RolesAnywhere,
        Some(_) => EcsCredentials::Ssm,
    };
    let instance_id = found
        .instance
        .as_ref()
        .map(|i| i.instance_id.to_string())
        .or_else(|| {
            found
                .ssm_managed_instance_id
                .as_ref()
                .map(|n| n.as_str().to_owned())
        });
    Ok(EcsValues {
        cluster: ecs.cluster.clone().unwrap_or_default(),
        region,
        external: external.is_some(),
        credentials,
        instance_id,
        agent_binary: found.agent_binary.clone(),
        file_credentials: found.ecs_file_credentials.clone(),
        explain,
    })
}
