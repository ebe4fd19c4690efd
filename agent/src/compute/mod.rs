//! Pure derivations from facts about the instance: max pods, kube-reserved, the cluster DNS IP,
//! the node IP family, node name and provider ID, and the embedded instance-limits table.
//!
//! Nothing here does IO; the callers in `facts/` and `cli/` gather the inputs.

mod cluster_dns;
mod ids;
mod kube_reserved;
mod limits;
mod max_pods;
mod node;
pub mod values;

pub use cluster_dns::{LEGACY_DNS_IP_IN_TEN_RANGE, LEGACY_DNS_IP_OTHERWISE, cluster_dns_ip};
pub use ids::{AvailabilityZone, InstanceId, InstanceType};
pub use kube_reserved::{KubeReserved, cpu_millicores_to_reserve, memory_mebibytes_to_reserve};
pub use limits::{Hypervisor, InstanceLimits, embedded_limits, embedded_source, embedded_types};
pub use max_pods::{
    CniVersion, EffectiveMaxPods, MAX_PODS_CEILING_HIGH_CPU, MAX_PODS_CEILING_LOW_CPU,
    MAX_PODS_CEILING_VCPU_THRESHOLD, MaxPods, MaxPodsExpression, MaxPodsOptions, MaxPodsSource,
    PodIpMode, ceiling_for, effective_max_pods, max_pods, standard_max_pods,
};
pub use node::{IpFamily, node_ip_family, node_name, provider_id};

/// Errors in the inputs of the derivations. All are bad input (exit code 2) except a missing
/// private DNS name, which is a fact about the host.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A string is not a valid EC2 instance type.
    #[error(
        "invalid instance type {value:?}: {reason}; expected a family and a size such as \"m5.large\""
    )]
    InvalidInstanceType {
        /// The rejected text.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A string is not a valid EC2 instance ID.
    #[error(
        "invalid instance ID {value:?}: expected \"i-\" and 8 or 17 lowercase hex digits, such as \"i-0123456789abcdef0\""
    )]
    InvalidInstanceId {
        /// The rejected text.
        value: String,
    },
    /// A string is not a valid availability zone name.
    #[error(
        "invalid availability zone {value:?}: expected a zone name such as \"us-west-2a\" (lowercase letters, digits and '-')"
    )]
    InvalidAvailabilityZone {
        /// The rejected text.
        value: String,
    },
    /// A VPC CNI version that cannot be read.
    #[error(
        "invalid VPC CNI version {value:?}: expected MAJOR.MINOR[.PATCH], optionally with a leading \"v\" and a suffix, such as \"1.18.3\" or \"v1.18.3-eksbuild.1\""
    )]
    InvalidCniVersion {
        /// The rejected text.
        value: String,
    },
    /// A `maxPodsExpression` that does not compile.
    #[error(
        "maxPodsExpression {expression:?} is not a valid CEL expression: {reason}; it may use the int variables default_enis, ips_per_eni and max_pods"
    )]
    ExpressionSyntax {
        /// The expression as written.
        expression: String,
        /// The parser's message.
        reason: String,
    },
    /// A `maxPodsExpression` that fails or yields no usable number.
    #[error("maxPodsExpression {expression:?} {reason}")]
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
    /// The node would need a name from the private DNS name but there is none.
    #[error(
        "instance {instance_id} has no private DNS name to use as the node name; enable the InstanceIdNodeName feature gate to name the node after its instance ID"
    )]
    NoPrivateDnsName {
        /// The instance.
        instance_id: String,
    },
}

impl crate::exit::Classify for Error {
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            Error::NoPrivateDnsName { .. } => crate::exit::Code::Failure,
            _ => crate::exit::Code::BadInput,
        }
    }
}
