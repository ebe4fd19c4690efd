//! EKS DescribeCluster: API server endpoint, cluster CA, service CIDR, IP family, local
//! Outposts clusters and remote (hybrid) networks. Called only when the configuration lacks
//! the endpoint, the CA or the service CIDR; waits while the cluster is being created.

use std::time::{Duration, Instant};

use aws_sdk_eks::types::{Cluster, ClusterStatus};
use base64::Engine as _;
use ipnet::IpNet;
use serde::Serialize;

use crate::net::RetryPolicy;

/// How long to wait for a cluster in CREATING (or PENDING) to become usable.
pub const CLUSTER_CREATING_WAIT: Duration = Duration::from_secs(900);
/// First pause while the cluster is being created; doubled each time.
pub const CLUSTER_POLL_INITIAL_BACKOFF: Duration = Duration::from_secs(2);
/// Longest pause while the cluster is being created.
pub const CLUSTER_POLL_MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The JSON path of the CA in the DescribeCluster answer, as users see it in the AWS CLI.
pub const CA_FIELD: &str = "cluster.certificateAuthority.data";

/// Errors from EKS.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The call failed (after the SDK's own retries).
    #[error("EKS DescribeCluster for cluster {cluster:?} failed: {message}")]
    Call {
        /// The cluster asked about.
        cluster: String,
        /// The service error code and message, or the transport error.
        message: String,
        /// The SDK error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The cluster CA in the answer is not base64 of PEM certificates.
    #[error(
        "EKS DescribeCluster for cluster {cluster:?} returned an invalid {CA_FIELD}: {reason}; expected base64 of PEM certificate(s). Set cluster.certificateAuthority in the NodeConfig to skip this lookup"
    )]
    InvalidCertificateAuthority {
        /// The cluster asked about.
        cluster: String,
        /// What was wrong.
        reason: String,
    },
    /// A field the agent needs is missing or malformed in the answer.
    #[error(
        "EKS DescribeCluster for cluster {cluster:?} returned no usable {field}{detail}; set it in the NodeConfig (spec.cluster) instead"
    )]
    Field {
        /// The cluster asked about.
        cluster: String,
        /// The JSON path of the field.
        field: &'static str,
        /// Extra detail (empty or ": ...").
        detail: String,
    },
    /// The cluster is in a state nodes cannot join.
    #[error("EKS cluster {cluster:?} is {status}; nodes cannot join it")]
    Unusable {
        /// The cluster.
        cluster: String,
        /// Its status.
        status: String,
    },
    /// The cluster stayed in CREATING too long.
    #[error("EKS cluster {cluster:?} is still {status} after waiting {waited:.0?}")]
    StillCreating {
        /// The cluster.
        cluster: String,
        /// Its last status.
        status: String,
        /// How long it waited.
        waited: Duration,
    },
}

/// How long to wait while the cluster is being created (a parameter so tests can shorten it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreatingWait {
    /// Total wait.
    pub total: Duration,
    /// First pause, doubled each time.
    pub initial_backoff: Duration,
    /// Longest pause.
    pub max_backoff: Duration,
}

impl Default for CreatingWait {
    fn default() -> Self {
        CreatingWait {
            total: CLUSTER_CREATING_WAIT,
            initial_backoff: CLUSTER_POLL_INITIAL_BACKOFF,
            max_backoff: CLUSTER_POLL_MAX_BACKOFF,
        }
    }
}

/// The cluster's IP family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    /// Pods and services get IPv4 addresses.
    Ipv4,
    /// Pods and services get IPv6 addresses.
    Ipv6,
}

