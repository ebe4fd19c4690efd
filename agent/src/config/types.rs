//! The `node.eks.aws/v1alpha1` `NodeConfig` API as nodeadm defines it (EC2 and hybrid
//! variants). Every struct rejects unknown fields so a typo is an error, not a silent no-op.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The only API version this agent reads.
pub const API_VERSION: &str = "node.eks.aws/v1alpha1";
/// The only kind this agent reads.
pub const KIND: &str = "NodeConfig";

/// A `NodeConfig` document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeConfig {
    /// Must be [`API_VERSION`].
    pub api_version: String,
    /// Must be [`KIND`].
    pub kind: String,
    /// Kubernetes-style object metadata; carried, not interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// What the node should be.
    #[serde(default)]
    pub spec: NodeConfigSpec,
}

/// `spec`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeConfigSpec {
    /// The cluster to join.
    #[serde(default, skip_serializing_if = "ClusterDetails::is_empty")]
    pub cluster: ClusterDetails,
    /// kubelet options.
    #[serde(default, skip_serializing_if = "KubeletOptions::is_empty")]
    pub kubelet: KubeletOptions,
    /// containerd options.
    #[serde(default, skip_serializing_if = "ContainerdOptions::is_empty")]
    pub containerd: ContainerdOptions,
    /// Host options.
    #[serde(default, skip_serializing_if = "InstanceOptions::is_empty")]
    pub instance: InstanceOptions,
    /// Feature gates by name: nodeadm's and the agent's ([`FeatureGate`]). An unknown name is
    /// a warning (an error under `--strict`), as nodeadm ignores gates it does not know.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub feature_gates: BTreeMap<String, bool>,
    /// EKS Hybrid Nodes: present only on on-prem hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hybrid: Option<HybridOptions>,
    /// eks-node-agent extension, not a nodeadm field: join a kubeadm-style cluster (EKS
    /// Anywhere) with a bootstrap token and CA pinning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeadm: Option<KubeadmOptions>,
    /// eks-node-agent extension, not a nodeadm field: which EC2 instance tags become node
    /// labels (see [`InstanceTagLabels`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_tag_labels: Option<InstanceTagLabels>,
    /// eks-node-agent extension, not a nodeadm field: the host is an Amazon ECS container
    /// instance (on EC2, or ECS Anywhere with `external`), not a Kubernetes node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs: Option<super::ecs::EcsOptions>,
}

/// The feature gates of `spec.featureGates` the agent knows: nodeadm's, and two of its own that
/// describe how the VPC CNI runs (they change max pods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FeatureGate {
    /// nodeadm: name the node after its EC2 instance ID instead of its private DNS name.
    InstanceIdNodeName,
    /// nodeadm: parallel image pulls and unpacking through the SOCI snapshotter's parallel
    /// pull mode, on instances with at least 4 vCPUs and 7 GiB of memory.
    FastImagePull,
    /// nodeadm: secondary ENIs tagged `node.k8s.amazonaws.com/no_manage=true` configured by
    /// systemd-networkd through the AL2023 AMI's udev network manager. Not supported here:
    /// `true` is refused.
    OsManagedNoManageEnis,
    /// eks-node-agent: the VPC CNI runs with `ENABLE_PREFIX_DELEGATION=true`.
    VpcCniPrefixDelegation,
    /// eks-node-agent: the VPC CNI uses custom networking (ENIConfig).
    VpcCniCustomNetworking,
}

impl FeatureGate {
    /// Every gate, in documentation order.
    pub const ALL: [FeatureGate; 5] = [
        FeatureGate::InstanceIdNodeName,
        FeatureGate::FastImagePull,
        FeatureGate::OsManagedNoManageEnis,
        FeatureGate::VpcCniPrefixDelegation,
        FeatureGate::VpcCniCustomNetworking,
    ];

    /// The name in `spec.featureGates`.
    pub fn name(self) -> &'static str {
        match self {
            FeatureGate::InstanceIdNodeName => "InstanceIdNodeName",
            FeatureGate::FastImagePull => "FastImagePull",
            FeatureGate::OsManagedNoManageEnis => "OSManagedNoManageENIs",
            FeatureGate::VpcCniPrefixDelegation => "VpcCniPrefixDelegation",
            FeatureGate::VpcCniCustomNetworking => "VpcCniCustomNetworking",
        }
    }

    /// The gate of that exact name.
    pub fn from_name(name: &str) -> Option<FeatureGate> {
        FeatureGate::ALL.into_iter().find(|g| g.name() == name)
    }

    /// Whether nodeadm defines the gate (the others are the agent's).
    pub fn is_nodeadms(self) -> bool {
        matches!(
            self,
            FeatureGate::InstanceIdNodeName
                | FeatureGate::FastImagePull
                | FeatureGate::OsManagedNoManageEnis
        )
    }
}

