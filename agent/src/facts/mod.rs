//! What is true about this host and its instance type, gathered from AWS APIs and the host.

pub mod instance_types;
