//! What is true about this host: the local host, IMDS, the EC2 API and the EKS API.
//!
//! [`discover`] reads IMDS (concurrently), then calls EC2 DescribeInstances and, only when the
//! configuration lacks the API server endpoint, the CA or the service CIDR, EKS
//! DescribeCluster, concurrently, all within a total deadline. Values set in the configuration
//! are never replaced by discovered ones: the caller merges, the facts only report.

pub mod cluster_info;
pub mod command;
pub mod disks;
pub mod docker;
pub mod ec2;
pub mod ecs_agent;
pub mod eks;
pub mod host;
pub mod imds;
pub mod instance_types;
pub mod pci;
pub mod provider;

use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use serde::Serialize;

use crate::net::ProxySettings;

/// Total time discovery may take: IMDS, then EC2 and EKS (which may wait for a cluster that is
/// being created).
pub const DISCOVERY_DEADLINE: Duration = Duration::from_secs(20 * 60);
/// TCP connect timeout of EC2/EKS calls.
pub const AWS_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Timeout of one EC2/EKS HTTP attempt.
pub const AWS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of one EC2/EKS operation, its retries included.
pub const AWS_OPERATION_TIMEOUT: Duration = Duration::from_secs(45);
/// Attempts per EC2/EKS operation (the SDK's standard retry mode, with backoff).
pub const AWS_MAX_ATTEMPTS: u32 = 5;

/// Errors discovering facts. Each wrapped error names its source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading IMDS failed.
    #[error(transparent)]
    Imds(#[from] imds::Error),
    /// EC2 failed.
    #[error(transparent)]
    Ec2(#[from] ec2::Error),
    /// EKS failed.
    #[error(transparent)]
    Eks(#[from] eks::Error),
    /// The host has no CA certificates, so no TLS connection to AWS can be verified.
    #[error(
        "no CA certificates found on this host ({detail}): TLS connections to the AWS APIs cannot be verified. Fix: install the ca-certificates package, or point SSL_CERT_FILE/SSL_CERT_DIR at a CA bundle"
    )]
    NoTrustStore {
        /// What the loader reported.
        detail: String,
    },
    /// A value read from IMDS or an API that does not parse into its type.
    #[error("an instance fact is malformed: {0}")]
    Invalid(#[from] crate::model::Invalid),
    /// DescribeInstanceTypes failed.
    #[error(transparent)]
    InstanceTypes(#[from] instance_types::Error),
    /// kubeadm's cluster-info discovery failed or refused.
    #[error(transparent)]
    ClusterInfo(#[from] cluster_info::Error),
    /// The node's credentials could not be had.
    #[error(transparent)]
    Credentials(#[from] crate::auth::Error),
    /// DescribeCluster for a hybrid node failed while the config needs its answer.
    #[error(
        "describing hybrid cluster {cluster} in {region} (needed because spec.cluster lacks apiServerEndpoint, certificateAuthority or cidr; set them, or grant the node's role eks:DescribeCluster)"
    )]
    DescribeHybridCluster {
        /// The cluster.
        cluster: String,
        /// Its region.
        region: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// An Outposts API server's name does not resolve.
    #[error(
        "cannot resolve {host}, the host of the API server {endpoint}, for the /etc/hosts block of the local cluster (after {attempts} attempt(s)); check the VPC's DNS resolution, or set spec.cluster.apiServerEndpoint to an address"
    )]
    ApiServerAddress {
        /// The endpoint.
        endpoint: String,
        /// Its host name.
        host: String,
        /// Attempts made.
        attempts: u32,
        /// The last resolver error.
        #[source]
        source: std::io::Error,
    },
    /// Reading the instance-store disks failed.
    #[error(transparent)]
    Disks(#[from] disks::Error),
    /// Reading the host's facts did not finish.
    #[error("reading the host's facts did not finish")]
    HostFacts(#[source] tokio::task::JoinError),
    /// The whole discovery took too long.
    #[error("discovering the instance (IMDS, EC2, EKS) did not finish within {deadline:.0?}")]
    Deadline {
        /// The deadline.
        deadline: Duration,
    },
}

impl crate::exit::Classify for Error {
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            // A malformed AWS_EC2_METADATA_SERVICE_ENDPOINT(_MODE) is the user's input.
            Error::Imds(
                imds::Error::InvalidEndpoint { .. } | imds::Error::InvalidEndpointMode { .. },
            ) => crate::exit::Code::BadInput,
            Error::InstanceTypes(e) => e.exit_code(),
            Error::Credentials(e) => e.exit_code(),
            Error::DescribeHybridCluster { source, .. } => source.exit_code(),
            _ => crate::exit::Code::Failure,
        }
    }
}

/// Everything discovered about this EC2 instance and its cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Facts {
    /// From IMDS: identity document (region, instance ID and type, AZ, account, private IP),
    /// primary MAC and interface (IPs, VPC and subnet CIDRs), domain, partition, placement.
    pub instance: imds::InstanceMetadata,
    /// `PrivateDnsName` from EC2 DescribeInstances.
    pub private_dns_name: String,
    /// From EKS DescribeCluster; `None` when the configuration had the endpoint, the CA and
    /// the service CIDR, so the call was skipped.
    pub cluster: Option<eks::ClusterDetails>,
}

