//! The container runtime through the Kubernetes Container Runtime Interface: the
//! `runtime.v1.RuntimeService/Status` gRPC call on containerd's socket, the same call the
//! kubelet makes to decide whether the runtime and pod networking are ready.
//!
//! The transport is tonic's gRPC client (framing, status codes, prost encoding) over one
//! HTTP/2 connection (hyper) on the unix socket, opened for the call and closed after it.
//! The messages are declared with prost's derive from the published CRI API
//! (`k8s.io/cri-api/pkg/apis/runtime/v1/api.proto`): only the four messages this call uses,
//! with their field numbers; fields added later are skipped by prost as unknown fields.
//! The `k8s-cri` crate would generate the whole API with `protoc` at build time, a system
//! tool neither CI (clippy runs before any package install) nor the packaging build has.

use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;

use super::{Facts, NetworkVerdict, Outcome};

/// The gRPC path of the call.
const STATUS_PATH: &str = "/runtime.v1.RuntimeService/Status";
/// Bound on connecting to the socket and the HTTP/2 handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on the call once connected: a runtime that takes the connection and never answers
/// is hung, which must be told apart from a slow check (the check's own timeout is longer).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// The gRPC path of the pod sandbox list.
const LIST_SANDBOX_PATH: &str = "/runtime.v1.RuntimeService/ListPodSandbox";

/// `ListPodSandboxRequest` (api.proto): `PodSandboxFilter filter = 1`, not sent (all sandboxes).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListPodSandboxRequest {}

/// `ListPodSandboxResponse` (api.proto): `repeated PodSandbox items = 1`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListPodSandboxResponse {
    /// The sandboxes.
    #[prost(message, repeated, tag = "1")]
    pub items: Vec<PodSandbox>,
}

/// `PodSandbox` (api.proto): `id = 1`, `metadata = 2`, `state = 3` (0 ready, 1 not ready);
/// later fields are not read.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandbox {
    /// The sandbox ID.
    #[prost(string, tag = "1")]
    pub id: String,
    /// Whose sandbox it is.
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<PodSandboxMetadata>,
    /// `SANDBOX_READY` (0) or `SANDBOX_NOTREADY` (1).
    #[prost(int32, tag = "3")]
    pub state: i32,
}

/// `PodSandboxMetadata` (api.proto): `name = 1`, `uid = 2`, `namespace = 3`, `attempt = 4`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandboxMetadata {
    /// The pod's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The pod's UID.
    #[prost(string, tag = "2")]
    pub uid: String,
    /// The pod's namespace.
    #[prost(string, tag = "3")]
    pub namespace: String,
    /// The sandbox attempt.
    #[prost(uint32, tag = "4")]
    pub attempt: u32,
}

/// The CRI condition type for the runtime.
pub const RUNTIME_READY: &str = "RuntimeReady";
/// The CRI condition type for pod networking (the CNI plugin).
pub const NETWORK_READY: &str = "NetworkReady";
/// Our reason for CRI `NetworkReady` false (containerd's own reason for a missing CNI).
pub const NETWORK_NOT_READY: &str = "NetworkPluginNotReady";

/// `StatusRequest` (api.proto): `bool verbose = 1`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusRequest {
    /// Ask for the runtime's extra `info` map (not used: false).
    #[prost(bool, tag = "1")]
    pub verbose: bool,
}

/// `StatusResponse` (api.proto): `RuntimeStatus status = 1` (`info = 2` and later fields are
/// not read).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusResponse {
    /// The runtime's conditions.
    #[prost(message, optional, tag = "1")]
    pub status: Option<RuntimeStatus>,
}

/// `RuntimeStatus` (api.proto): `repeated RuntimeCondition conditions = 1`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RuntimeStatus {
    /// Every condition the runtime reports.
    #[prost(message, repeated, tag = "1")]
    pub conditions: Vec<RuntimeCondition>,
}

/// `RuntimeCondition` (api.proto): type, status, reason, message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RuntimeCondition {
    /// `RuntimeReady`, `NetworkReady` or a runtime-specific type.
    #[prost(string, tag = "1")]
    pub r#type: String,
    /// True when the condition holds.
    #[prost(bool, tag = "2")]
    pub status: bool,
    /// CamelCase reason, e.g. `NetworkPluginNotReady`.
    #[prost(string, tag = "3")]
    pub reason: String,
    /// Detail.
    #[prost(string, tag = "4")]
    pub message: String,
}

