//! Amazon ECS container instances. On EC2: the instance identity document from IMDS (its ID,
//! type, zone and region). On ECS Anywhere: the SSM managed instance ID of a registered host,
//! or, with IAM Roles Anywhere, a first session from CreateSession with the host's
//! certificate (its credentials become the file the ECS agent reads, and a failure here stops
//! `init` before anything is written).

use std::sync::Arc;

use crate::auth::SystemClock;
use crate::auth::rolesanywhere::{self, NodeIdentity, RolesAnywhere};
use crate::facts::Error;
use crate::model::ecs::FileCredentials;
use crate::model::{AvailabilityZone, Discovered, Instance, InstanceId, InstanceType, Region};

/// What ECS discovery needs from the config.
#[derive(Debug, Clone)]
pub struct EcsRequest {
    /// ECS Anywhere (`spec.ecs.external`): no IMDS.
    pub external: bool,
    /// An SSM activation (the managed instance ID is read when registered).
    pub ssm: bool,
    /// IAM Roles Anywhere: the identity to create the first session with.
    pub roles_anywhere: Option<Box<NodeIdentity>>,
}

pub(super) async fn discover(req: &EcsRequest, ctx: &super::Context) -> Result<Discovered, Error> {
    let mut found = Discovered::default();
    if !req.external {
        let doc = ctx.imds.identity_document().await?;
        let region = Region::parse(&doc.region, "the instance identity document")?;
        let domain = ctx.imds.domain().await.unwrap_or_default();
        found.instance = Some(Instance {
            instance_id: InstanceId::parse(&doc.instance_id)?,
            instance_type: InstanceType::parse(&doc.instance_type)?,
            availability_zone: AvailabilityZone::parse(&doc.availability_zone)?,
            region,
            domain,
            private_ipv4: doc.private_ip.map(Into::into),
            ipv6: None,
            private_dns_name: None,
            vpc_ipv4_cidrs: Vec::new(),
            target_lifecycle_state: None,
            tags: None,
        });
        return Ok(found);
    }
    if req.ssm {
        found.ssm_managed_instance_id = crate::facts::host::ssm_managed_instance_id(&ctx.root);
    }
    if let Some(identity) = &req.roles_anywhere {
        let client = RolesAnywhere::for_node(identity, Arc::new(SystemClock))?;
        let creds = client.create_session().await?;
        tracing::info!(access_key_id = %creds.access_key_id,
            expiration = %crate::model::text::rfc3339(creds.expiration),
            "IAM Roles Anywhere session for the ECS agent's credentials file");
        found.ecs_file_credentials = Some(FileCredentials {
            contents: rolesanywhere::shared_credentials_file(&creds),
        });
    }
    Ok(found)
}
