//! What discovery found, typed: the EC2 instance, the cluster, the local host. `facts/` fills
//! it (one provider per node kind); `compute/` decides from it; golden scenarios write it by
//! hand as YAML, and reading it checks every value (ids, CIDRs, addresses) on the way in.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

use super::{
    AvailabilityZone, InstanceId, InstanceLimits, InstanceType, NodeName, PciDevice, Region,
    SwapArea, TargetLifecycleState, Version,
};

/// The EC2 instance, as IMDS and DescribeInstances describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Instance {
    /// `i-...`.
    pub instance_id: InstanceId,
    /// e.g. `m5.large`.
    pub instance_type: InstanceType,
    /// e.g. `us-west-2a`.
    pub availability_zone: AvailabilityZone,
    /// e.g. `us-west-2`.
    pub region: Region,
    /// The partition's DNS suffix (IMDS `services/domain`), e.g. `amazonaws.com`; empty when
    /// IMDS did not say.
    #[serde(default)]
    pub domain: String,
    /// The primary private IPv4.
    #[serde(default)]
    pub private_ipv4: Option<IpAddr>,
    /// The primary interface's first IPv6.
    #[serde(default)]
    pub ipv6: Option<IpAddr>,
    /// DescribeInstances `PrivateDnsName`.
    #[serde(default)]
    pub private_dns_name: Option<String>,
    /// The VPC's IPv4 CIDRs (for the legacy cluster DNS rule).
    #[serde(default)]
    pub vpc_ipv4_cidrs: Vec<Ipv4Net>,
    /// IMDS `autoscaling/target-lifecycle-state` (absent outside Auto Scaling groups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_lifecycle_state: Option<TargetLifecycleState>,
    /// The instance's tags from instance metadata (`tags/instance`); `None` when the instance
    /// does not show its tags there (IMDS answers 404).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
}

/// The cluster, as DescribeCluster or kubeadm's verified cluster-info gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cluster {
    /// API server URL.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The CA bundle (PEM), as DescribeCluster's `certificateAuthority.data` decodes.
    #[serde(default)]
    pub certificate_authority_pem: Option<String>,
    /// The service CIDR the node uses (IPv6 on an IPv6 cluster).
    #[serde(default)]
    pub service_cidr: Option<IpNet>,
    /// Cluster ID (Outposts local clusters).
    #[serde(default)]
    pub id: Option<String>,
    /// A local cluster on Outposts (from DescribeCluster `outpostConfig`).
    #[serde(default)]
    pub outpost: bool,
    /// API server addresses to pin in /etc/hosts (Outposts).
    #[serde(default)]
    pub api_server_addresses: Vec<IpAddr>,
    /// `remoteNetworkConfig.remoteNodeNetworks[].cidrs` (hybrid nodes): the node IP must be
    /// inside one of them. Empty when DescribeCluster was not answered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_node_networks: Vec<IpNet>,
}

/// Facts read from the local host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HostFacts {
    /// Online CPU cores.
    pub cpu_cores: u32,
    /// The IPv4 address of the interface that holds the default route.
    pub default_ipv4: Option<IpAddr>,
    /// The first global IPv6 address of the default-route interface.
    pub default_ipv6: Option<IpAddr>,
    /// `containerd --version`, when containerd is installed.
    pub containerd_version: Option<Version>,
    /// The NVIDIA container runtime, when installed.
    pub nvidia_runtime: Option<PathBuf>,
    /// The host name.
    pub hostname: String,
    /// The current /etc/hosts.
    pub hosts_file: Option<String>,
    /// Active swap areas (/proc/swaps).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub swaps: Vec<SwapArea>,
    /// The current /etc/fstab.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fstab: Option<String>,
    /// `kubelet --version`, when the kubelet is installed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubelet_version: Option<Version>,
    /// Accelerators on the PCI bus (NVIDIA GPUs, AWS Neuron devices).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accelerators: Vec<PciDevice>,
    /// Total memory (`MemTotal` of /proc/meminfo), bytes.
    #[serde(skip_serializing_if = "is_zero")]
    pub memory_bytes: u64,
    /// The SOCI snapshotter (`soci-snapshotter-grpc`), when installed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soci_snapshotter: Option<PathBuf>,
    /// `unpigz` (parallel gzip), when installed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unpigz: Option<PathBuf>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Everything discovery found. Tests write it by hand (golden scenarios); `init` fills it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Discovered {
    /// The EC2 instance (absent on hybrid and kubeadm nodes).
    #[serde(default)]
    pub instance: Option<Instance>,
    /// What DescribeCluster (or kubeadm discovery) returned, when it was called.
    #[serde(default)]
    pub cluster: Cluster,
    /// The local host.
    #[serde(default)]
    pub host: HostFacts,
    /// Instance limits from DescribeInstanceTypes when the embedded table lacks the type.
    #[serde(skip)]
    pub limits: Option<InstanceLimits>,
    /// The SSM managed instance ID (`mi-...`) of a registered hybrid node.
    #[serde(default)]
    pub ssm_managed_instance_id: Option<NodeName>,
    /// The local address of the interface that routes to the API server (hybrid nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_route_ip: Option<IpAddr>,
    /// The instance-store disks (read only when `spec.instance.localStorage.strategy` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_storage: Option<super::disks::StorageFacts>,
    /// This binary's absolute path.
    pub agent_binary: PathBuf,
    /// ECS Anywhere with IAM Roles Anywhere: the first credentials file, from the session
    /// discovery created (a secret; never serialized).
    #[serde(skip)]
    pub ecs_file_credentials: Option<super::ecs::FileCredentials>,
}
