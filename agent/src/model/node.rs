//! The resolved values render needs: what discovery found and compute derived, in one place.
//! `compute` builds them; `render` only reads them.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;

use super::{ClusterName, NodeName, ProviderId, Version};

/// The pause image tag the agent configures: the EKS AMI's (3.10), also for a pause image from
/// another ECR account (`bootstrap --pause-container-account`), so every node pulls the same
/// image.
pub const PAUSE_VERSION: &str = "3.10";

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
    pub cluster_name: ClusterName,
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
    pub node_name: NodeName,
    /// `providerID` (none on kubeadm nodes: no cloud provider names them).
    pub provider_id: Option<ProviderId>,
    /// Effective max pods (after the user's override).
    pub max_pods: u32,
    /// kubeReserved computed from the effective max pods.
    pub kube_reserved: KubeReserved,
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
    /// On-prem nodes with swap files to turn off: the current /etc/fstab, whose swap lines
    /// render comments out so the swap stays off after a reboot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_fstab: Option<String>,
    /// On-prem nodes: active swap files to turn off (kubelet refuses to run with swap on).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub swap_off: Vec<String>,
    /// EC2: the warm-pool state (`Warmed:*`) the instance is headed for, when it is: the
    /// kubelet is held until Auto Scaling puts the instance in service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_pool_hold: Option<String>,
    /// The kubelet's version: what `kubelet --version` printed, or (with `--root` or
    /// `--dry-run` and no kubelet) the one given or assumed. Keys nodeadm's version toggles.
    pub kubelet_version: Version,
    /// containerd's default runtime: `runc`, or `nvidia` on hosts with an NVIDIA GPU and the
    /// NVIDIA container toolkit.
    pub default_runtime: String,
    /// The user's `spec.containerd.config`, in the schema of the installed containerd (a v2
    /// document migrated to v3 for containerd 2.x).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub containerd_user_config: Option<String>,
    /// The `FastImagePull` setup, when the gate is on and the host is large enough.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fast_image_pull: Option<FastImagePull>,
    /// What to do with the instance-store disks (`spec.instance.localStorage`), when a
    /// strategy is set and the disks were read (init's config phase, dry runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_storage: Option<super::disks::StorageLayout>,
    /// How each derived value came about (`config show --explain`): value name -> the facts
    /// or defaults that produced it.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub explain: BTreeMap<String, String>,
}

/// The SOCI snapshotter's parallel pull and unpack mode (nodeadm's `FastImagePull`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FastImagePull {
    /// The program that decompresses gzip layers (`unpigz` when installed, else `gzip`).
    pub gzip_decompressor: String,
}

/// The kubelet's `kubeReserved` (see `compute::kube_reserved` for the rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KubeReserved {
    /// CPU, millicores.
    pub cpu_millicores: u32,
    /// Memory, MiB.
    pub memory_mebibytes: u32,
    /// Ephemeral storage, GiB.
    pub ephemeral_storage_gibibytes: u32,
}

impl KubeReserved {
    /// The kubelet config map: `{"cpu": "70m", "ephemeral-storage": "1Gi", "memory": "574Mi"}`.
    pub fn to_kubelet_map(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("cpu".to_owned(), format!("{}m", self.cpu_millicores)),
            ("memory".to_owned(), format!("{}Mi", self.memory_mebibytes)),
            (
                "ephemeral-storage".to_owned(),
                format!("{}Gi", self.ephemeral_storage_gibibytes),
            ),
        ])
    }
}

impl Serialize for KubeReserved {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("cpu", &format!("{}m", self.cpu_millicores))?;
        map.serialize_entry("memory", &format!("{}Mi", self.memory_mebibytes))?;
        map.serialize_entry(
            "ephemeral-storage",
            &format!("{}Gi", self.ephemeral_storage_gibibytes),
        )?;
        map.end()
    }
}
