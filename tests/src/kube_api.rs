//! A Kubernetes API server emulator for the daemon's tests: real HTTPS with a test CA
//! (rcgen), bearer-token authentication, `GET /api/v1/nodes/{name}[/status]`,
//! `PATCH /api/v1/nodes/{name}/status` with strategic-merge semantics for
//! `status.conditions` (merge by `type`, as the Node schema declares) and JSON merge
//! semantics elsewhere, and events.k8s.io/v1 Event create and patch. Errors are
//! `meta.k8s.io/v1` `Status` objects with the codes a real API server uses. Every request is
//! recorded.
//!
//! For the lifecycle drain it serves pods and their disruption budgets:
//! - `PATCH /api/v1/nodes/{name}` (merge or strategic merge; taints are an atomic list), with
//!   the `metadata.resourceVersion` precondition (409 Conflict when it is stale);
//! - `GET /api/v1/pods?fieldSelector=spec.nodeName=N` and `GET .../namespaces/{ns}/pods/{name}`;
//! - `POST .../pods/{name}/eviction` (policy/v1 Eviction): a pod matched by one
//!   PodDisruptionBudget is evicted only while the budget allows a disruption (healthy pods
//!   above `minAvailable`, or at most `maxUnavailable` not healthy), else 429 TooManyRequests
//!   with a `DisruptionBudget` cause; more than one budget is a 500, as the API server
//!   answers; a pod being deleted already is accepted without a budget check;
//!   `deleteOptions.gracePeriodSeconds` and `preconditions.uid` are honoured;
//! - `DELETE .../pods/{name}` with a grace period (body `gracePeriodSeconds` or the query):
//!   the pod gets `deletionTimestamp` and goes once its containers stopped: after the grace
//!   period or its own stop time, whichever is first (0 removes it at once); a second
//!   delete can only shorten the grace period.
//!
//! An evicted pod owned by a ReplicaSet or StatefulSet gets a replacement on another node,
//! Ready after a configurable delay (the controller and the scheduler, emulated), which is
//! what lets a budget allow the next eviction.
//!
//! For kubeadm token discovery it also serves `GET
//! /api/v1/namespaces/kube-public/configmaps/cluster-info` anonymously (kubeadm's RBAC grants
//! `system:anonymous` that one read), as a `v1` ConfigMap whose `kubeconfig` key holds the
//! server and the CA, and one `jws-kubeconfig-<token id>` key per valid token: a detached JWS
//! (HS256, key = token secret, `kid` = token id), made here with the josekit JOSE library the
//! way k8s.io/cluster-bootstrap's bootstrapsigner makes it. Knobs: publish for some tokens
//! only (an expired token has no key), change the ConfigMap after signing, list another CA,
//! refuse anonymous reads, or remove the ConfigMap.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Content-Type header.
    pub content_type: String,
    /// The body as JSON (Null when empty or not JSON).
    pub body: Value,
    /// The status answered.
    pub status: u16,
    /// Whether the request carried an `Authorization` header.
    pub authorized: bool,
    /// The query string.
    pub query: String,
    /// When it arrived.
    pub at: std::time::SystemTime,
}

/// A pod and the emulated kubelet's view of it.
#[derive(Debug, Clone)]
struct PodEntry {
    obj: Value,
    /// How long its containers take to stop after SIGTERM.
    stops_in: std::time::Duration,
    /// When it goes away (set by a deletion).
    remove_at: Option<std::time::Instant>,
    /// When it becomes Ready (replacements).
    ready_at: Option<std::time::Instant>,
}

/// A pod to add with [`KubeApi::add_pod`].
#[derive(Debug, Clone)]
pub struct PodSpec {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The Node it is bound to.
    pub node: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Controller kind (`ReplicaSet`, `DaemonSet`, `StatefulSet`...) or None.
    pub owner: Option<String>,
    /// A mirror pod (a static pod's copy).
    pub mirror: bool,
    /// `spec.priority`.
    pub priority: i32,
    /// `spec.terminationGracePeriodSeconds`.
    pub grace_period_secs: i64,
    /// How long the containers take to stop after SIGTERM.
    pub stops_in: std::time::Duration,
}

impl PodSpec {
    /// A Ready pod of a ReplicaSet, grace period 30 s, stopping in 100 ms.
    pub fn new(namespace: &str, name: &str, node: &str) -> PodSpec {
        PodSpec {
            namespace: namespace.into(),
            name: name.into(),
            node: node.into(),
            labels: BTreeMap::new(),
            owner: Some("ReplicaSet".into()),
            mirror: false,
            priority: 0,
            grace_period_secs: 30,
            stops_in: std::time::Duration::from_millis(100),
        }
    }
}

