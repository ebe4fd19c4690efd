//! Reporting: Node conditions and events (Kubernetes), Prometheus metrics (ours and
//! node_exporter-compatible host metrics), and the local HTTP endpoint.

pub mod conditions;
pub mod host;
pub mod http;
pub mod kube;
pub mod metrics;
pub mod phases;

/// An error and its causes on one line, for structured logs.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
