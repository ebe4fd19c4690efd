//! Pure derivations from the config and the facts: max pods, kube-reserved, the cluster DNS
//! IP, the node IP family, node name and provider ID, and (in [`values`]) the node's values.
//!
//! Nothing here does IO; `facts/` gathers the inputs.

mod cluster_dns;
pub mod containerd;
pub mod ecs;
mod kube_reserved;
pub mod labels;
pub mod local_storage;
mod max_pods;
mod node;
pub mod values;

pub use cluster_dns::{LEGACY_DNS_IP_IN_TEN_RANGE, LEGACY_DNS_IP_OTHERWISE, cluster_dns_ip};
pub use kube_reserved::{cpu_millicores_to_reserve, kube_reserved, memory_mebibytes_to_reserve};
pub use max_pods::{
    CniVersion, EffectiveMaxPods, MAX_PODS_CEILING_HIGH_CPU, MAX_PODS_CEILING_LOW_CPU,
    MAX_PODS_CEILING_VCPU_THRESHOLD, MaxPods, MaxPodsExpression, MaxPodsOptions, MaxPodsSource,
    PodIpMode, ceiling_for, effective_max_pods, max_pods, standard_max_pods,
};
pub use node::{IpFamily, node_ip_family, node_name};

/// Errors in the inputs of the derivations. All are bad input (exit code 2) except a missing
/// private DNS name, which is a fact about the host.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value that does not parse into its type.
    #[error(transparent)]
    Invalid(#[from] crate::model::Invalid),
    /// A VPC CNI version that cannot be read.
    #[error(
        "invalid VPC CNI version {value:?}: expected MAJOR.MINOR[.PATCH], optionally with a leading \"v\" and a suffix, such as \"1.18.3\" or \"v1.18.3-eksbuild.1\""
    )]
    InvalidCniVersion {
        /// The rejected text.
        value: String,
    },
    /// A `maxPodsExpression` that does not compile or type-check.
    #[error(transparent)]
    Expression(#[from] crate::config::expression::ExpressionError),
    /// A `maxPodsExpression` that fails or yields no usable number.
    #[error("maxPodsExpression {} {reason}", crate::model::text::echo(expression))]
    ExpressionValue {
        /// The expression as written.
        expression: String,
        /// What went wrong, phrased to follow the expression.
        reason: String,
    },
    /// The service CIDR is too small to hold the cluster DNS address.
    #[error(
        "service CIDR {cidr} is too small to hold the cluster DNS address (the 10th address after the network address); use a CIDR of at least 16 addresses"
    )]
    ServiceCidrTooSmall {
        /// The CIDR as given.
        cidr: ipnet::IpNet,
    },
    /// The user's containerd TOML does not fit the installed containerd.
    #[error("spec.containerd.config: {key}{}{reason}", if key.is_empty() { "" } else { " " })]
    ContainerdConfig {
        /// The TOML key (dotted), or empty for the whole document.
        key: String,
        /// What is wrong and what to write instead.
        reason: String,
    },
    /// The node would need a name from the private DNS name but there is none.
    #[error(
        "instance {instance_id} has no private DNS name to use as the node name; enable the InstanceIdNodeName feature gate to name the node after its instance ID"
    )]
    NoPrivateDnsName {
        /// The instance.
        instance_id: String,
    },
    /// An ECS host without a region: ECS Anywhere without `spec.ecs.region`, or an EC2 host
    /// whose discovery found no instance.
    #[error(
        "spec.ecs.region: the ECS host's region is not known (no spec.ecs.region and no EC2 instance); add `spec.ecs.region`"
    )]
    EcsNoRegion,
}

impl crate::exit::Classify for Error {
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            Error::NoPrivateDnsName { .. } => crate::exit::Code::Failure,
            _ => crate::exit::Code::BadInput,
        }
    }
}