#[derive(Debug, Default)]
struct Store {
    /// The `cluster-info` ConfigMap in kube-public, when published.
    cluster_info: Option<Value>,
    /// Answer anonymous reads of cluster-info with 403 (RBAC without kubeadm's Role).
    deny_anonymous_cluster_info: bool,
    /// Served from the second read of cluster-info on (a ConfigMap that changes under the
    /// reader).
    cluster_info_after_first_read: Option<Value>,
    nodes: BTreeMap<String, Value>,
    events: BTreeMap<(String, String), Value>,
    requests: Vec<Recorded>,
    resource_version: u64,
    git_version: Option<String>,
    /// Statuses to answer the next authenticated requests with (fault injection).
    faults: std::collections::VecDeque<u16>,
    pods: BTreeMap<(String, String), PodEntry>,
    pdbs: Vec<Value>,
    /// When a pod went away, by `namespace/name`.
    removed: Vec<(String, std::time::SystemTime)>,
    /// How long a replacement takes to become Ready (None: no replacements).
    replacement_ready_after: Option<std::time::Duration>,
    serial: u64,
    /// Refuse Node PATCHes that change taints, as NodeRestriction does for a node's own
    /// identity.
    node_restriction: bool,
}

/// A running emulator; stops when dropped.
#[derive(Debug)]
pub struct KubeApi {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// PEM of the CA that signed the server certificate.
    pub ca_pem: String,
    /// The CA's SubjectPublicKeyInfo (DER), as rcgen encodes its public key.
    pub ca_spki_der: Vec<u8>,
    token: String,
    store: Arc<Mutex<Store>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn status(code: StatusCode, reason: &str, message: &str) -> (StatusCode, Value) {
    (
        code,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code.as_u16()
        }),
    )
}

/// JSON merge patch (RFC 7386).
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Strategic merge for a Node: `status.conditions` and `status.addresses` merge by
/// `type`; other fields follow JSON merge semantics. `$patch` directives are rejected.
pub fn strategic_merge_node(node: &mut Value, patch: &Value) -> Result<(), String> {
    if patch.to_string().contains("\"$patch\"") || patch.to_string().contains("\"$retainKeys\"") {
        return Err("patch directives are not supported by this emulator".into());
    }
    let mut rest = patch.clone();
    for list in ["conditions", "addresses"] {
        let Some(items) = rest
            .pointer_mut(&format!("/status/{list}"))
            .map(Value::take)
        else {
            continue;
        };
        let Value::Array(items) = items else {
            return Err(format!("status.{list} must be a list"));
        };
        let current = node
            .pointer_mut("/status")
            .and_then(Value::as_object_mut)
            .map(|s| s.entry(list).or_insert_with(|| json!([])));
        let Some(Value::Array(current)) = current else {
            return Err("node has no status".into());
        };
        for item in items {
            let Some(key) = item.get("type").and_then(Value::as_str).map(str::to_string) else {
                return Err(format!(
                    "status.{list}: every item needs its merge key `type`"
                ));
            };
            match current
                .iter_mut()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(&key))
            {
                Some(existing) => merge(existing, &item),
                None => current.push(item),
            }
        }
        if let Some(s) = rest.pointer_mut("/status").and_then(Value::as_object_mut) {
            s.remove(list);
        }
    }
    merge(node, &rest);
    Ok(())
}

