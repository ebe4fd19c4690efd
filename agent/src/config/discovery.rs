//! What discovery and the node's own AWS calls need from the NodeConfig: the provider of the
//! node's kind with its request, where the node's credentials come from, and the proxy. The
//! one place that reads these parts of the config for `init` and `status`.

use std::path::PathBuf;
use std::time::Duration;

use super::{Error, NodeConfig};
use crate::auth::credentials::{Env, Source};
use crate::auth::rolesanywhere::{self, NodeIdentity, SessionParams};
use crate::facts::DiscoverInput;
use crate::facts::cluster_info::DEFAULT_DISCOVERY_TIMEOUT;
use crate::facts::provider::{HybridRequest, KubeadmRequest, Provider};
use crate::model::paths::{ROLES_ANYWHERE_CERTIFICATE, ROLES_ANYWHERE_PRIVATE_KEY};
use crate::model::{BootstrapToken, CaPin, Region};
use crate::net::ProxySettings;

/// The units whose `spec.instance.environment` entry sets the agent's own proxy, most
/// specific first.
const AGENT_ENVIRONMENT_UNITS: [&str; 3] = [
    "eks-node-agent-init",
    "eks-node-agent-init.service",
    "default",
];

fn setting(path: &str, reason: impl std::fmt::Display) -> Error {
    Error::Setting {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

impl NodeConfig {
    /// The discovery provider of this node's kind, with what it needs from the config.
    /// `env` is the process environment (credentials files, endpoint overrides, proxies).
    pub fn discovery(&self, env: &Env) -> Result<Provider, Error> {
        let cluster = &self.spec.cluster;
        if let Some(kubeadm) = &self.spec.kubeadm {
            let token =
                BootstrapToken::parse(kubeadm.bootstrap_token.as_deref().unwrap_or_default())
                    .map_err(|e| setting("spec.kubeadm.bootstrapToken", e))?;
            let pins = kubeadm
                .ca_cert_hashes
                .iter()
                .map(|h| CaPin::parse(h))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| setting("spec.kubeadm.caCertHashes", e))?;
            let endpoint = cluster.api_server_endpoint.clone().ok_or_else(|| {
                setting(
                    "spec.cluster.apiServerEndpoint",
                    "is required with spec.kubeadm",
                )
            })?;
            return Ok(Provider::Kubeadm(KubeadmRequest {
                endpoint,
                token,
                pins,
                timeout: kubeadm
                    .discovery_timeout_seconds
                    .map_or(DEFAULT_DISCOVERY_TIMEOUT, Duration::from_secs),
            }));
        }
        let proxy = self.agent_proxy(env);
        if let Some(hybrid) = &self.spec.hybrid {
            let region = Region::parse(
                cluster.region.as_deref().unwrap_or_default(),
                "spec.cluster.region",
            )
            .map_err(|e| setting("spec.cluster.region", e))?;
            return Ok(Provider::Hybrid(HybridRequest {
                cluster_name: cluster.name.clone().unwrap_or_default(),
                credentials: self.credential_source(env)?,
                region,
                api_server_endpoint: cluster.api_server_endpoint.clone(),
                complete: cluster.api_server_endpoint.is_some()
                    && cluster.certificate_authority.is_some()
                    && cluster.cidr.is_some(),
                need_ca: cluster.certificate_authority.is_none(),
                node_ip_set: self.spec.kubelet.flag("node-ip").is_some(),
                proxy,
                ssm: hybrid.ssm.is_some(),
            }));
        }
        let ca = cluster
            .certificate_authority
            .as_deref()
            .map(super::validate::ca_pem)
            .transpose()
            .map_err(|e| setting("spec.cluster.certificateAuthority", e))?;
        let input = DiscoverInput {
            cluster_name: cluster.name.clone().unwrap_or_default(),
            api_server_endpoint: cluster.api_server_endpoint.clone(),
            certificate_authority: ca,
            service_cidr: cluster.cidr.clone(),
            tag_label_prefix: Some(self.tag_label_prefix().to_owned()),
            proxy: Some(proxy),
            ..DiscoverInput::default()
        };
        Ok(if self.is_outpost() {
            Provider::Outpost(input)
        } else {
            Provider::Ec2(input)
        })
    }

    /// Where this node's own AWS credentials come from: IAM Roles Anywhere with the node's
    /// certificate or the SSM agent's credentials file on hybrid nodes, else the standard chain
    /// (`AWS_PROFILE` when set; on EC2 that ends at the instance role).
    pub fn credential_source(&self, env: &Env) -> Result<Source, Error> {
        let Some(hybrid) = &self.spec.hybrid else {
            return Ok(env("AWS_PROFILE").map_or(Source::Chain, Source::Profile));
        };
        let Some(ira) = &hybrid.iam_roles_anywhere else {
            return Ok(Source::SsmFile(crate::auth::ssm::credentials_file(env)));
        };
        const P: &str = "spec.hybrid.iamRolesAnywhere";
        let anchor = ira.trust_anchor_arn.clone().unwrap_or_default();
        // CreateSession goes to the trust anchor's region (as aws_signing_helper does); the
        // cluster's region when the ARN has none.
        let region_text = anchor
            .split(':')
            .nth(3)
            .filter(|r| !r.is_empty())
            .or(self.spec.cluster.region.as_deref())
            .unwrap_or_default();
        let region = Region::parse(region_text, "spec.hybrid.iamRolesAnywhere.trustAnchorArn")
            .map_err(|e| setting(&format!("{P}.trustAnchorArn"), e))?;
        Ok(Source::RolesAnywhere(Box::new(NodeIdentity {
            certificate: PathBuf::from(
                ira.certificate_path
                    .as_deref()
                    .unwrap_or(ROLES_ANYWHERE_CERTIFICATE),
            ),
            private_key: PathBuf::from(
                ira.private_key_path
                    .as_deref()
                    .unwrap_or(ROLES_ANYWHERE_PRIVATE_KEY),
            ),
            session: SessionParams {
                trust_anchor_arn: anchor,
                profile_arn: ira.profile_arn.clone().unwrap_or_default(),
                role_arn: ira.role_arn.clone().unwrap_or_default(),
                role_session_name: ira.node_name.clone().filter(|n| !n.is_empty()),
                duration_secs: rolesanywhere::DEFAULT_DURATION_SECS,
            },
            region,
            endpoint: env(rolesanywhere::ENDPOINT_ENV),
            ca_bundle: env("AWS_CA_BUNDLE").map(PathBuf::from),
            proxy: self.agent_proxy(env),
        })))
    }

    /// The proxy for the agent's own AWS calls: its process environment, else the NodeConfig's
    /// `spec.instance.environment` (`default`, overridden by an `eks-node-agent-init` entry).
    pub fn agent_proxy(&self, env: &Env) -> ProxySettings {
        let units = &self.spec.instance.environment;
        let from_config = ProxySettings::from_vars(|k| {
            AGENT_ENVIRONMENT_UNITS
                .iter()
                .find_map(|unit| units.get(*unit).and_then(|vars| vars.get(k)).cloned())
        });
        ProxySettings::from_vars(env).or(from_config)
    }
}
