//! The `credentials` check of `status`: the node's own AWS credentials resolve, from the source
//! `init` and the kubelet's token use ([`crate::config::NodeConfig::credential_source`]): IAM
//! Roles Anywhere or the SSM agent's file on hybrid nodes, else the standard chain. The region
//! comes first (the config, the environment or profile, else on EC2 the instance identity
//! document).

use aws_credential_types::Credentials;

use super::Outcome;
use super::status::{Inputs, fail, ok};
use crate::auth::credentials::{self, Source};
use crate::config::NodeConfig;
use crate::model::Region;
use crate::model::text::error_chain;

/// Where the credentials came from and until when they are valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialsFound {
    /// A secret-free name of the source (`IAM Roles Anywhere ...`, `SSM credentials file ...`).
    pub source: String,
    /// Expiration, RFC 3339, when temporary.
    pub expires: Option<String>,
}

/// The `credentials` check. `fix` is the node-kind-specific advice for a failure.
pub fn check(found: &Result<CredentialsFound, String>, fix: &str) -> Outcome {
    match found {
        Ok(c) => ok(match &c.expires {
            Some(t) => format!("resolved from {} (temporary, expire {t})", c.source),
            None => format!("resolved from {} (long-term keys)", c.source),
        }),
        Err(e) => fail("CredentialsUnavailable", e.clone(), fix),
    }
}

/// What to do when no credentials resolve, by node kind.
pub fn fix_for(config: &NodeConfig) -> &'static str {
    let hybrid = config.spec.hybrid.as_ref();
    if hybrid.is_some_and(|h| h.iam_roles_anywhere.is_some()) {
        "check spec.hybrid.iamRolesAnywhere: the certificate and key exist and match, the certificate chains to the trust anchor, the profile lists the role and the role trusts rolesanywhere.amazonaws.com; try `eks-node-agent credentials --certificate ... --role-arn ...` by hand"
    } else if hybrid.is_some() {
        "register the host with its SSM hybrid activation (`eks-node-agent init` runs `amazon-ssm-agent -register`) and check that amazon-ssm-agent is running: it keeps /root/.aws/credentials (AWS_SHARED_CREDENTIALS_FILE) fresh"
    } else {
        "attach an instance profile with the node role to the instance and keep IMDSv2 reachable (hop limit 2 when pods use it), or provide credentials through AWS_PROFILE / the environment; set spec.cluster.region or AWS_REGION when no region is found"
    }
}

/// Credentials that resolved: the keys (for STS and DescribeCluster), where they came from,
/// and the region they are used in.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The keys.
    pub credentials: Credentials,
    /// Their source and expiry, for the report.
    pub found: CredentialsFound,
    /// The region.
    pub region: Region,
}

/// Region, then credentials: Roles Anywhere or the SSM file on hybrid nodes, else the
/// standard chain (`AWS_PROFILE` when set).
pub async fn resolve(inputs: &Inputs) -> Result<Resolved, String> {
    let config = &inputs.config;
    let env = inputs.env.as_ref();
    let region = resolve_region(inputs).await?;
    let mut source = config.credential_source(env).map_err(|e| error_chain(&e))?;
    if let Source::RolesAnywhere(node) = &mut source
        && let Some(endpoint) = &inputs.rolesanywhere_endpoint
    {
        node.endpoint = Some(endpoint.clone());
    }
    let provider = credentials::provider(&source, &region, env)
        .await
        .map_err(|e| error_chain(&e))?;
    let name = match &source {
        Source::Chain if credentials::env_has_static_keys(env) => {
            "the environment (AWS_ACCESS_KEY_ID)".to_owned()
        }
        Source::Chain => "the default chain".to_owned(),
        Source::SsmFile(p) => format!("the SSM credentials file {}", p.display()),
        Source::RolesAnywhere(node) => format!(
            "IAM Roles Anywhere with certificate {}",
            node.certificate.display()
        ),
        other => other.name(),
    };
    let keys = credentials::fetch(&provider, &name)
        .await
        .map_err(|e| error_chain(&e))?;
    let found = CredentialsFound {
        source: name,
        expires: keys.expiry().map(crate::model::text::rfc3339),
    };
    Ok(Resolved {
        credentials: keys,
        found,
        region,
    })
}

/// `spec.cluster.region`, else `AWS_REGION`/`AWS_DEFAULT_REGION`/the profile's, else (EC2) the
/// instance identity document.
async fn resolve_region(inputs: &Inputs) -> Result<Region, String> {
    if let Some(r) = inputs.config.spec.cluster.region.as_deref() {
        return Region::parse(r, "spec.cluster.region").map_err(|e| error_chain(&e));
    }
    if let Some(r) = inputs
        .config
        .spec
        .ecs
        .as_ref()
        .and_then(|e| e.region.as_deref())
    {
        return Region::parse(r, "spec.ecs.region").map_err(|e| error_chain(&e));
    }
    let env = inputs.env.as_ref();
    let profile = env("AWS_PROFILE");
    match credentials::resolve_region(None, profile.as_deref(), env).await {
        Ok(r) => Ok(r),
        Err(e) if inputs.config.is_hybrid() => Err(error_chain(&e)),
        Err(_) => {
            let imds = crate::facts::imds::Imds::new().map_err(|e| error_chain(&e))?;
            let doc = imds.identity_document().await.map_err(|e| {
                format!(
                    "no region configured and IMDS has none: {}",
                    error_chain(&e)
                )
            })?;
            Region::parse(&doc.region, "the instance identity document")
                .map_err(|e| error_chain(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    #[test]
    fn found_or_the_fix_of_the_node_kind() {
        let found = CredentialsFound {
            source: "the default chain".into(),
            expires: Some("2030-01-01T00:00:00Z".into()),
        };
        let ok = check(&Ok(found), "unused");
        assert_eq!(ok.status, Status::Ok);
        assert!(
            ok.evidence.contains("temporary, expire 2030"),
            "{}",
            ok.evidence
        );
        let mut config = NodeConfig::default();
        let failed = check(&Err("no keys".into()), fix_for(&config));
        assert_eq!(
            (failed.status, failed.reason.as_str()),
            (Status::Fail, "CredentialsUnavailable")
        );
        assert!(failed.fix.contains("instance profile"), "{}", failed.fix);
        config.spec.hybrid = Some(Default::default());
        assert!(fix_for(&config).contains("amazon-ssm-agent"));
    }
}