/// What DescribeCluster told about the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterDetails {
    /// The cluster name.
    pub name: String,
    /// `cluster.arn`.
    pub arn: Option<String>,
    /// `cluster.endpoint` (the API server URL).
    pub endpoint: Option<String>,
    /// PEM bytes of `cluster.certificateAuthority.data`, decoded and checked. `None` when the
    /// configuration already had a CA (the API's value is then not used).
    pub certificate_authority_pem: Option<String>,
    /// `cluster.kubernetesNetworkConfig.serviceIpv4Cidr`.
    pub service_ipv4_cidr: Option<IpNet>,
    /// `cluster.kubernetesNetworkConfig.serviceIpv6Cidr`.
    pub service_ipv6_cidr: Option<IpNet>,
    /// `cluster.kubernetesNetworkConfig.ipFamily`.
    pub ip_family: Option<IpFamily>,
    /// A local cluster on AWS Outposts (control plane on the Outpost: `cluster.outpostConfig`).
    pub local_outpost: bool,
    /// `cluster.outpostConfig.outpostArns`.
    pub outpost_arns: Vec<String>,
    /// `cluster.id` (set for local Outposts clusters; the node joins with it).
    pub id: Option<String>,
    /// `cluster.remoteNetworkConfig.remoteNodeNetworks[].cidrs` (hybrid nodes).
    pub remote_node_networks: Vec<IpNet>,
    /// `cluster.remoteNetworkConfig.remotePodNetworks[].cidrs` (hybrid nodes).
    pub remote_pod_networks: Vec<IpNet>,
    /// `cluster.status` when it was read.
    pub status: String,
}

/// What to do given a cluster status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The cluster can be used.
    Ready,
    /// Wait and ask again.
    Wait,
    /// Give up: nodes cannot join.
    Fail,
}

/// Decides from the cluster status (pure).
pub fn next_step(status: Option<&ClusterStatus>) -> Next {
    match status {
        Some(ClusterStatus::Creating) | Some(ClusterStatus::Pending) => Next::Wait,
        Some(ClusterStatus::Deleting) | Some(ClusterStatus::Failed) => Next::Fail,
        // ACTIVE, UPDATING, unknown future values, and no status at all: use what is there.
        _ => Next::Ready,
    }
}

/// Decodes and checks `certificateAuthority.data`: base64 of one or more PEM certificates.
/// Returns the PEM text.
pub fn decode_certificate_authority(cluster: &str, data: Option<&str>) -> Result<String, Error> {
    let invalid = |reason: String| Error::InvalidCertificateAuthority {
        cluster: cluster.to_string(),
        reason,
    };
    let data = data
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .ok_or_else(|| invalid("the field is missing or empty".to_string()))?;
    let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let pem = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| invalid(format!("not base64 ({e})")))?;
    let certs = x509_cert::Certificate::load_pem_chain(&pem)
        .map_err(|e| invalid(format!("base64 decodes, but not to PEM certificates ({e})")))?;
    if certs.is_empty() {
        return Err(invalid("no certificate in the PEM data".to_string()));
    }
    String::from_utf8(pem).map_err(|_| invalid("the PEM data is not text".to_string()))
}

fn parse_cidr(cluster: &str, field: &'static str, value: &str) -> Result<IpNet, Error> {
    value.trim().parse().map_err(|e| Error::Field {
        cluster: cluster.to_string(),
        field,
        detail: format!(": {value:?} is not a CIDR ({e})"),
    })
}

fn parse_cidrs<'a>(
    cluster: &str,
    field: &'static str,
    values: impl Iterator<Item = &'a String>,
) -> Result<Vec<IpNet>, Error> {
    values.map(|c| parse_cidr(cluster, field, c)).collect()
}

