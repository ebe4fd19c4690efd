//! What is true about this host and its instance: the local host, IMDS, and the EC2/EKS APIs.

pub mod host;
pub mod instance_types;