impl Facts {
    /// The region (from the identity document).
    pub fn region(&self) -> &str {
        &self.instance.identity.region
    }

    /// The instance type.
    pub fn instance_type(&self) -> &str {
        &self.instance.identity.instance_type
    }

    /// The instance ID.
    pub fn instance_id(&self) -> &str {
        &self.instance.identity.instance_id
    }
}

/// Waits and deadlines of discovery; production values are the named constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Total deadline.
    pub deadline: Duration,
    /// Waiting for the private DNS name.
    pub dns: ec2::DnsWait,
    /// Waiting for a cluster being created.
    pub creating: eks::CreatingWait,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: DISCOVERY_DEADLINE,
            dns: ec2::DnsWait::default(),
            creating: eks::CreatingWait::default(),
        }
    }
}

/// What discovery needs to know from the configuration and the command line.
#[derive(Debug, Clone, Default)]
pub struct DiscoverInput {
    /// `spec.cluster.name`.
    pub cluster_name: String,
    /// `spec.cluster.apiServerEndpoint`, when set.
    pub api_server_endpoint: Option<String>,
    /// `spec.cluster.certificateAuthority`, when set.
    pub certificate_authority: Option<Vec<u8>>,
    /// `spec.cluster.cidr`, when set.
    pub service_cidr: Option<String>,
    /// The tag key prefix of the instance tags that become node labels
    /// (`spec.instanceTagLabels`); `None` reads no tags.
    pub tag_label_prefix: Option<String>,
    /// EC2 endpoint override (else the SDK's resolution, including `AWS_ENDPOINT_URL_EC2`).
    pub ec2_endpoint: Option<String>,
    /// EKS endpoint override (else the SDK's resolution, including `AWS_ENDPOINT_URL_EKS`).
    pub eks_endpoint: Option<String>,
    /// Credentials for EC2/EKS; `None` uses the default aws-config chain.
    pub credentials: Option<SharedCredentialsProvider>,
    /// Proxy for EC2/EKS; `None` reads the process environment.
    pub proxy: Option<ProxySettings>,
    /// Waits and deadlines.
    pub limits: Limits,
}

impl DiscoverInput {
    /// Whether DescribeCluster is needed: something the node needs is not in the configuration.
    pub fn needs_describe_cluster(&self) -> bool {
        self.api_server_endpoint.is_none()
            || self.certificate_authority.is_none()
            || self.service_cidr.is_none()
    }
}

/// The SDK's HTTPS client, through the proxy when one is set.
pub(crate) fn http_client(
    proxy: &ProxySettings,
) -> Option<aws_smithy_runtime_api::client::http::SharedHttpClient> {
    use aws_smithy_http_client::{Builder, Connector, tls};
    let config = match proxy.proxy_config() {
        Ok(Some(c)) => c,
        Ok(None) => return None,
        Err(reason) => {
            tracing::warn!(%reason, "ignoring the malformed proxy setting; AWS calls go direct");
            return None;
        }
    };
    tracing::debug!(https = ?proxy.https, http = ?proxy.http, no_proxy = ?proxy.no_proxy, "AWS calls go through the proxy");
    Some(
        Builder::new().build_with_connector_fn(move |settings, components| {
            let mut b = Connector::builder().proxy_config(config.clone());
            if let Some(s) = settings {
                b = b.connector_settings(s.clone());
            }
            if let Some(sleep) = components.and_then(|c| c.sleep_impl()) {
                b = b.sleep_impl(sleep);
            }
            b.tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .build()
        }),
    )
}