/// Turns a DescribeCluster answer into [`ClusterDetails`] (pure). `need_ca`: decode and check
/// the CA (false when the configuration supplies one).
pub fn cluster_details(
    name: &str,
    cluster: &Cluster,
    need_ca: bool,
) -> Result<ClusterDetails, Error> {
    let certificate_authority_pem = if need_ca {
        Some(decode_certificate_authority(
            name,
            cluster.certificate_authority().and_then(|c| c.data()),
        )?)
    } else {
        None
    };
    let net = cluster.kubernetes_network_config();
    let service_ipv4_cidr = net
        .and_then(|n| n.service_ipv4_cidr())
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse_cidr(name, "cluster.kubernetesNetworkConfig.serviceIpv4Cidr", s))
        .transpose()?;
    let service_ipv6_cidr = net
        .and_then(|n| n.service_ipv6_cidr())
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse_cidr(name, "cluster.kubernetesNetworkConfig.serviceIpv6Cidr", s))
        .transpose()?;
    let ip_family = match net.and_then(|n| n.ip_family()).map(|f| f.as_str()) {
        Some("ipv4") => Some(IpFamily::Ipv4),
        Some("ipv6") => Some(IpFamily::Ipv6),
        _ => None,
    };
    let outpost = cluster.outpost_config();
    let remote = cluster.remote_network_config();
    let remote_node_networks = parse_cidrs(
        name,
        "cluster.remoteNetworkConfig.remoteNodeNetworks[].cidrs",
        remote
            .into_iter()
            .flat_map(|r| r.remote_node_networks())
            .flat_map(|n| n.cidrs()),
    )?;
    let remote_pod_networks = parse_cidrs(
        name,
        "cluster.remoteNetworkConfig.remotePodNetworks[].cidrs",
        remote
            .into_iter()
            .flat_map(|r| r.remote_pod_networks())
            .flat_map(|n| n.cidrs()),
    )?;
    let local_outpost = outpost.is_some();
    let id = cluster.id().map(str::to_string);
    if local_outpost && id.is_none() {
        return Err(Error::Field {
            cluster: name.to_string(),
            field: "cluster.id",
            detail: " (a local Outposts cluster needs it)".to_string(),
        });
    }
    Ok(ClusterDetails {
        name: name.to_string(),
        arn: cluster.arn().map(str::to_string),
        endpoint: cluster
            .endpoint()
            .map(str::to_string)
            .filter(|e| !e.is_empty()),
        certificate_authority_pem,
        service_ipv4_cidr,
        service_ipv6_cidr,
        ip_family,
        local_outpost,
        outpost_arns: outpost
            .map(|o| o.outpost_arns().to_vec())
            .unwrap_or_default(),
        id,
        remote_node_networks,
        remote_pod_networks,
        status: cluster
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
    })
}

