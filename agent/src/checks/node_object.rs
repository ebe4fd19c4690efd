//! `status`'s `node` check, once the node has joined (the kubelet's kubeconfig exists): its
//! Node object exists in the cluster and its `Ready` condition is `True` (as `nodeadm debug`
//! checks after the join). Before the join it is skipped.

use std::path::Path;

use super::Outcome;
use super::status::{fail, ok};
use crate::model::text::error_chain;

/// What the API server said about the Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The kubelet's kubeconfig does not exist: not joined yet.
    NotJoined(String),
    /// No Node of that name (404).
    Missing,
    /// The Node's Ready condition: status, reason, message (`None`: no Ready condition).
    Ready(Option<(String, String, String)>),
    /// The API server could not be asked.
    Unreachable(String),
}

/// Reads the Node `node` with `kubeconfig` (an absolute path on the host).
pub async fn read(kubeconfig: &Path, node: &str) -> Found {
    if !kubeconfig.exists() {
        return Found::NotJoined(format!("{} does not exist", kubeconfig.display()));
    }
    let api = match crate::report::kube::NodeApi::connect(kubeconfig, node).await {
        Ok(api) => api,
        Err(e) => return Found::Unreachable(error_chain(&e)),
    };
    match api.conditions().await {
        Ok(conditions) => Found::Ready(
            conditions
                .into_iter()
                .find(|c| c.type_ == "Ready")
                .map(|c| (c.status, c.reason, c.message)),
        ),
        Err(e) if crate::report::kube::NodeApi::is_not_found(&e) => Found::Missing,
        Err(e) => Found::Unreachable(error_chain(&e)),
    }
}

/// The check over what [`read`] found for Node `node`.
pub fn check(node: &str, found: &Found) -> Outcome {
    match found {
        Found::NotJoined(why) => ok(format!("skipped: not joined yet ({why})")),
        Found::Missing => fail(
            "NodeNotRegistered",
            format!("the kubelet has a kubeconfig but Node {node} does not exist in the cluster"),
            "check the kubelet's journal (journalctl -u kubelet) for registration errors: the node's identity must be allowed to create its Node (the access entry of its role), and --node-name / hostname must match what the cluster expects",
        ),
        Found::Ready(Some((status, _, _))) if status == "True" => {
            ok(format!("Node {node} is Ready"))
        }
        Found::Ready(Some((status, reason, message))) => fail(
            "NodeNotReady",
            format!("Node {node}: Ready={status} ({reason}: {message})"),
            "look at the reason: the kubelet's journal (journalctl -u kubelet), the container runtime and the CNI (the VPC CNI or Cilium/Calico pods on the node)",
        ),
        Found::Ready(None) => fail(
            "NodeNotReady",
            format!("Node {node} has no Ready condition yet"),
            "the kubelet has not reported its status: check journalctl -u kubelet",
        ),
        Found::Unreachable(why) => fail(
            "NodeUnknown",
            format!("cannot read Node {node}: {why}"),
            "fix the api-server check first; the kubelet's kubeconfig must reach the cluster",
        ),
    }
}