impl KubeApi {
    /// Starts the emulator on a free loopback port; requests need `Bearer <token>`.
    pub async fn start(token: &str) -> KubeApi {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kube-api emulator CA");
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let ca = ca_params.self_signed(&ca_key).expect("ca cert");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("server params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kube-apiserver");
        let key = rcgen::KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &ca, &ca_key).expect("server cert");

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("tls versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("server tls config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let store = Arc::new(Mutex::new(Store::default()));
        let token_owned = token.to_string();
        let store_task = store.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let store = store_task.clone();
                let token = token_owned.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let store = store.clone();
                        let token = token.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(handle(req, &store, &token).await)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
                });
            }
        });
        KubeApi {
            url: format!("https://{addr}"),
            ca_pem: ca.pem(),
            ca_spki_der: ca_key.public_key_der(),
            token: token.to_string(),
            store,
            task,
        }
    }

    /// A kubeconfig that reaches this emulator with the right token.
    pub fn kubeconfig(&self) -> String {
        use base64::Engine as _;
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: emu\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\n\
contexts:\n- name: emu\n  context:\n    cluster: emu\n    user: kubelet\ncurrent-context: emu\n\
users:\n- name: kubelet\n  user:\n    token: {}\n",
            self.url, self.token
        )
    }

    /// The kubeadm CA pin of this emulator's CA: `sha256:` + hex SHA-256 of its DER
    /// SubjectPublicKeyInfo.
    pub fn ca_pin(&self) -> String {
        spki_pin(&self.ca_spki_der)
    }

    /// Publishes `cluster-info` as `kubeadm init` and the bootstrapsigner controller leave it:
    /// this server and its CA, signed for each of `tokens` (`<id>.<secret>`).
    pub fn publish_cluster_info(&self, tokens: &[&str]) {
        self.publish_cluster_info_with_ca(tokens, &self.ca_pem);
    }

    /// Like [`KubeApi::publish_cluster_info`] but listing `ca_pem` as the cluster CA.
    pub fn publish_cluster_info_with_ca(&self, tokens: &[&str], ca_pem: &str) {
        let kubeconfig = cluster_info_kubeconfig(&self.url, ca_pem);
        let mut data = BTreeMap::new();
        for token in tokens {
            let (id, _) = token.split_once('.').expect("token is <id>.<secret>");
            data.insert(
                format!("jws-kubeconfig-{id}"),
                kubeadm_detached_jws(&kubeconfig, token),
            );
        }
        data.insert("kubeconfig".to_string(), kubeconfig);
        self.set_cluster_info_data(data);
    }

    /// Replaces the ConfigMap's data as it is (no signing).
    pub fn set_cluster_info_data(&self, data: BTreeMap<String, String>) {
        let cm = json!({
            "kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {
                "name": "cluster-info", "namespace": "kube-public",
                "uid": "6f1c1d52-0b7e-4b7d-9a37-3c1b1a4d2f10", "resourceVersion": "321",
                "creationTimestamp": "2026-11-25T10:00:00Z"
            },
            "data": data
        });
        self.store.lock().expect("store").cluster_info = Some(cm);
    }

    /// The ConfigMap's data as served now.
    pub fn cluster_info_data(&self) -> BTreeMap<String, String> {
        self.store
            .lock()
            .expect("store")
            .cluster_info
            .as_ref()
            .and_then(|cm| serde_json::from_value(cm["data"].clone()).ok())
            .unwrap_or_default()
    }

    /// Edits the served data in place (after signing: a tampered ConfigMap).
    pub fn edit_cluster_info(&self, edit: impl FnOnce(&mut BTreeMap<String, String>)) {
        let mut data = self.cluster_info_data();
        edit(&mut data);
        self.set_cluster_info_data(data);
    }

    /// From the second read on, serves `data` instead (as if cluster-info changed between the
    /// unverified and the CA-verified read).
    pub fn change_cluster_info_after_first_read(&self, data: BTreeMap<String, String>) {
        let current = self.store.lock().expect("store").cluster_info.clone();
        self.set_cluster_info_data(data);
        let mut s = self.store.lock().expect("store");
        s.cluster_info_after_first_read = s.cluster_info.take();
        s.cluster_info = current;
    }

    /// Removes the ConfigMap (reads answer 404 NotFound).
    pub fn remove_cluster_info(&self) {
        self.store.lock().expect("store").cluster_info = None;
    }

    /// Refuses anonymous reads of cluster-info with 403, as RBAC does without kubeadm's Role.
    pub fn deny_anonymous_cluster_info(&self, deny: bool) {
        self.store
            .lock()
            .expect("store")
            .deny_anonymous_cluster_info = deny;
    }

    /// Adds a Node as the kubelet registers it, with kubelet-owned conditions.
    pub fn add_node(&self, name: &str, conditions: Value) {
        let node = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": { "name": name, "uid": format!("uid-{name}"), "resourceVersion": "1" },
            "spec": {},
            "status": { "conditions": conditions }
        });
        self.store
            .lock()
            .expect("store")
            .nodes
            .insert(name.to_string(), node);
    }

    /// Adds a pod (Running and Ready).
    pub fn add_pod(&self, spec: PodSpec) {
        let mut s = self.store.lock().expect("store");
        s.serial += 1;
        let uid = format!("pod-uid-{}", s.serial);
        let mut meta = json!({
            "name": spec.name, "namespace": spec.namespace, "uid": uid,
            "resourceVersion": "1", "labels": spec.labels,
            "creationTimestamp": "2026-12-01T00:00:00Z",
        });
        if let Some(kind) = &spec.owner {
            meta["ownerReferences"] = json!([{
                "apiVersion": "apps/v1", "kind": kind, "name": format!("{}-owner", spec.name),
                "uid": format!("owner-{}", spec.name), "controller": true,
            }]);
        }
        if spec.mirror {
            meta["annotations"] = json!({ "kubernetes.io/config.mirror": "0123456789abcdef" });
        }
        let obj = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {
                "nodeName": spec.node, "priority": spec.priority,
                "terminationGracePeriodSeconds": spec.grace_period_secs,
                "containers": [{ "name": "app", "image": "public.ecr.aws/docker/library/busybox:1" }],
            },
            "status": { "phase": "Running", "conditions": [{ "type": "Ready", "status": "True" }] },
        });
        s.pods.insert(
            (spec.namespace, spec.name),
            PodEntry {
                obj,
                stops_in: spec.stops_in,
                remove_at: None,
                ready_at: None,
            },
        );
    }

    /// Adds a PodDisruptionBudget (`policy/v1`) selecting `match_labels`, with `minAvailable`
    /// or `maxUnavailable` (integers).
    pub fn add_pdb(
        &self,
        namespace: &str,
        name: &str,
        match_labels: &[(&str, &str)],
        min_available: Option<i64>,
        max_unavailable: Option<i64>,
    ) {
        let labels: BTreeMap<&str, &str> = match_labels.iter().copied().collect();
        let mut spec = json!({ "selector": { "matchLabels": labels } });
        if let Some(m) = min_available {
            spec["minAvailable"] = json!(m);
        }
        if let Some(m) = max_unavailable {
            spec["maxUnavailable"] = json!(m);
        }
        self.store.lock().expect("store").pdbs.push(json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": { "name": name, "namespace": namespace }, "spec": spec,
        }));
    }

    /// Evicted pods of a ReplicaSet or StatefulSet get a replacement elsewhere that is Ready
    /// after `delay` (None: no replacements).
    pub fn set_replacement_ready_after(&self, delay: Option<std::time::Duration>) {
        self.store.lock().expect("store").replacement_ready_after = delay;
    }

    /// Refuses Node PATCHes that change `spec.taints` with 403, as the NodeRestriction
    /// admission plugin does for a node's own identity (the kubelet's credentials).
    pub fn enforce_node_restriction(&self, on: bool) {
        self.store.lock().expect("store").node_restriction = on;
    }

    /// The pods bound to `node` now (`namespace/name`).
    pub fn pods_on(&self, node: &str) -> Vec<String> {
        let mut s = self.store.lock().expect("store");
        sweep(&mut s);
        s.pods
            .values()
            .filter(|p| p.obj.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node))
            .map(|p| pod_id(&p.obj))
            .collect()
    }

    /// When each pod went away (`namespace/name`).
    pub fn removed_pods(&self) -> Vec<(String, std::time::SystemTime)> {
        let mut s = self.store.lock().expect("store");
        sweep(&mut s);
        s.removed.clone()
    }

    /// The Node as stored.
    pub fn node(&self, name: &str) -> Option<Value> {
        self.store.lock().expect("store").nodes.get(name).cloned()
    }

    /// A condition of a Node by type.
    pub fn condition(&self, node: &str, type_: &str) -> Option<Value> {
        self.node(node)?
            .pointer("/status/conditions")?
            .as_array()?
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
            .cloned()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.store.lock().expect("store").requests.clone()
    }

    /// Sets the `gitVersion` that `GET /version` answers (default [`DEFAULT_GIT_VERSION`]).
    /// Answers the next authenticated requests with these statuses, in order, as an API
    /// server does under contention or overload: 409 `Conflict`, 429 `TooManyRequests`
    /// (with `Retry-After`-style message), 500 `InternalError`, 503 `ServiceUnavailable`.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.store
            .lock()
            .expect("store")
            .faults
            .extend(statuses.iter().copied());
    }

    /// Faults queued and not yet served.
    pub fn faults_pending(&self) -> usize {
        self.store.lock().expect("store").faults.len()
    }

    pub fn set_version(&self, git_version: &str) {
        self.store.lock().expect("store").git_version = Some(git_version.to_string());
    }

    /// Events stored, by (namespace, name).
    pub fn events(&self) -> Vec<Value> {
        self.store
            .lock()
            .expect("store")
            .events
            .values()
            .cloned()
            .collect()
    }
}