/// Polls `describe` until the cluster is usable, waiting (bounded) while it is being created.
/// Generic over the call so the loop is tested without a network.
pub async fn wait_until_usable<F, Fut>(
    name: &str,
    wait: CreatingWait,
    mut describe: F,
) -> Result<Cluster, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Cluster, Error>>,
{
    let started = tokio::time::Instant::now();
    // The pauses are the retry policy's: capped doubling with jitter, so that nodes booted
    // together do not poll in step.
    let policy = RetryPolicy::until(wait.total, wait.initial_backoff, wait.max_backoff);
    let mut polls = 0u32;
    loop {
        polls += 1;
        let cluster = describe().await?;
        let status = cluster
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        match next_step(cluster.status()) {
            Next::Ready => return Ok(cluster),
            Next::Fail => {
                return Err(Error::Unusable {
                    cluster: name.to_string(),
                    status,
                });
            }
            Next::Wait => {
                let waited = started.elapsed();
                let pause = policy.jittered_backoff(polls);
                if waited + pause > wait.total {
                    return Err(Error::StillCreating {
                        cluster: name.to_string(),
                        status,
                        waited,
                    });
                }
                tracing::info!(cluster = name, %status, polls, waited_secs = waited.as_secs(), "EKS cluster is not active yet; waiting");
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// An EKS client.
#[derive(Debug, Clone)]
pub struct Eks {
    client: aws_sdk_eks::Client,
}

impl Eks {
    /// An EKS client from a shared SDK config; `endpoint` overrides the service endpoint
    /// (otherwise the SDK's resolution applies, including `AWS_ENDPOINT_URL_EKS`).
    pub fn new(sdk: &aws_config::SdkConfig, endpoint: Option<&str>) -> Eks {
        let mut b = aws_sdk_eks::config::Builder::from(sdk);
        if let Some(url) = endpoint {
            b = b.endpoint_url(url);
        }
        Eks {
            client: aws_sdk_eks::Client::from_conf(b.build()),
        }
    }

    /// DescribeCluster once.
    pub async fn describe(&self, name: &str) -> Result<Cluster, Error> {
        let out = self
            .client
            .describe_cluster()
            .name(name)
            .send()
            .await
            .map_err(|e| Error::Call {
                cluster: name.to_string(),
                message: super::ec2::sdk_message(&e),
                source: Box::new(e),
            })?;
        out.cluster.ok_or_else(|| Error::Field {
            cluster: name.to_string(),
            field: "cluster",
            detail: String::new(),
        })
    }

    /// DescribeCluster, waiting while the cluster is being created, then the details.
    pub async fn cluster_details(
        &self,
        name: &str,
        need_ca: bool,
        wait: CreatingWait,
    ) -> Result<ClusterDetails, Error> {
        let started = Instant::now();
        let cluster = wait_until_usable(name, wait, || self.describe(name)).await?;
        let details = cluster_details(name, &cluster, need_ca)?;
        tracing::debug!(cluster = name, status = %details.status, local_outpost = details.local_outpost, elapsed = ?started.elapsed(), "EKS DescribeCluster");
        Ok(details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_eks::types::{
        Certificate, KubernetesNetworkConfigResponse, OutpostConfigResponse,
        RemoteNetworkConfigResponse, RemoteNodeNetwork, RemotePodNetwork,
    };
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A self-signed certificate made for these tests.
    const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBfzCCASWgAwIBAgIUMnGKbeq3m3PqkkQSQQr/NQGMGKAwCgYIKoZIzj0EAwIw
FTETMBEGA1UEAwwKa3ViZXJuZXRlczAeFw0yNjExMjUxNjQyMTNaFw0zNjExMjIx
NjQyMTNaMBUxEzARBgNVBAMMCmt1YmVybmV0ZXMwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAS7BBJw8QO2htNYnZKbXtowjYSLeH8O6b1xsb8cnd6kfYd9YmtWk/l4
2xJpSKx9QKuAf2OuONwSxuqTQFHc9pMlo1MwUTAdBgNVHQ4EFgQU2dayg3RmGgOq
p+B5z5R0uLXSFuQwHwYDVR0jBBgwFoAU2dayg3RmGgOqp+B5z5R0uLXSFuQwDwYD
VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEAouN0IeTvRGriiLP8V0pL
XyM4j7Z9iUemNvJoJ2KaMs8CIG1iPV8SPEYnBA+2tTtnbD6wVr5fRyDeWJKub5Z+
DzD4
-----END CERTIFICATE-----
";

    fn b64(s: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn ca_must_be_base64_of_pem() {
        let pem = decode_certificate_authority("c", Some(&b64(TEST_CA_PEM.as_bytes())))
            .expect("valid CA");
        assert_eq!(pem, TEST_CA_PEM);
        let err = decode_certificate_authority("c", Some("Zm9v")).expect_err("base64 of 'foo'");
        let msg = err.to_string();
        assert!(
            msg.contains("DescribeCluster") && msg.contains(CA_FIELD),
            "{msg}"
        );
        let err =
            decode_certificate_authority("c", Some("@@not base64@@")).expect_err("not base64");
        assert!(err.to_string().contains("not base64"), "{err}");
        let err = decode_certificate_authority("c", None).expect_err("missing");
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn statuses_map_to_steps() {
        assert_eq!(next_step(Some(&ClusterStatus::Creating)), Next::Wait);
        assert_eq!(next_step(Some(&ClusterStatus::Pending)), Next::Wait);
        assert_eq!(next_step(Some(&ClusterStatus::Active)), Next::Ready);
        assert_eq!(next_step(Some(&ClusterStatus::Updating)), Next::Ready);
        assert_eq!(next_step(Some(&ClusterStatus::Failed)), Next::Fail);
        assert_eq!(next_step(Some(&ClusterStatus::Deleting)), Next::Fail);
    }

    fn cluster(status: ClusterStatus) -> Cluster {
        Cluster::builder().name("c").status(status).build()
    }

    /// Short real-time waits so the loop runs in milliseconds.
    const FAST: CreatingWait = CreatingWait {
        total: Duration::from_secs(5),
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
    };

    #[tokio::test]
    async fn waits_while_creating_then_returns() {
        let calls = AtomicU32::new(0);
        let wait = FAST;
        let got = wait_until_usable("c", wait, || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok(cluster(if n < 3 {
                    ClusterStatus::Creating
                } else {
                    ClusterStatus::Active
                }))
            }
        })
        .await
        .expect("becomes active");
        assert_eq!(got.status(), Some(&ClusterStatus::Active));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn gives_up_after_the_wait_and_fails_fast_on_failed() {
        let wait = CreatingWait {
            total: Duration::from_millis(50),
            ..FAST
        };
        let err = wait_until_usable("c", wait, || async { Ok(cluster(ClusterStatus::Creating)) })
            .await
            .expect_err("never active");
        assert!(matches!(err, Error::StillCreating { .. }), "{err}");
        let err = wait_until_usable("c", wait, || async { Ok(cluster(ClusterStatus::Failed)) })
            .await
            .expect_err("failed");
        assert!(err.to_string().contains("FAILED"), "{err}");
    }

    #[test]
    fn local_outposts_cluster_and_networks_are_read() {
        let c = Cluster::builder()
            .name("c")
            .id("0b8a1e4c-1234-4f4e-9a2b-123456789abc")
            .status(ClusterStatus::Active)
            .endpoint("https://example.invalid")
            .certificate_authority(
                Certificate::builder()
                    .data(b64(TEST_CA_PEM.as_bytes()))
                    .build(),
            )
            .kubernetes_network_config(
                KubernetesNetworkConfigResponse::builder()
                    .service_ipv4_cidr("172.20.0.0/16")
                    .ip_family(aws_sdk_eks::types::IpFamily::Ipv4)
                    .build(),
            )
            .outpost_config(
                OutpostConfigResponse::builder()
                    .outpost_arns(
                        "arn:aws:outposts:us-west-2:123456789012:outpost/op-0123456789abcdef0",
                    )
                    .control_plane_instance_type("m5.large")
                    .build()
                    .expect("outpost config"),
            )
            .remote_network_config(
                RemoteNetworkConfigResponse::builder()
                    .remote_node_networks(
                        RemoteNodeNetwork::builder().cidrs("10.200.0.0/16").build(),
                    )
                    .remote_pod_networks(RemotePodNetwork::builder().cidrs("10.201.0.0/16").build())
                    .build(),
            )
            .build();
        let d = cluster_details("c", &c, false).expect("details");
        assert!(d.local_outpost);
        assert_eq!(
            d.id.as_deref(),
            Some("0b8a1e4c-1234-4f4e-9a2b-123456789abc")
        );
        assert_eq!(
            d.service_ipv4_cidr,
            Some("172.20.0.0/16".parse().expect("cidr"))
        );
        assert_eq!(d.ip_family, Some(IpFamily::Ipv4));
        assert_eq!(
            d.remote_node_networks,
            vec!["10.200.0.0/16".parse::<IpNet>().expect("cidr")]
        );
        assert_eq!(d.remote_pod_networks.len(), 1);
        assert_eq!(d.certificate_authority_pem, None);
    }

    #[test]
    fn bad_service_cidr_names_the_field() {
        let c = Cluster::builder()
            .name("c")
            .kubernetes_network_config(
                KubernetesNetworkConfigResponse::builder()
                    .service_ipv4_cidr("nope")
                    .build(),
            )
            .build();
        let err = cluster_details("c", &c, false).expect_err("bad cidr");
        assert!(err.to_string().contains("serviceIpv4Cidr"), "{err}");
    }
}
