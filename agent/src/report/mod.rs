//! Reporting: Node conditions and events (Kubernetes), the Node's taints, cordon and labels
//! and its pods' eviction and deletion (for the lifecycle drain), Prometheus metrics (ours and
//! node_exporter-compatible host metrics), and the local HTTP endpoint.

pub mod conditions;
pub mod host;
pub mod http;
pub mod kube;
pub mod metrics;
pub mod node_ops;
pub mod phases;