/// `sha256:<hex>` of a DER SubjectPublicKeyInfo (kubeadm's CA pin format).
pub fn spki_pin(spki_der: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(spki_der)))
}

/// The kubeconfig `kubeadm init` puts in cluster-info (kubeadm's serialization: one unnamed
/// cluster, no contexts or users).
pub fn cluster_info_kubeconfig(server: &str, ca_pem: &str) -> String {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n"
    )
}

/// The detached JWS the bootstrapsigner controller stores as `jws-kubeconfig-<id>`: JWS
/// compact serialization (josekit) of `content`, HS256 with the token secret as the key and
/// the token id as `kid`, with the payload part removed (`header..signature`).
/// k8s.io/cluster-bootstrap zero-pads the secret to 32 bytes for go-jose; so does this.
pub fn kubeadm_detached_jws(content: &str, token: &str) -> String {
    let (id, secret) = token.split_once('.').expect("token is <id>.<secret>");
    let mut key = secret.as_bytes().to_vec();
    if key.len() < 32 {
        key.resize(32, 0);
    }
    let mut header = josekit::jws::JwsHeader::new();
    header.set_key_id(id);
    let signer = josekit::jws::HS256
        .signer_from_bytes(&key)
        .expect("HS256 signer");
    let compact = josekit::jws::serialize_compact(content.as_bytes(), &header, &signer)
        .expect("JWS compact serialization");
    let parts: Vec<&str> = compact.split('.').collect();
    assert_eq!(parts.len(), 3, "compact JWS has three parts");
    format!("{}..{}", parts[0], parts[2])
}

