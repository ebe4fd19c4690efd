//! Reporting: Node conditions, events and taints (Kubernetes), Prometheus metrics (ours and
//! node_exporter-compatible host metrics), and the local HTTP endpoint.

pub mod conditions;
pub mod host;
pub mod http;
pub mod kube;
pub mod metrics;
pub mod phases;
pub mod taints;
