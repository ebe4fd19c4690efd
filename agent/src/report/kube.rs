//! The Kubernetes side: read our conditions back, PATCH them (strategic merge on
//! `nodes/<name>/status`), and create or bump deduplicated events.k8s.io/v1 Events. The
//! identity is the kubelet's own kubeconfig, so no RBAC beyond a node's is needed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use time::OffsetDateTime;

use super::conditions::{NodeCondition, status_patch};
use super::taints::{OWNED_ANNOTATION, Taint};

/// Bound on connecting to the API server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on one request/response.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// An event with the same reason and message within this window bumps the series count
/// instead of creating another event.
pub const EVENT_DEDUP_WINDOW: Duration = Duration::from_secs(10 * 60);
/// The namespace node events go to (where the kubelet puts its own).
pub const EVENT_NAMESPACE: &str = "default";
/// `reportingController` of our events.
pub const REPORTING_CONTROLLER: &str = "eks.amazonaws.com/eks-node-agent";
/// The label selector of the EKS node monitoring agent's pods (its Helm chart's and the EKS
/// add-on's `app.kubernetes.io/name`).
pub const MONITORING_AGENT_SELECTOR: &str = "app.kubernetes.io/name=eks-node-monitoring-agent";

/// A pod bound to this Node, as the pod check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    /// `metadata.uid`.
    pub uid: String,
    /// `namespace/name`.
    pub name: String,
    /// `metadata.deletionTimestamp` (when the pod should be gone), seconds since the epoch.
    pub deletion_unix: Option<i64>,
    /// Containers its status still reports running.
    pub running_containers: usize,
}

/// The Node's taints as read, with what the optimistic-concurrency write needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTaints {
    /// `metadata.resourceVersion`, the write's precondition.
    pub resource_version: String,
    /// `spec.taints`.
    pub taints: Vec<Taint>,
    /// The owned-taints annotation.
    pub owned: Option<String>,
}

/// Errors talking to the API server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig could not be read.
    #[error("cannot read the kubeconfig {path}; pass --kubeconfig with the kubelet's kubeconfig")]
    Kubeconfig {
        /// The kubeconfig path.
        path: PathBuf,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// A client could not be built from it.
    #[error("cannot build a Kubernetes client from {path}")]
    Client {
        /// The kubeconfig path.
        path: PathBuf,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// A request failed.
    #[error("{what} for node {node} failed")]
    Request {
        /// What was attempted.
        what: &'static str,
        /// The Node.
        node: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
}

/// A client with the kubeconfig's identity (token, client cert or exec plugin), every
/// request bounded by [`CONNECT_TIMEOUT`] and [`REQUEST_TIMEOUT`]. `server_retries` keeps
/// kube-rs's own retries of 429/503/504 (up to 15, backing off up to 1000 s); a caller with
/// its own deadline (the lifecycle drain, for which a 429 is a PodDisruptionBudget's answer)
/// turns them off.
pub async fn client(kubeconfig: &Path, server_retries: bool) -> Result<Client, Error> {
    let kc = Kubeconfig::read_from(kubeconfig).map_err(|source| Error::Kubeconfig {
        path: kubeconfig.to_path_buf(),
        source,
    })?;
    let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|source| Error::Kubeconfig {
            path: kubeconfig.to_path_buf(),
            source,
        })?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.read_timeout = Some(REQUEST_TIMEOUT);
    config.write_timeout = Some(REQUEST_TIMEOUT);
    config.default_retry = server_retries;
    Client::try_from(config).map_err(|source| Error::Client {
        path: kubeconfig.to_path_buf(),
        source,
    })
}

/// The API objects of one Node.
#[derive(Clone)]
pub struct NodeApi {
    nodes: Api<Node>,
    pods: Api<Pod>,
    events: Api<Event>,
    node: String,
}

impl std::fmt::Debug for NodeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeApi").field("node", &self.node).finish()
    }
}

impl NodeApi {
    /// A client with the kubeconfig's identity (token, client cert or exec plugin).
    pub async fn connect(kubeconfig: &Path, node: &str) -> Result<Self, Error> {
        Ok(Self::with_client(client(kubeconfig, true).await?, node))
    }