const CLUSTER_INFO_PATH: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";

async fn handle(
    req: Request<hyper::body::Incoming>,
    store: &Mutex<Store>,
    token: &str,
) -> Response<Full<Bytes>> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let has_auth = req.headers().contains_key(hyper::header::AUTHORIZATION);
    let query = req.uri().query().unwrap_or("").to_string();
    let at = std::time::SystemTime::now();
    let auth_ok = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {token}"));
    let bytes = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let (code, answer) = {
        let mut s = store.lock().expect("store");
        let result = if let Some(answer) = public_info(&s, &method, &path) {
            answer
        } else if method == "GET" && path == CLUSTER_INFO_PATH {
            // kubeadm's Role lets anyone, system:anonymous included, get this one object.
            match (&s.cluster_info, s.deny_anonymous_cluster_info && !auth_ok) {
                (_, true) => status(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    "configmaps \"cluster-info\" is forbidden: User \"system:anonymous\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"kube-public\"",
                ),
                (Some(cm), false) => {
                    let answer = (StatusCode::OK, cm.clone());
                    if let Some(next) = s.cluster_info_after_first_read.take() {
                        s.cluster_info = Some(next);
                    }
                    answer
                }
                (None, false) => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "configmaps \"cluster-info\" not found",
                ),
            }
        } else if auth_ok && let Some(code) = s.faults.pop_front() {
            injected_fault(code, &path)
        } else if auth_ok {
            sweep(&mut s);
            match pod_route(&mut s, &method, &path, &query, &content_type, &body) {
                Some(answer) => answer,
                None => route(&mut s, &method, &path, &content_type, &body),
            }
        } else {
            status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
        };
        s.requests.push(Recorded {
            method,
            path,
            content_type,
            body,
            status: result.0.as_u16(),
            authorized: has_auth,
            query,
            at,
        });
        result
    };
    let mut resp = Response::new(Full::new(Bytes::from(answer.to_string())));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// What `GET /version` answers unless [`KubeApi::set_version`] says otherwise.
pub const DEFAULT_GIT_VERSION: &str = "v1.33.5-eks-3025e55";

/// `GET /version`, which the `system:public-info-viewer` role opens to anonymous clients:
/// a `version.Info` (authenticated clients get the same answer).
fn public_info(s: &Store, method: &str, path: &str) -> Option<(StatusCode, Value)> {
    if method != "GET" {
        return None;
    }
    match path {
        "/version" => {
            let git = s.git_version.as_deref().unwrap_or(DEFAULT_GIT_VERSION);
            let v = git.trim_start_matches('v');
            let mut parts = v.split(['.', '-', '+']);
            let major = parts.next().unwrap_or("");
            let minor = parts.next().unwrap_or("");
            Some((
                StatusCode::OK,
                json!({
                    "major": major, "minor": format!("{minor}+"), "gitVersion": git,
                    "gitCommit": "3025e55", "gitTreeState": "clean",
                    "buildDate": "2025-09-01T00:00:00Z", "goVersion": "go1.24.6",
                    "compiler": "gc", "platform": "linux/amd64"
                }),
            ))
        }
        _ => None,
    }
}

