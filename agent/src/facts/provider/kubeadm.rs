//! kubeadm token discovery (EKS Anywhere): the API server and CA from the verified
//! `cluster-info` ConfigMap. Reads only.

use std::time::Duration;

use crate::facts::{Error, cluster_info};
use crate::model::{BootstrapToken, CaPin, Cluster, Discovered};

/// What kubeadm discovery needs from `spec.kubeadm` and `spec.cluster`.
#[derive(Debug, Clone)]
pub struct KubeadmRequest {
    /// `spec.cluster.apiServerEndpoint`: where `cluster-info` is read.
    pub endpoint: String,
    /// `spec.kubeadm.bootstrapToken`.
    pub token: BootstrapToken,
    /// `spec.kubeadm.caCertHashes`.
    pub pins: Vec<CaPin>,
    /// `spec.kubeadm.discoveryTimeoutSeconds`, else kubeadm's default.
    pub timeout: Duration,
}

pub(super) async fn discover(req: &KubeadmRequest) -> Result<Discovered, Error> {
    let limits = cluster_info::Limits {
        timeout: req.timeout,
        ..cluster_info::Limits::default()
    };
    let verified = cluster_info::discover(&req.endpoint, &req.token, &req.pins, &limits).await?;
    Ok(Discovered {
        cluster: Cluster {
            endpoint: Some(verified.server),
            certificate_authority_pem: Some(String::from_utf8_lossy(&verified.ca_pem).into_owned()),
            ..Cluster::default()
        },
        ..Discovered::default()
    })
}