    /// The Node's taints, resourceVersion and owned-taints annotation.
    pub async fn taints(&self) -> Result<NodeTaints, Error> {
        let node = self
            .nodes
            .get(&self.node)
            .await
            .map_err(|source| Error::Request {
                what: "GET node",
                node: self.node.clone(),
                source,
            })?;
        let taints = node
            .spec
            .and_then(|s| s.taints)
            .unwrap_or_default()
            .into_iter()
            .map(|t| Taint {
                key: t.key,
                value: t.value,
                effect: t.effect,
                time_added: t.time_added.map(|x| x.0.to_string()),
            })
            .collect();
        Ok(NodeTaints {
            resource_version: node.metadata.resource_version.unwrap_or_default(),
            owned: node
                .metadata
                .annotations
                .and_then(|mut a| a.remove(OWNED_ANNOTATION)),
            taints,
        })
    }

    /// Replaces `spec.taints` and the owned-taints annotation (`None` removes it), on the
    /// condition that the Node is still at `resource_version` (else 409 Conflict).
    pub async fn set_taints(
        &self,
        resource_version: &str,
        taints: &[Taint],
        owned: Option<&str>,
    ) -> Result<(), Error> {
        let patch = serde_json::json!({
            "metadata": {
                "resourceVersion": resource_version,
                "annotations": { OWNED_ANNOTATION: owned },
            },
            "spec": { "taints": taints },
        });
        self.nodes
            .patch(&self.node, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(|source| Error::Request {
                what: "PATCH node taints",
                node: self.node.clone(),
                source,
            })?;
        Ok(())
    }

    /// How many of the EKS node monitoring agent's pods run on this Node.
    pub async fn monitoring_agent_pods(&self) -> Result<usize, Error> {
        let params = ListParams::default()
            .fields(&format!("spec.nodeName={}", self.node))
            .labels(MONITORING_AGENT_SELECTOR);
        self.pods
            .list(&params)
            .await
            .map(|l| l.items.len())
            .map_err(|source| Error::Request {
                what: "LIST the monitoring agent's pods",
                node: self.node.clone(),
                source,
            })
    }

    /// The pods bound to this Node (a node may list them: it is how the kubelet learns its
    /// pods).
    pub async fn pods(&self) -> Result<Vec<PodView>, Error> {
        let params = ListParams::default().fields(&format!("spec.nodeName={}", self.node));
        let list = self
            .pods
            .list(&params)
            .await
            .map_err(|source| Error::Request {
                what: "LIST the node's pods",
                node: self.node.clone(),
                source,
            })?;
        Ok(list
            .items
            .into_iter()
            .map(|p| {
                let running = p
                    .status
                    .and_then(|s| s.container_statuses)
                    .unwrap_or_default()
                    .iter()
                    .filter(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
                    .count();
                PodView {
                    uid: p.metadata.uid.unwrap_or_default(),
                    name: format!(
                        "{}/{}",
                        p.metadata.namespace.unwrap_or_default(),
                        p.metadata.name.unwrap_or_default()
                    ),
                    deletion_unix: p.metadata.deletion_timestamp.map(|t| t.0.as_second()),
                    running_containers: running,
                }
            })
            .collect())
    }

    /// Whether an error is the API server refusing the identity (401/403).
    pub fn is_forbidden(e: &Error) -> bool {
        matches!(e, Error::Request { source: kube::Error::Api(s), .. } if s.code == 401 || s.code == 403)
    }

    /// Whether an error is the object not existing (404).
    pub fn is_not_found(e: &Error) -> bool {
        matches!(e, Error::Request { source: kube::Error::Api(s), .. } if s.code == 404)
    }

    /// Whether an error is a failed precondition (409 Conflict).
    pub fn is_conflict(e: &Error) -> bool {
        matches!(e, Error::Request { source: kube::Error::Api(s), .. } if s.code == 409)
    }

    /// A Node's API objects over an existing client (many Nodes can share one, as the scale
    /// simulation does).
    pub fn with_client(client: Client, node: &str) -> Self {
        Self {
            nodes: Api::all(client.clone()),
            pods: Api::all(client.clone()),
            events: Api::namespaced(client, EVENT_NAMESPACE),
            node: node.to_string(),
        }
    }

    /// The Node's current conditions (all owners').
    pub async fn conditions(&self) -> Result<Vec<NodeCondition>, Error> {
        let node = self
            .nodes
            .get_status(&self.node)
            .await
            .map_err(|source| Error::Request {
                what: "GET node status",
                node: self.node.clone(),
                source,
            })?;
        let conditions = node
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .map(|c| NodeCondition {
                type_: c.type_,
                status: c.status,
                reason: c.reason.unwrap_or_default(),
                message: c.message.unwrap_or_default(),
                last_heartbeat_time: c.last_heartbeat_time.map(|t| t.0.to_string()),
                last_transition_time: c.last_transition_time.map(|t| t.0.to_string()),
            })
            .collect();
        Ok(conditions)
    }

    /// Strategic-merge PATCH of only these conditions.
    pub async fn patch_conditions(&self, conditions: &[NodeCondition]) -> Result<(), Error> {
        self.nodes
            .patch_status(
                &self.node,
                &PatchParams::default(),
                &Patch::Strategic(status_patch(conditions)),
            )
            .await
            .map_err(|source| Error::Request {
                what: "PATCH node status conditions",
                node: self.node.clone(),
                source,
            })?;
        Ok(())
    }

    /// Creates an event, or bumps its series when the deduplicator says so.
    pub async fn emit(
        &self,
        action: EventAction,
        warning: bool,
        reason: &str,
        note: &str,
    ) -> Result<(), Error> {
        let now = OffsetDateTime::now_utc();
        let micro = now
            .format(&time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
            ))
            .unwrap_or_default();
        let result = match action {
            EventAction::Create { name } => {
                let event: Event = serde_json::from_value(serde_json::json!({
                    "apiVersion": "events.k8s.io/v1",
                    "kind": "Event",
                    "metadata": { "name": name, "namespace": EVENT_NAMESPACE },
                    "eventTime": micro,
                    "reportingController": REPORTING_CONTROLLER,
                    "reportingInstance": format!("eks-node-agent-{}", self.node),
                    "action": "Check",
                    "reason": reason,
                    "note": note.chars().take(1024).collect::<String>(),
                    "type": if warning { "Warning" } else { "Normal" },
                    "regarding": { "apiVersion": "v1", "kind": "Node", "name": self.node },
                }))
                .map_err(|e| Error::Request {
                    what: "build event",
                    node: self.node.clone(),
                    source: kube::Error::SerdeError(e),
                })?;
                self.events
                    .create(&PostParams::default(), &event)
                    .await
                    .map(|_| ())
            }
            EventAction::Bump { name, count } => {
                let patch = serde_json::json!({
                    "series": { "count": count, "lastObservedTime": micro }
                });
                self.events
                    .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                    .map(|_| ())
            }
        };
        result.map_err(|source| Error::Request {
            what: "write event",
            node: self.node.clone(),
            source,
        })
    }
}

/// What to do for an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventAction {
    /// Create a new event with this name.
    Create {
        /// metadata.name.
        name: String,
    },
    /// Bump the series of an existing event.
    Bump {
        /// metadata.name.
        name: String,
        /// The new series count.
        count: u32,
    },
}

