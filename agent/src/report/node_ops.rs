//! The Node's scheduling state and its pods, for the lifecycle drain: read and PATCH the
//! Node's taints, `spec.unschedulable` (cordon) and labels under optimistic locking, list the
//! pods bound to the Node, evict them through the policy/v1 Eviction subresource and delete
//! them with a grace period. Pure request building stays in the caller; this is the IO.
//!
//! The eviction request is built here rather than with kube-rs's `Api::evict`, which sends its
//! delete options as `delete_options` (snake case): the API server ignores that field, so the
//! grace period the drain chose would be dropped.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

/// Longest list of pods read for one Node (a Node runs at most a few hundred).
pub const MAX_PODS_LISTED: u32 = 2000;

/// Errors of these calls.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request failed.
    #[error("{what} failed")]
    Request {
        /// What was attempted.
        what: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// The HTTP status the API server answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Request {
                source: kube::Error::Api(s),
                ..
            } => Some(s.code),
            Error::Request { .. } => None,
        }
    }
}

/// A taint as the Node carries it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Taint {
    /// Key.
    pub key: String,
    /// Value (may be empty).
    pub value: String,
    /// NoSchedule, PreferNoSchedule or NoExecute.
    pub effect: String,
}

/// What the lifecycle drain reads of the Node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeState {
    /// `metadata.resourceVersion`, the precondition of the next PATCH.
    pub resource_version: String,
    /// `spec.taints`.
    pub taints: Vec<Taint>,
    /// `spec.unschedulable`.
    pub unschedulable: bool,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
}

/// A change to the Node: the whole taint list (taints are an atomic list), cordon, labels
/// (`None` removes one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeChange {
    /// The new `spec.taints`, when they change.
    pub taints: Option<Vec<Taint>>,
    /// The new `spec.unschedulable`, when it changes.
    pub unschedulable: Option<bool>,
    /// Labels to set (`Some`) or remove (`None`).
    pub labels: BTreeMap<String, Option<String>>,
}

impl NodeChange {
    /// Whether there is nothing to change.
    pub fn is_empty(&self) -> bool {
        self.taints.is_none() && self.unschedulable.is_none() && self.labels.is_empty()
    }

    /// The JSON merge patch, guarded by `resource_version` (the API server answers 409 when the
    /// Node changed since it was read).
    pub fn merge_patch(&self, resource_version: &str) -> Value {
        let mut patch = json!({ "metadata": { "resourceVersion": resource_version } });
        if !self.labels.is_empty() {
            patch["metadata"]["labels"] = self
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().map_or(Value::Null, Value::String)))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        if let Some(taints) = &self.taints {
            patch["spec"]["taints"] = taints
                .iter()
                .map(|t| {
                    let mut v = json!({ "key": t.key, "effect": t.effect });
                    if !t.value.is_empty() {
                        v["value"] = json!(t.value);
                    }
                    v
                })
                .collect::<Vec<_>>()
                .into();
        }
        if let Some(u) = self.unschedulable {
            // `false` is written as null: the field is omitted on a schedulable Node.
            patch["spec"]["unschedulable"] = if u { json!(true) } else { Value::Null };
        }
        patch
    }
}

/// A pod bound to the Node, with what the drain decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// Owned by a DaemonSet (its controller recreates it on the Node).
    pub daemonset: bool,
    /// A mirror pod (a static pod's API copy; the kubelet owns it).
    pub mirror: bool,
    /// `spec.priority` (0 when unset).
    pub priority: i32,
    /// `spec.terminationGracePeriodSeconds` (30 when unset, the API default).
    pub grace_period_secs: i64,
    /// Already being deleted (`metadata.deletionTimestamp` set).
    pub terminating: bool,
    /// `status.phase` is Succeeded or Failed.
    pub finished: bool,
}

impl PodInfo {
    /// `namespace/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn from_pod(p: &Pod) -> PodInfo {
        let meta = &p.metadata;
        let spec = p.spec.as_ref();
        PodInfo {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            daemonset: meta
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "DaemonSet" && o.controller == Some(true)),
            mirror: meta
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION)),
            priority: spec.and_then(|s| s.priority).unwrap_or(0),
            grace_period_secs: spec
                .and_then(|s| s.termination_grace_period_seconds)
                .unwrap_or(DEFAULT_GRACE_PERIOD_SECS),
            terminating: meta.deletion_timestamp.is_some(),
            finished: p
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|ph| ph == "Succeeded" || ph == "Failed"),
        }
    }
}

/// The annotation the kubelet puts on mirror pods.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// The API's default `terminationGracePeriodSeconds`.
pub const DEFAULT_GRACE_PERIOD_SECS: i64 = 30;

/// What an eviction request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eviction {
    /// Accepted (201): the pod is being deleted.
    Accepted,
    /// Refused by a PodDisruptionBudget (429): try again later.
    Blocked(String),
    /// The pod is gone already (404).
    Gone,
}