/// Errors of the CRI call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket did not accept a connection.
    #[error("cannot connect to {socket}")]
    Connect {
        /// The socket.
        socket: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP/2 handshake failed or timed out.
    #[error("{socket} did not complete an HTTP/2 handshake")]
    Handshake {
        /// The socket.
        socket: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Connected, but no answer within [`CALL_TIMEOUT`].
    #[error("{path} on {socket} got no answer within {CALL_TIMEOUT:?}")]
    NoAnswer {
        /// The socket.
        socket: String,
        /// The gRPC method.
        path: &'static str,
    },
    /// The call returned a gRPC error status (e.g. `Unimplemented` when the CRI plugin is
    /// disabled).
    #[error("{path} on {socket} failed: {code:?}: {message}")]
    Call {
        /// The socket.
        socket: String,
        /// The gRPC method.
        path: &'static str,
        /// The gRPC status code.
        code: tonic::Code,
        /// The status message.
        message: String,
    },
}

/// One HTTP/2 connection as the service tonic's client sends requests through.
#[derive(Clone)]
struct H2(hyper::client::conn::http2::SendRequest<tonic::body::Body>);

impl tower_service::Service<http::Request<tonic::body::Body>> for H2 {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(req))
    }
}

/// One unary CRI call on `socket`. The caller bounds the whole call (the check's timeout);
/// connecting is bounded by [`CONNECT_TIMEOUT`] here too.
async fn unary<Req, Resp>(socket: &Path, path: &'static str, request: Req) -> Result<Resp, Error>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let label = socket.display().to_string();
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::UnixStream::connect(socket))
        .await
        .unwrap_or_else(|_| Err(std::io::Error::from(std::io::ErrorKind::TimedOut)))
        .map_err(|source| Error::Connect {
            socket: label.clone(),
            source,
        })?;
    let handshake = hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .handshake::<_, tonic::body::Body>(TokioIo::new(stream));
    let (sender, connection) = tokio::time::timeout(CONNECT_TIMEOUT, handshake)
        .await
        .map_err(|e| Error::Handshake {
            socket: label.clone(),
            source: Box::new(e),
        })?
        .map_err(|e| Error::Handshake {
            socket: label.clone(),
            source: Box::new(e),
        })?;
    // The connection is driven here and dropped (closed) when the call is done.
    let driver = tokio::spawn(connection);
    let origin = http::Uri::from_static("http://localhost");
    let mut grpc = tonic::client::Grpc::with_origin(H2(sender), origin);
    let result = tokio::time::timeout(CALL_TIMEOUT, async {
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("connection not ready: {e}")))?;
        grpc.unary(
            tonic::Request::new(request),
            http::uri::PathAndQuery::from_static(path),
            tonic_prost::ProstCodec::<Req, Resp>::default(),
        )
        .await
    })
    .await;
    driver.abort();
    let Ok(result) = result else {
        return Err(Error::NoAnswer {
            socket: label,
            path,
        });
    };
    result
        .map(tonic::Response::into_inner)
        .map_err(|status| Error::Call {
            socket: label,
            path,
            code: status.code(),
            message: status.message().to_string(),
        })
}

/// Calls `RuntimeService/Status` on `socket`.
pub async fn status(socket: &Path) -> Result<Vec<RuntimeCondition>, Error> {
    let resp: StatusResponse = unary(socket, STATUS_PATH, StatusRequest { verbose: false }).await?;
    Ok(resp.status.map(|s| s.conditions).unwrap_or_default())
}

/// Calls `RuntimeService/ListPodSandbox` (no filter) on `socket`: every pod sandbox the
/// runtime holds, ready or not.
pub async fn list_sandboxes(socket: &Path) -> Result<Vec<PodSandbox>, Error> {
    let resp: ListPodSandboxResponse =
        unary(socket, LIST_SANDBOX_PATH, ListPodSandboxRequest {}).await?;
    Ok(resp.items)
}

fn find<'a>(conditions: &'a [RuntimeCondition], kind: &str) -> Option<&'a RuntimeCondition> {
    conditions.iter().find(|c| c.r#type == kind)
}

/// The runtime's own reason and message, for our message.
fn detail(c: &RuntimeCondition) -> String {
    match (c.reason.trim(), c.message.trim()) {
        ("", m) => m.to_string(),
        (r, "") => r.to_string(),
        (r, m) => format!("{r}: {m}"),
    }
}