/// Deduplicates events by (reason, note) within [`EVENT_DEDUP_WINDOW`].
#[derive(Debug, Default)]
pub struct EventDedup {
    seen: HashMap<(String, String), (String, u32, OffsetDateTime)>,
    serial: u64,
}

impl EventDedup {
    /// Decides whether this event is new or a repeat.
    pub fn action(
        &mut self,
        node: &str,
        reason: &str,
        note: &str,
        now: OffsetDateTime,
    ) -> EventAction {
        self.seen
            .retain(|_, (_, _, first)| now - *first < EVENT_DEDUP_WINDOW);
        let key = (reason.to_string(), note.to_string());
        if let Some((name, count, _)) = self.seen.get_mut(&key) {
            *count += 1;
            return EventAction::Bump {
                name: name.clone(),
                count: *count,
            };
        }
        self.serial += 1;
        let name = format!(
            "{node}.{:x}{:04x}",
            now.unix_timestamp_nanos() / 1000,
            self.serial % 0x10000
        );
        self.seen.insert(key, (name.clone(), 1, now));
        EventAction::Create { name }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_bump_the_series_until_the_window_ends() {
        let mut d = EventDedup::default();
        let t0 = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let EventAction::Create { name } = d.action("n", "OOMKilling", "x", t0) else {
            panic!("first is a create")
        };
        assert_eq!(
            d.action("n", "OOMKilling", "x", t0 + Duration::from_secs(1)),
            EventAction::Bump {
                name: name.clone(),
                count: 2
            }
        );
        assert!(matches!(
            d.action("n", "OOMKilling", "y", t0),
            EventAction::Create { .. }
        ));
        assert!(matches!(
            d.action("n", "OOMKilling", "x", t0 + EVENT_DEDUP_WINDOW),
            EventAction::Create { .. }
        ));
    }
}