/// The Node and pod calls the drain makes, over one client.
#[derive(Clone)]
pub struct NodeOps {
    client: Client,
    nodes: Api<Node>,
    pods: Api<Pod>,
    node: String,
}

impl std::fmt::Debug for NodeOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeOps").field("node", &self.node).finish()
    }
}

fn failed(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Request { what, source }
}

impl NodeOps {
    /// The calls for Node `node` over `client`.
    pub fn new(client: Client, node: &str) -> NodeOps {
        NodeOps {
            nodes: Api::all(client.clone()),
            pods: Api::all(client.clone()),
            client,
            node: node.to_owned(),
        }
    }

    /// The Node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Reads the Node's taints, cordon and labels.
    pub async fn read(&self) -> Result<NodeState, Error> {
        let n = self
            .nodes
            .get(&self.node)
            .await
            .map_err(failed(format!("GET node {}", self.node)))?;
        let spec = n.spec.unwrap_or_default();
        Ok(NodeState {
            resource_version: n.metadata.resource_version.unwrap_or_default(),
            taints: spec
                .taints
                .unwrap_or_default()
                .into_iter()
                .map(|t| Taint {
                    key: t.key,
                    value: t.value.unwrap_or_default(),
                    effect: t.effect,
                })
                .collect(),
            unschedulable: spec.unschedulable.unwrap_or(false),
            labels: n.metadata.labels.unwrap_or_default(),
        })
    }

    /// PATCHes the Node (JSON merge patch guarded by the resourceVersion read before).
    pub async fn change(&self, read: &NodeState, change: &NodeChange) -> Result<(), Error> {
        self.nodes
            .patch(
                &self.node,
                &PatchParams::default(),
                &Patch::Merge(change.merge_patch(&read.resource_version)),
            )
            .await
            .map_err(failed(format!("PATCH node {}", self.node)))?;
        Ok(())
    }

    /// The pods bound to the Node.
    pub async fn pods(&self) -> Result<Vec<PodInfo>, Error> {
        let params = ListParams::default()
            .fields(&format!("spec.nodeName={}", self.node))
            .limit(MAX_PODS_LISTED);
        let list = self
            .pods
            .list(&params)
            .await
            .map_err(failed(format!("LIST pods on node {}", self.node)))?;
        Ok(list.items.iter().map(PodInfo::from_pod).collect())
    }

    /// Evicts a pod through policy/v1 with this grace period.
    pub async fn evict(&self, pod: &PodInfo, grace_secs: i64) -> Result<Eviction, Error> {
        let body = json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": { "name": pod.name, "namespace": pod.namespace },
            "deleteOptions": {
                "gracePeriodSeconds": grace_secs,
                "preconditions": { "uid": pod.uid },
            },
        });
        let url = format!(
            "/api/v1/namespaces/{}/pods/{}/eviction",
            percent(&pod.namespace),
            percent(&pod.name)
        );
        let req = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.to_string().into_bytes())
            .map_err(|e| Error::Request {
                what: format!("build eviction of {}", pod.id()),
                source: kube::Error::HttpError(e),
            })?;
        match self.client.request::<kube::core::Status>(req).await {
            Ok(_) => Ok(Eviction::Accepted),
            Err(kube::Error::Api(s)) if s.code == 429 => Ok(Eviction::Blocked(s.message.clone())),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Eviction::Gone),
            Err(source) => Err(Error::Request {
                what: format!("evict pod {}", pod.id()),
                source,
            }),
        }
    }

    /// Deletes a pod with this grace period; `Ok(false)` when it is gone already.
    pub async fn delete(&self, pod: &PodInfo, grace_secs: i64) -> Result<bool, Error> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        let mut params =
            DeleteParams::default().grace_period(u32::try_from(grace_secs.max(0)).unwrap_or(0));
        params.preconditions = Some(kube::api::Preconditions {
            uid: Some(pod.uid.clone()),
            resource_version: None,
        });
        match api.delete(&pod.name, &params).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(source) => Err(Error::Request {
                what: format!("delete pod {}", pod.id()),
                source,
            }),
        }
    }
}

/// Percent-encodes a path segment (names are DNS labels, but the bytes come from the API).
fn percent(s: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patch_is_guarded_and_removes_with_null() {
        let change = NodeChange {
            taints: Some(vec![Taint {
                key: "k".into(),
                value: String::new(),
                effect: "NoSchedule".into(),
            }]),
            unschedulable: Some(false),
            labels: BTreeMap::from([("l".to_owned(), None)]),
        };
        let p = change.merge_patch("42");
        assert_eq!(p["metadata"]["resourceVersion"], "42");
        assert_eq!(
            p["spec"]["taints"],
            json!([{"key": "k", "effect": "NoSchedule"}])
        );
        assert!(p["spec"]["unschedulable"].is_null());
        assert!(p["metadata"]["labels"]["l"].is_null());
        assert!(NodeChange::default().is_empty());
    }
}