impl std::fmt::Display for FeatureGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The default of `spec.instanceTagLabels.prefix`. EC2 refuses `/` in the keys of tags that
/// instance metadata shows, so `:` stands for the `/` of a label key.
pub const DEFAULT_TAG_LABEL_PREFIX: &str = "node.eks.aws:label:";

/// `spec.instanceTagLabels` (an eks-node-agent extension): EC2 instance tags whose key starts
/// with `prefix` become kubelet `--node-labels` when the instance shows its tags in instance
/// metadata. The rest of the tag key is the label key, with `:` read as `/`
/// (`node.eks.aws:label:example.com:team` -> `example.com/team`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InstanceTagLabels {
    /// The tag key prefix [default: [`DEFAULT_TAG_LABEL_PREFIX`]].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// `spec.cluster`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterDetails {
    /// The EKS cluster name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The AWS region of the cluster (hybrid nodes; EC2 nodes take it from IMDS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The API server URL (https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_server_endpoint: Option<String>,
    /// The cluster CA bundle: base64 of PEM certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
    /// The Kubernetes service CIDR (IPv4 or IPv6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// A local cluster on AWS Outposts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_outpost: Option<bool>,
    /// The cluster ID (needed for Outposts local clusters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl ClusterDetails {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// `spec.kubelet`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubeletOptions {
    /// A free-form KubeletConfiguration fragment, merged over the agent's defaults.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub config: Map<String, Value>,
    /// Extra kubelet command-line flags, appended after the agent's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// A CEL expression for max pods over `default_enis`, `ips_per_eni` and `max_pods`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pods_expression: Option<String>,
}

impl KubeletOptions {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// The value of `--name=value` in `flags`; the last one wins, as in kubelet.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags.iter().rev().find_map(|f| {
            f.strip_prefix("--")
                .and_then(|f| f.strip_prefix(name))
                .and_then(|rest| rest.strip_prefix('='))
        })
    }

    /// The addresses `--node-ip` gives (one, or two for a dual-stack node; the first is the
    /// node's primary address, as kubelet reads it). `Ok(empty)` when the flag is not set.
    pub fn node_ips(&self) -> Result<Vec<std::net::IpAddr>, String> {
        let Some(value) = self.flag("node-ip") else {
            return Ok(Vec::new());
        };
        value
            .split(',')
            .map(|ip| {
                ip.trim()
                    .parse()
                    .map_err(|_| format!("--node-ip={value}: \"{ip}\" is not an IP address"))
            })
            .collect()
    }

    /// The primary address `--node-ip` gives, if set.
    pub fn node_ip(&self) -> Result<Option<std::net::IpAddr>, String> {
        Ok(self.node_ips()?.first().copied())
    }

    /// `maxPods` from `config`, when it is a pod count.
    pub fn max_pods(&self) -> Option<u32> {
        self.config
            .get("maxPods")
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
    }

    /// kubelet's `failSwapOn` from `config` (true unless set to false).
    pub fn fail_swap_on(&self) -> bool {
        self.config.get("failSwapOn").and_then(Value::as_bool) != Some(false)
    }
}

/// `spec.containerd`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerdOptions {
    /// Inline TOML merged over the agent's containerd config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// An OCI runtime spec fragment merged over the base runtime spec.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub base_runtime_spec: Map<String, Value>,
}

impl ContainerdOptions {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// `spec.instance`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InstanceOptions {
    /// Instance-store disks.
    #[serde(default, skip_serializing_if = "LocalStorageOptions::is_empty")]
    pub local_storage: LocalStorageOptions,
    /// Environment variables by systemd unit (`default` applies to all the agent starts).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, BTreeMap<String, String>>,
    /// Resolver settings.
    #[serde(default, skip_serializing_if = "NetworkOptions::is_empty")]
    pub network: NetworkOptions,
}

