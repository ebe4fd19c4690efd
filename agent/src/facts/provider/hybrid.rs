//! EKS Hybrid Nodes (on-prem): the SSM managed instance ID when the host is registered, the
//! local address that routes to the API server, and DescribeCluster with the node's own
//! credentials (IAM Roles Anywhere, or the credentials file the SSM agent keeps).

use std::net::IpAddr;
use std::time::Duration;

use crate::auth::credentials::{self, Source};
use crate::facts::{Error, eks};
use crate::model::{Cluster, Discovered, Region};
use crate::net::ProxySettings;

/// How long resolving the API server's name may take (for the node IP's route).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// What hybrid discovery needs from the config.
#[derive(Debug, Clone)]
pub struct HybridRequest {
    /// `spec.cluster.name`.
    pub cluster_name: String,
    /// `spec.cluster.region`.
    pub region: Region,
    /// The node's credentials: IAM Roles Anywhere or the SSM agent's file.
    pub credentials: Source,
    /// `spec.cluster.apiServerEndpoint`, when set.
    pub api_server_endpoint: Option<String>,
    /// Whether the config has the endpoint, the CA and the service CIDR: then DescribeCluster
    /// only adds the remote node networks, and its failure is a warning.
    pub complete: bool,
    /// Whether the config lacks the CA (DescribeCluster must return one).
    pub need_ca: bool,
    /// Whether `--node-ip` is set (then no route to the API server is looked up).
    pub node_ip_set: bool,
    /// The proxy for the AWS calls.
    pub proxy: ProxySettings,
    /// An SSM hybrid activation (its managed instance ID names the node).
    pub ssm: bool,
}

pub(super) async fn discover(
    req: &HybridRequest,
    ctx: &super::Context,
) -> Result<Discovered, Error> {
    let mut found = Discovered::default();
    if req.ssm {
        found.ssm_managed_instance_id = crate::facts::host::ssm_managed_instance_id(&ctx.root);
    }
    found.cluster = describe_cluster(req).await?;
    let endpoint = req
        .api_server_endpoint
        .clone()
        .or_else(|| found.cluster.endpoint.clone());
    if let Some(endpoint) = endpoint.filter(|_| !req.node_ip_set) {
        found.api_route_ip = route_to(&endpoint).await;
    }
    Ok(found)
}

/// The local address of the interface that routes to the API server at `endpoint`; `None`
/// when it cannot be resolved in time.
async fn route_to(endpoint: &str) -> Option<IpAddr> {
    let ip = tokio::time::timeout(
        RESOLVE_TIMEOUT,
        crate::facts::host::route_to_endpoint(endpoint),
    )
    .await
    .ok()
    .and_then(Result::ok);
    tracing::debug!(endpoint, local = ?ip, "route to the API server");
    ip
}

/// DescribeCluster with the node's own credentials: the endpoint, CA and service CIDR when the
/// config lacks them (then a failure is an error), and the remote node networks the node IP
/// must be in (when the config is complete, a failure only skips that check, with a warning).
async fn describe_cluster(req: &HybridRequest) -> Result<Cluster, Error> {
    let described = async {
        crate::facts::check_trust_store()?;
        let env = credentials::process_env;
        let creds = credentials::provider(&req.credentials, &req.region, &env).await?;
        let sdk = crate::facts::sdk_config_with(req.region.as_str(), Some(creds), &req.proxy).await;
        let eks = eks::Eks::new(&sdk, None);
        Ok::<_, Error>(
            eks.cluster_details(&req.cluster_name, req.need_ca, eks::CreatingWait::default())
                .await?,
        )
    }
    .await;
    match described {
        Ok(d) => {
            let cidr = if d.ip_family == Some(eks::IpFamily::Ipv6) {
                d.service_ipv6_cidr
            } else {
                d.service_ipv4_cidr.or(d.service_ipv6_cidr)
            };
            tracing::info!(cluster = %req.cluster_name, remote_node_networks = ?d.remote_node_networks, "described the hybrid cluster");
            Ok(Cluster {
                endpoint: d.endpoint,
                certificate_authority_pem: d.certificate_authority_pem,
                service_cidr: cidr,
                id: d.id,
                remote_node_networks: d.remote_node_networks,
                ..Cluster::default()
            })
        }
        Err(e) if req.complete => {
            tracing::warn!(cluster = %req.cluster_name, error = %crate::model::text::error_chain(&e), "cannot describe the cluster; the node IP is not checked against its remote node networks");
            Ok(Cluster::default())
        }
        Err(e) => Err(Error::DescribeHybridCluster {
            cluster: req.cluster_name.clone(),
            region: req.region.to_string(),
            source: Box::new(e),
        }),
    }
}
