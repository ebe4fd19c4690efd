//! The resolved values render needs: what discovery found and compute derived, in one place.
//! Building this struct is the job of `init`; render only reads it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;

/// Which kind of node this is; it decides the join path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NodeKind {
    /// An EC2 instance in a region.
    Ec2,
    /// An EC2 instance on an Outpost joining a local cluster.
    Outpost,
    /// An on-prem host, IAM Roles Anywhere credentials.
    HybridRolesAnywhere,
    /// An on-prem host, SSM hybrid activation credentials.
    HybridSsm,
    /// A kubeadm-style join (EKS Anywhere): bootstrap token, CA pinned through cluster-info,
    /// kubelet TLS bootstrapping; no AWS credentials.
    Kubeadm,
}

impl NodeKind {
    /// On-prem (EKS Hybrid Nodes).
    pub fn is_hybrid(self) -> bool {
        matches!(self, NodeKind::HybridRolesAnywhere | NodeKind::HybridSsm)
    }

    /// Joins with kubelet TLS bootstrapping (a bootstrap kubeconfig; kubelet writes its own).
    pub fn tls_bootstraps(self) -> bool {
        matches!(self, NodeKind::Outpost | NodeKind::Kubeadm)
    }
}

/// Everything about this node that is not in the NodeConfig.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeValues {
    /// The join path.
    pub kind: NodeKind,
    /// The cluster name (or, on Outposts, what `token --cluster-id` needs is `cluster_id`).
    pub cluster_name: String,
    /// The cluster ID for token signing on Outposts local clusters.
    pub cluster_id: Option<String>,
    /// The AWS region.
    pub region: String,
    /// The partition's DNS suffix, e.g. `amazonaws.com`.
    pub dns_suffix: String,
    /// The API server URL.
    pub api_server_endpoint: String,
    /// The cluster CA bundle (PEM).
    pub ca_pem: Vec<u8>,
    /// The cluster DNS IP for clusterDNS.
    pub cluster_dns: IpAddr,
    /// The node's IP for `--node-ip`.
    pub node_ip: IpAddr,
    /// The Kubernetes node name (`--hostname-override` on EC2).
    pub node_name: String,
    /// `providerID`.
    pub provider_id: String,
    /// Effective max pods (after the user's override).
    pub max_pods: u32,
    /// kubeReserved computed from the effective max pods.
    pub kube_reserved: crate::compute::KubeReserved,
    /// containerd's major version (1 renders config schema v2, 2 renders schema v3).
    pub containerd_major: u32,
    /// The pause image.
    pub sandbox_image: String,
    /// The NVIDIA container runtime binary, when installed.
    pub nvidia_runtime: Option<PathBuf>,
    /// This binary's absolute path, for the kubeconfig exec plugin.
    pub agent_binary: PathBuf,
    /// Node labels the agent adds (hybrid compute type and credential provider).
    pub labels: BTreeMap<String, String>,
    /// Environment for the exec credential plugin (on-prem credential files).
    pub exec_env: BTreeMap<String, String>,
    /// Outposts: API server addresses to pin in /etc/hosts.
    pub api_server_addresses: Vec<IpAddr>,
    /// The current /etc/hosts (Outposts only), so the owned block can be replaced.
    pub current_hosts: Option<String>,
    /// Hybrid nodes with swap files to turn off: the current /etc/fstab, whose swap lines
    /// render comments out so the swap stays off after a reboot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_fstab: Option<String>,
}
