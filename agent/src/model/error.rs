//! The one error of the model: a value that does not parse into its type. Whether that is the
//! user's input or a peer's answer is for the layer that read it to say.

/// A text that is not a valid value of a model type. The message names the value (never a
/// secret: secret types have errors of their own) and shows a valid example.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Not an EC2 instance type.
    #[error(
        "invalid instance type {value:?}: {reason}; expected a family and a size such as \"m5.large\""
    )]
    InstanceType {
        /// The rejected text.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Not an EC2 instance ID.
    #[error(
        "invalid instance ID {value:?}: expected \"i-\" and 8 or 17 lowercase hex digits, such as \"i-0123456789abcdef0\""
    )]
    InstanceId {
        /// The rejected text.
        value: String,
    },
    /// Not an availability zone name.
    #[error(
        "invalid availability zone {value:?}: expected a zone name such as \"us-west-2a\" (lowercase letters, digits and '-')"
    )]
    AvailabilityZone {
        /// The rejected text.
        value: String,
    },
    /// Not an AWS region name.
    #[error(
        "{source_name}: invalid region: {value:?} is not an AWS region name; expected something like \"us-west-2\""
    )]
    Region {
        /// Where the value came from (flag, variable or field).
        source_name: String,
        /// The rejected text.
        value: String,
    },
    /// Not an EKS cluster name.
    #[error(
        "\"{value}\" is not a valid EKS cluster name; expected 1-100 characters, letters, digits, '-' and '_', starting with a letter or digit"
    )]
    ClusterName {
        /// The rejected text.
        value: String,
    },
    /// Not a Kubernetes node name.
    #[error(
        "\"{value}\" is not a valid Kubernetes node name; expected a DNS name of at most 253 characters: lowercase letters, digits, '-' and '.'"
    )]
    NodeName {
        /// The rejected text.
        value: String,
    },
}