fn route(
    s: &mut Store,
    method: &str,
    path: &str,
    ctype: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    s.resource_version += 1;
    let rv = s.resource_version.to_string();
    match (method, parts.as_slice()) {
        ("GET", ["api", "v1", "nodes", name]) | ("GET", ["api", "v1", "nodes", name, "status"]) => {
            match s.nodes.get(*name) {
                Some(n) => (StatusCode::OK, n.clone()),
                None => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("nodes \"{name}\" not found"),
                ),
            }
        }
        ("PATCH", ["api", "v1", "nodes", name, "status"]) => {
            if ctype != "application/strategic-merge-patch+json"
                && ctype != "application/merge-patch+json"
            {
                return status(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    &format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json; got {ctype}"
                    ),
                );
            }
            let Some(node) = s.nodes.get_mut(*name) else {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("nodes \"{name}\" not found"),
                );
            };
            let result = if ctype == "application/strategic-merge-patch+json" {
                strategic_merge_node(node, body)
            } else {
                merge(node, body);
                Ok(())
            };
            match result {
                Ok(()) => {
                    node["metadata"]["resourceVersion"] = json!(rv);
                    (StatusCode::OK, node.clone())
                }
                Err(e) => status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &e),
            }
        }
        ("POST", ["apis", "events.k8s.io", "v1", "namespaces", ns, "events"]) => {
            let Some(name) = body.pointer("/metadata/name").and_then(Value::as_str) else {
                return status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "metadata.name: Required value",
                );
            };
            for required in [
                "/eventTime",
                "/reportingController",
                "/reportingInstance",
                "/action",
                "/reason",
                "/regarding/kind",
            ] {
                if body.pointer(required).is_none_or(Value::is_null) {
                    return status(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Invalid",
                        &format!(
                            "{}: Required value",
                            required.trim_start_matches('/').replace('/', ".")
                        ),
                    );
                }
            }
            let key = ((*ns).to_string(), name.to_string());
            if s.events.contains_key(&key) {
                return status(
                    StatusCode::CONFLICT,
                    "AlreadyExists",
                    &format!("events.events.k8s.io \"{name}\" already exists"),
                );
            }
            let mut stored = body.clone();
            stored["metadata"]["resourceVersion"] = json!(rv);
            s.events.insert(key, stored.clone());
            (StatusCode::CREATED, stored)
        }
        (
            "PATCH",
            [
                "apis",
                "events.k8s.io",
                "v1",
                "namespaces",
                ns,
                "events",
                name,
            ],
        ) => {
            let Some(ev) = s.events.get_mut(&((*ns).to_string(), (*name).to_string())) else {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("events.events.k8s.io \"{name}\" not found"),
                );
            };
            merge(ev, body);
            (StatusCode::OK, ev.clone())
        }
        _ => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        ),
    }
}

fn pod_id(obj: &Value) -> String {
    format!(
        "{}/{}",
        obj.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(""),
        obj.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    )
}

/// Removes pods whose containers stopped; makes replacements Ready when their time came.
fn sweep(s: &mut Store) {
    let now = std::time::Instant::now();
    let gone: Vec<(String, String)> = s
        .pods
        .iter()
        .filter(|(_, p)| p.remove_at.is_some_and(|t| t <= now))
        .map(|(k, _)| k.clone())
        .collect();
    for k in gone {
        if let Some(p) = s.pods.remove(&k) {
            s.removed
                .push((pod_id(&p.obj), std::time::SystemTime::now()));
        }
    }
    for p in s.pods.values_mut() {
        if p.ready_at.is_some_and(|t| t <= now) {
            p.ready_at = None;
            p.obj["status"]["conditions"] = json!([{ "type": "Ready", "status": "True" }]);
        }
    }
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

fn healthy(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_none()
        && obj
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
}

/// Marks a pod deleted with `grace` seconds: it goes after min(grace, its stop time).
fn delete_pod(s: &mut Store, key: &(String, String), grace: i64) {
    let now = std::time::Instant::now();
    let Some(p) = s.pods.get_mut(key) else { return };
    let grace = grace.max(0);
    let by_grace = now + std::time::Duration::from_secs(u64::try_from(grace).unwrap_or(0));
    let stop = now + p.stops_in;
    let at = by_grace.min(stop);
    let at = if grace == 0 { now } else { at };
    let current = p.remove_at;
    if current.is_some_and(|c| c <= at) {
        return;
    }
    p.remove_at = Some(at);
    let when = time::OffsetDateTime::now_utc() + time::Duration::seconds(grace);
    p.obj["metadata"]["deletionTimestamp"] = json!(
        when.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    );
    p.obj["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    if grace == 0 {
        let k = key.clone();
        if let Some(p) = s.pods.remove(&k) {
            s.removed
                .push((pod_id(&p.obj), std::time::SystemTime::now()));
        }
    }
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_encoding::percent_decode_str(v).decode_utf8_lossy())
    })
}