/// The verdict over the runtime's conditions: `RuntimeReady` decides the outcome
/// (ContainerRuntimeReady); `NetworkReady` rides along as a network verdict (for
/// NetworkingReady). A condition the runtime does not report counts as not ready, as the
/// kubelet treats it. The reasons are the catalog's (`ContainerRuntimeNotReady`,
/// `NetworkPluginNotReady`); the runtime's own reason is in the message.
pub fn evaluate(conditions: &[RuntimeCondition]) -> Outcome {
    let network = match find(conditions, NETWORK_READY) {
        Some(c) if c.status => NetworkVerdict {
            ready: true,
            reason: String::new(),
            message: "container runtime reports NetworkReady".to_string(),
        },
        Some(c) => NetworkVerdict {
            ready: false,
            reason: NETWORK_NOT_READY.to_string(),
            message: format!(
                "container runtime reports NetworkReady=false: {}",
                detail(c)
            ),
        },
        None => NetworkVerdict {
            ready: false,
            reason: NETWORK_NOT_READY.to_string(),
            message: "container runtime reports no NetworkReady condition".to_string(),
        },
    };
    let network_problem = (!network.ready).then(|| super::Problem {
        reason: network.reason.clone(),
        message: network.message.clone(),
        evented: false,
    });
    let facts = Facts {
        runtime_ready: find(conditions, RUNTIME_READY).map(|c| c.status),
        network: Some(network),
        ..Facts::default()
    };
    let outcome = match find(conditions, RUNTIME_READY) {
        Some(c) if c.status => Outcome::ok("container runtime reports RuntimeReady"),
        Some(c) => Outcome::fail(
            "ContainerRuntimeNotReady",
            format!(
                "container runtime reports RuntimeReady=false: {}",
                detail(c)
            ),
        ),
        None => Outcome::fail(
            "ContainerRuntimeNotReady",
            "container runtime reports no RuntimeReady condition",
        ),
    };
    let mut outcome = outcome.with_facts(facts);
    // Pod networking is NetworkingReady's: a problem of its own beside the runtime's verdict.
    outcome.more.extend(network_problem);
    outcome
}

/// The containerd check's CRI part: call Status and judge it.
pub async fn check(socket: &Path) -> Outcome {
    match status(socket).await {
        Ok(conditions) => evaluate(&conditions),
        Err(e @ Error::Connect { .. }) => {
            Outcome::fail("ContainerdUnreachable", crate::model::text::error_chain(&e))
        }
        Err(e @ (Error::Handshake { .. } | Error::NoAnswer { .. })) => Outcome::fail(
            "ContainerdNotAnswering",
            crate::model::text::error_chain(&e),
        ),
        Err(e @ Error::Call { .. }) => Outcome::fail(
            "ContainerRuntimeCRIFailed",
            crate::model::text::error_chain(&e),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn cond(t: &str, status: bool, reason: &str, message: &str) -> RuntimeCondition {
        RuntimeCondition {
            r#type: t.into(),
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }

    #[test]
    fn both_ready_is_healthy_with_a_ready_network() {
        let out = evaluate(&[
            cond(RUNTIME_READY, true, "", ""),
            cond(NETWORK_READY, true, "", ""),
        ]);
        assert!(out.is_healthy());
        assert_eq!(out.facts.runtime_ready, Some(true));
        assert!(out.facts.network.as_ref().is_some_and(|n| n.ready));
    }

    #[test]
    fn network_not_ready_keeps_the_runtime_healthy_and_carries_the_reason() {
        let out = evaluate(&[
            cond(RUNTIME_READY, true, "", ""),
            cond(
                NETWORK_READY,
                false,
                "NetworkPluginNotReady",
                "Network plugin returns error: cni plugin not initialized",
            ),
        ]);
        assert!(out.is_healthy());
        let n = out.facts.network.unwrap();
        assert!(!n.ready);
        assert_eq!(n.reason, "NetworkPluginNotReady");
        assert!(n.message.contains("cni plugin not initialized"));
    }

    #[test]
    fn runtime_not_ready_or_missing_is_a_problem() {
        let out = evaluate(&[cond(RUNTIME_READY, false, "", "shim broken")]);
        assert_eq!(out.reason, "ContainerRuntimeNotReady");
        assert!(out.message.contains("shim broken"));
        let out = evaluate(&[cond(RUNTIME_READY, false, "RuntimeBroken", "")]);
        assert_eq!(
            out.reason, "ContainerRuntimeNotReady",
            "the catalog's reason"
        );
        assert!(out.message.contains("RuntimeBroken"), "{}", out.message);
        let out = evaluate(&[]);
        assert_eq!(out.reason, "ContainerRuntimeNotReady");
        assert_eq!(out.facts.network.unwrap().reason, "NetworkPluginNotReady");
    }

    #[test]
    fn wire_format_matches_the_published_field_numbers() {
        // RuntimeCondition{type="NetworkReady"(1), status=true(2)} inside RuntimeStatus(1)
        // inside StatusResponse(1), plus an unknown field 3 that newer runtimes send.
        let cond = cond(NETWORK_READY, true, "", "").encode_to_vec();
        assert_eq!(&cond[..2], &[0x0a, 12], "field 1, length-delimited");
        assert_eq!(&cond[14..], &[0x10, 0x01], "field 2, varint true");
        let mut status = vec![0x0a, cond.len() as u8];
        status.extend_from_slice(&cond);
        let mut resp = vec![0x0a, status.len() as u8];
        resp.extend_from_slice(&status);
        resp.extend_from_slice(&[0x1a, 0x00]);
        let decoded = StatusResponse::decode(resp.as_slice()).unwrap();
        assert_eq!(decoded.status.unwrap().conditions[0].r#type, NETWORK_READY);
        assert_eq!(
            StatusRequest { verbose: true }.encode_to_vec(),
            vec![0x08, 0x01]
        );
    }
}