/// Checks that the host has CA certificates before any AWS SDK client is built (the SDK's
/// TLS set-up aborts the process without them rather than returning an error).
pub fn check_trust_store() -> Result<(), Error> {
    let found = rustls_native_certs::load_native_certs();
    if found.certs.is_empty() {
        let detail = if found.errors.is_empty() {
            "the system store is empty".to_owned()
        } else {
            found
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        };
        return Err(Error::NoTrustStore { detail });
    }
    Ok(())
}

/// The shared AWS SDK config: region, timeouts, retries, and credentials (given or the
/// default chain); the proxy from the process environment.
pub async fn sdk_config(region: &str, credentials: Option<SharedCredentialsProvider>) -> SdkConfig {
    sdk_config_with(region, credentials, &ProxySettings::from_process_env()).await
}

/// [`sdk_config`] with explicit proxy settings.
pub async fn sdk_config_with(
    region: &str,
    credentials: Option<SharedCredentialsProvider>,
    proxy: &ProxySettings,
) -> SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(AWS_CONNECT_TIMEOUT)
        .operation_attempt_timeout(AWS_ATTEMPT_TIMEOUT)
        .operation_timeout(AWS_OPERATION_TIMEOUT)
        .build();
    let retries = aws_config::retry::RetryConfig::standard().with_max_attempts(AWS_MAX_ATTEMPTS);
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .timeout_config(timeouts)
        .retry_config(retries);
    if let Some(c) = credentials {
        loader = loader.credentials_provider(c);
    }
    if let Some(client) = http_client(proxy) {
        loader = loader.http_client(client);
    }
    loader.load().await
}

/// Discovers the facts: IMDS first (concurrent reads), then DescribeInstances and, when
/// needed, DescribeCluster concurrently. Bounded by `input.limits.deadline`.
pub async fn discover(imds: &imds::Imds, input: &DiscoverInput) -> Result<Facts, Error> {
    let deadline = input.limits.deadline;
    match tokio::time::timeout(deadline, discover_inner(imds, input)).await {
        Ok(result) => result,
        Err(_) => Err(Error::Deadline { deadline }),
    }
}

async fn discover_inner(imds: &imds::Imds, input: &DiscoverInput) -> Result<Facts, Error> {
    let started = Instant::now();
    // Reading the system's CA certificates (milliseconds of file reads and parsing) overlaps
    // the IMDS reads.
    let trust_store = tokio::task::spawn_blocking(check_trust_store);
    let instance = imds.instance_metadata().await?;
    tracing::debug!(
        instance_id = %instance.identity.instance_id,
        instance_type = %instance.identity.instance_type,
        region = %instance.identity.region,
        elapsed = ?started.elapsed(),
        "read IMDS"
    );
    trust_store.await.unwrap_or_else(|e| {
        Err(Error::NoTrustStore {
            detail: format!("reading the store did not finish: {e}"),
        })
    })?;
    let proxy = input
        .proxy
        .clone()
        .unwrap_or_else(ProxySettings::from_process_env);
    let sdk = sdk_config_with(&instance.identity.region, input.credentials.clone(), &proxy).await;
    let ec2 = ec2::Ec2::new(&sdk, input.ec2_endpoint.as_deref());
    let dns = ec2.private_dns_name(&instance.identity.instance_id, input.limits.dns);
    let cluster = async {
        if !input.needs_describe_cluster() {
            tracing::debug!(cluster = %input.cluster_name, "endpoint, CA and service CIDR are configured; skipping DescribeCluster");
            return Ok(None);
        }
        let eks = eks::Eks::new(&sdk, input.eks_endpoint.as_deref());
        let need_ca = input.certificate_authority.is_none();
        eks.cluster_details(&input.cluster_name, need_ca, input.limits.creating)
            .await
            .map(Some)
    };
    let (dns, cluster) = tokio::join!(dns, cluster);
    let facts = Facts {
        instance,
        private_dns_name: dns?,
        cluster: cluster?,
    };
    tracing::info!(
        instance_id = %facts.instance_id(),
        private_dns_name = %facts.private_dns_name,
        described_cluster = facts.cluster.is_some(),
        elapsed = ?started.elapsed(),
        "discovered the instance"
    );
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_cluster_only_when_something_is_missing() {
        let mut input = DiscoverInput {
            cluster_name: "c".into(),
            api_server_endpoint: Some("https://x".into()),
            certificate_authority: Some(b"pem".to_vec()),
            service_cidr: Some("10.100.0.0/16".into()),
            ..DiscoverInput::default()
        };
        assert!(!input.needs_describe_cluster());
        input.service_cidr = None;
        assert!(input.needs_describe_cluster());
    }
}