fn not_found(kind: &str, name: &str) -> (StatusCode, Value) {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{kind} \"{name}\" not found"),
    )
}

/// Pods, evictions and Node PATCH; `None` for other paths.
fn pod_route(
    s: &mut Store,
    method: &str,
    path: &str,
    query: &str,
    ctype: &str,
    body: &Value,
) -> Option<(StatusCode, Value)> {
    let parts: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    Some(match (method, parts.as_slice()) {
        ("GET", ["api", "v1", "pods"]) => {
            let node = query_param(query, "fieldSelector")
                .and_then(|f| f.strip_prefix("spec.nodeName=").map(str::to_owned));
            let items: Vec<Value> = s
                .pods
                .values()
                .filter(|p| {
                    node.as_deref().is_none_or(|n| {
                        p.obj.pointer("/spec/nodeName").and_then(Value::as_str) == Some(n)
                    })
                })
                .map(|p| p.obj.clone())
                .collect();
            (
                StatusCode::OK,
                json!({ "kind": "PodList", "apiVersion": "v1",
                        "metadata": { "resourceVersion": s.resource_version.to_string() },
                        "items": items }),
            )
        }
        ("GET", ["api", "v1", "namespaces", ns, "pods", name]) => {
            match s.pods.get(&((*ns).to_owned(), (*name).to_owned())) {
                Some(p) => (StatusCode::OK, p.obj.clone()),
                None => not_found("pods", name),
            }
        }
        ("POST", ["api", "v1", "namespaces", ns, "pods", name, "eviction"]) => {
            let key = ((*ns).to_owned(), (*name).to_owned());
            let Some(pod) = s.pods.get(&key).map(|p| p.obj.clone()) else {
                return Some(not_found("pods", name));
            };
            if let Some(uid) = body
                .pointer("/deleteOptions/preconditions/uid")
                .and_then(Value::as_str)
                && pod.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid)
            {
                return Some(status(
                    StatusCode::CONFLICT,
                    "Conflict",
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        pod.pointer("/metadata/uid")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                    ),
                ));
            }
            let success = |code: StatusCode| {
                (
                    code,
                    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {},
                               "status": "Success", "code": code.as_u16() }),
                )
            };
            if pod.pointer("/metadata/deletionTimestamp").is_some() {
                return Some(success(StatusCode::OK));
            }
            let labels = pod
                .pointer("/metadata/labels")
                .cloned()
                .unwrap_or(json!({}));
            let budgets: Vec<Value> = s
                .pdbs
                .iter()
                .filter(|b| b.pointer("/metadata/namespace").and_then(Value::as_str) == Some(*ns))
                .filter(|b| labels_match(&b["spec"]["selector"]["matchLabels"], &labels))
                .cloned()
                .collect();
            if budgets.len() > 1 {
                return Some(status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
            if let Some(b) = budgets.first() {
                let selected: Vec<&PodEntry> = s
                    .pods
                    .values()
                    .filter(|p| {
                        p.obj.pointer("/metadata/namespace").and_then(Value::as_str) == Some(*ns)
                            && labels_match(
                                &b["spec"]["selector"]["matchLabels"],
                                p.obj.pointer("/metadata/labels").unwrap_or(&Value::Null),
                            )
                    })
                    .collect();
                let healthy_now =
                    i64::try_from(selected.iter().filter(|p| healthy(&p.obj)).count()).unwrap_or(0);
                let expected = i64::try_from(
                    selected
                        .iter()
                        .filter(|p| p.obj.pointer("/metadata/deletionTimestamp").is_none())
                        .count(),
                )
                .unwrap_or(0);
                let desired = match (
                    b["spec"]["minAvailable"].as_i64(),
                    b["spec"]["maxUnavailable"].as_i64(),
                ) {
                    (Some(min), _) => min,
                    (None, Some(max)) => expected - max,
                    (None, None) => expected,
                };
                if healthy_now - desired <= 0 {
                    let bname = b
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    let (code, mut v) = status(
                        StatusCode::TOO_MANY_REQUESTS,
                        "TooManyRequests",
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                    );
                    v["details"] = json!({ "causes": [{
                        "reason": "DisruptionBudget",
                        "message": format!("The disruption budget {bname} needs {desired} healthy pods and has {healthy_now} currently"),
                    }]});
                    return Some((code, v));
                }
            }
            let grace = body
                .pointer("/deleteOptions/gracePeriodSeconds")
                .and_then(Value::as_i64)
                .or_else(|| {
                    pod.pointer("/spec/terminationGracePeriodSeconds")
                        .and_then(Value::as_i64)
                })
                .unwrap_or(30);
            delete_pod(s, &key, grace);
            let owner = pod
                .pointer("/metadata/ownerReferences/0/kind")
                .and_then(Value::as_str)
                .unwrap_or("");
            if let Some(delay) = s.replacement_ready_after
                && matches!(owner, "ReplicaSet" | "StatefulSet")
            {
                s.serial += 1;
                let mut r = pod.clone();
                r["metadata"]["name"] = json!(format!("{name}-r{}", s.serial));
                r["metadata"]["uid"] = json!(format!("pod-uid-{}", s.serial));
                r["spec"]["nodeName"] = json!("node-replacement");
                r["status"]["conditions"] = json!([{ "type": "Ready", "status": "False" }]);
                let rname = format!("{name}-r{}", s.serial);
                s.pods.insert(
                    ((*ns).to_owned(), rname),
                    PodEntry {
                        obj: r,
                        stops_in: std::time::Duration::from_millis(100),
                        remove_at: None,
                        ready_at: Some(std::time::Instant::now() + delay),
                    },
                );
            }
            success(StatusCode::CREATED)
        }
        ("DELETE", ["api", "v1", "namespaces", ns, "pods", name]) => {
            let key = ((*ns).to_owned(), (*name).to_owned());
            let Some(pod) = s.pods.get(&key).map(|p| p.obj.clone()) else {
                return Some(not_found("pods", name));
            };
            if let Some(uid) = body.pointer("/preconditions/uid").and_then(Value::as_str)
                && pod.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid)
            {
                return Some(status(
                    StatusCode::CONFLICT,
                    "Conflict",
                    "Precondition failed: UID mismatch",
                ));
            }
            let grace = body
                .get("gracePeriodSeconds")
                .and_then(Value::as_i64)
                .or_else(|| query_param(query, "gracePeriodSeconds").and_then(|g| g.parse().ok()))
                .or_else(|| {
                    pod.pointer("/spec/terminationGracePeriodSeconds")
                        .and_then(Value::as_i64)
                })
                .unwrap_or(30);
            delete_pod(s, &key, grace);
            let now = s.pods.get(&key).map_or(pod, |p| p.obj.clone());
            (StatusCode::OK, now)
        }
        ("PATCH", ["api", "v1", "nodes", name]) => {
            if ctype != "application/strategic-merge-patch+json"
                && ctype != "application/merge-patch+json"
            {
                return Some(status(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    &format!("the body of the request was in an unknown format; got {ctype}"),
                ));
            }
            s.resource_version += 1;
            let rv = s.resource_version.to_string();
            let Some(node) = s.nodes.get(*name) else {
                return Some(not_found("nodes", name));
            };
            if let Some(want) = body
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                && node
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    != Some(want)
            {
                return Some(status(
                    StatusCode::CONFLICT,
                    "Conflict",
                    &format!(
                        "Operation cannot be fulfilled on nodes \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                    ),
                ));
            }
            if s.node_restriction
                && let Some(taints) = body.pointer("/spec/taints")
                && Some(taints) != node.pointer("/spec/taints")
            {
                return Some(status(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    &format!(
                        "nodes \"{name}\" is forbidden: node \"{name}\" is not allowed to modify taints"
                    ),
                ));
            }
            let Some(node) = s.nodes.get_mut(*name) else {
                return Some(not_found("nodes", name));
            };
            let mut patch = body.clone();
            if let Some(m) = patch.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            merge(node, &patch);
            node["metadata"]["resourceVersion"] = json!(rv);
            (StatusCode::OK, node.clone())
        }
        _ => return None,
    })
}

/// The Status object an API server sends for `code`.
fn injected_fault(code: u16, path: &str) -> (StatusCode, Value) {
    let (reason, message) = match code {
        409 => (
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {path}: the object has been modified; please apply your changes to the latest version and try again"
            ),
        ),
        429 => (
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later"
                .to_owned(),
        ),
        503 => (
            "ServiceUnavailable",
            "the server is currently unable to handle the request".to_owned(),
        ),
        _ => (
            "InternalError",
            "Internal error occurred: etcdserver: request timed out".to_owned(),
        ),
    };
    status(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        reason,
        &message,
    )
}