impl InstanceOptions {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// `spec.instance.localStorage`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalStorageOptions {
    /// How instance-store disks are assembled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<LocalStorageStrategy>,
    /// Where the assembled storage is mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<String>,
    /// Directories that are not moved onto local storage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled_mounts: Vec<DisabledMount>,
}

impl LocalStorageOptions {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// `spec.instance.localStorage.strategy`: `RAID0`, `RAID10` or `Mount` (the model's type).
pub use crate::model::disks::Strategy as LocalStorageStrategy;

/// `spec.instance.localStorage.disabledMounts[]`: a directory kept on the root volume
/// (`/var/lib/kubelet` always moves). A name nodeadm does not know is kept as
/// [`DisabledMount::Unknown`]: a warning (an error under `--strict`), as nodeadm ignores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisabledMount {
    /// Keep /var/lib/containerd on the root volume.
    Containerd,
    /// Keep /var/log/pods on the root volume.
    PodLogs,
    /// Keep /var/lib/soci-snapshotter-grpc on the root volume.
    Soci,
    /// A name nodeadm does not know.
    Unknown(String),
}

/// The schema of [`DisabledMount`]: one of the known names.
#[cfg(feature = "schema")]
impl schemars::JsonSchema for DisabledMount {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DisabledMount".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = DisabledMount::KNOWN
            .iter()
            .map(DisabledMount::name)
            .collect();
        schemars::json_schema!({ "type": "string", "enum": names })
    }
}

impl DisabledMount {
    /// The known ones.
    pub const KNOWN: [DisabledMount; 3] = [
        DisabledMount::Containerd,
        DisabledMount::PodLogs,
        DisabledMount::Soci,
    ];

    /// The name in the NodeConfig.
    pub fn name(&self) -> &str {
        match self {
            DisabledMount::Containerd => "Containerd",
            DisabledMount::PodLogs => "PodLogs",
            DisabledMount::Soci => "SOCI",
            DisabledMount::Unknown(name) => name,
        }
    }

    /// The directory it keeps on the root volume (none for an unknown name).
    pub fn directory(&self) -> Option<&'static str> {
        match self {
            DisabledMount::Containerd => Some("/var/lib/containerd"),
            DisabledMount::PodLogs => Some("/var/log/pods"),
            DisabledMount::Soci => Some("/var/lib/soci-snapshotter-grpc"),
            DisabledMount::Unknown(_) => None,
        }
    }

    fn from_name(name: &str) -> DisabledMount {
        match name {
            "Containerd" => DisabledMount::Containerd,
            "PodLogs" => DisabledMount::PodLogs,
            "SOCI" => DisabledMount::Soci,
            other => DisabledMount::Unknown(other.to_owned()),
        }
    }
}

impl LocalStorageOptions {
    /// What `init` does with the instance-store disks; `None` when no strategy is set.
    pub fn settings(&self) -> Option<crate::model::disks::StorageSettings> {
        use crate::model::disks::{DEFAULT_MOUNT_PATH, STATE_DIRS, StorageSettings};
        let strategy = self.strategy?;
        let binds = if strategy == LocalStorageStrategy::Mount {
            Vec::new()
        } else {
            STATE_DIRS
                .iter()
                .filter(|d| {
                    d.disabled_by
                        .is_none_or(|name| !self.disabled_mounts.iter().any(|m| m.name() == name))
                })
                .copied()
                .collect()
        };
        Some(StorageSettings {
            strategy,
            mount_path: std::path::PathBuf::from(
                self.mount_path
                    .as_deref()
                    .map(|p| p.trim_end_matches('/'))
                    .filter(|p| !p.is_empty())
                    .unwrap_or(DEFAULT_MOUNT_PATH),
            ),
            binds,
        })
    }
}

impl Serialize for DisabledMount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for DisabledMount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(DisabledMount::from_name(&name))
    }
}

/// `spec.instance.network`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkOptions {
    /// DNS servers (IP addresses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
}

impl NetworkOptions {
    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// `spec.hybrid`: EKS Hybrid Nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HybridOptions {
    /// Keep an AWS credentials file at `/eks-hybrid/.aws/credentials` for pods that mount it
    /// (the EKS Pod Identity Agent's hybrid DaemonSet): refreshed from IAM Roles Anywhere
    /// before expiry, or, on SSM nodes, the SSM agent's own file linked there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_credentials_file: Option<bool>,
    /// SSM hybrid activation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssm: Option<Ssm>,
    /// IAM Roles Anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_roles_anywhere: Option<IamRolesAnywhere>,
}

/// `spec.hybrid.ssm`.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Ssm {
    /// The activation code: a secret, never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_code: Option<String>,
    /// The activation ID (a UUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_id: Option<String>,
}

impl std::fmt::Debug for Ssm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ssm")
            .field(
                "activation_code",
                &self.activation_code.as_ref().map(|_| "<redacted>"),
            )
            .field("activation_id", &self.activation_id)
            .finish()
    }
}

/// `spec.hybrid.iamRolesAnywhere`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IamRolesAnywhere {
    /// The Kubernetes node name (also the role session name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// The trust anchor ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_anchor_arn: Option<String>,
    /// The profile ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_arn: Option<String>,
    /// The role to assume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Where to write the AWS config that points at the credential helper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_config_path: Option<String>,
    /// The node's X.509 certificate (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_path: Option<String>,
    /// The certificate's private key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_path: Option<String>,
}

/// `spec.kubeadm` (an eks-node-agent extension, not part of nodeadm's API): token discovery as
/// `kubeadm join` does it. The agent reads `cluster-info` from `kube-public` anonymously,
/// checks its JWS signature with the bootstrap token, pins the cluster CA by its public-key
/// hash, and starts kubelet with TLS bootstrapping.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubeadmOptions {
    /// The bootstrap token `<id>.<secret>` (`[a-z0-9]{6}.[a-z0-9]{16}`): a secret, never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_token: Option<String>,
    /// Pins of the cluster CA: `sha256:<hex>` of its DER SubjectPublicKeyInfo. At least one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_cert_hashes: Vec<String>,
    /// How long discovery may wait for `cluster-info` and its signature (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_timeout_seconds: Option<u64>,
    /// kubeadm's trust-on-first-use switch: read so that `true` is refused with a clear error.
    #[serde(
        default,
        rename = "unsafeSkipCAVerification",
        skip_serializing_if = "Option::is_none"
    )]
    pub unsafe_skip_ca_verification: Option<bool>,
}

impl std::fmt::Debug for KubeadmOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeadmOptions")
            .field(
                "bootstrap_token",
                &self.bootstrap_token.as_ref().map(|_| "<redacted>"),
            )
            .field("ca_cert_hashes", &self.ca_cert_hashes)
            .field("discovery_timeout_seconds", &self.discovery_timeout_seconds)
            .field(
                "unsafe_skip_ca_verification",
                &self.unsafe_skip_ca_verification,
            )
            .finish()
    }
}

impl NodeConfig {
    /// True when this is an EKS Hybrid Nodes (on-prem) configuration.
    pub fn is_hybrid(&self) -> bool {
        self.spec.hybrid.is_some()
    }

    /// True when the node joins a kubeadm-style cluster with a bootstrap token (`spec.kubeadm`).
    pub fn is_kubeadm(&self) -> bool {
        self.spec.kubeadm.is_some()
    }

    /// True when the host is an Amazon ECS container instance (`spec.ecs`).
    pub fn is_ecs(&self) -> bool {
        self.spec.ecs.is_some()
    }

    /// True when the cluster is a local cluster on AWS Outposts.
    pub fn is_outpost(&self) -> bool {
        self.spec.cluster.enable_outpost == Some(true)
    }

    /// A feature gate's value (false when unset: every gate defaults to off, as in nodeadm).
    pub fn feature(&self, gate: FeatureGate) -> bool {
        self.spec
            .feature_gates
            .get(gate.name())
            .copied()
            .unwrap_or(false)
    }

    /// The tag key prefix of `spec.instanceTagLabels` (its default when unset).
    pub fn tag_label_prefix(&self) -> &str {
        self.spec
            .instance_tag_labels
            .as_ref()
            .and_then(|t| t.prefix.as_deref())
            .unwrap_or(DEFAULT_TAG_LABEL_PREFIX)
    }

    /// Whether the hybrid node keeps an AWS credentials file for pods
    /// (`spec.hybrid.enableCredentialsFile`).
    pub fn credentials_file_enabled(&self) -> bool {
        self.spec
            .hybrid
            .as_ref()
            .and_then(|h| h.enable_credentials_file)
            == Some(true)
    }
}
