//! An emulator of the AWS Systems Manager API's hybrid-activation calls,
//! `RegisterManagedInstance` and `DeregisterManagedInstance`, named as an emulator (moto 5.2.5
//! implements neither). Real HTTP on 127.0.0.1, following the published protocol (AWS JSON
//! 1.1, botocore's `ssm/2014-11-06/service-2.json` for Deregister; Register is not in the
//! public model: its shapes are the ones the SSM agent's SDK sends):
//!
//! - `POST /` with `Content-Type: application/x-amz-json-1.1` and
//!   `X-Amz-Target: AmazonSSM.<Operation>`; other targets get `UnknownOperationException`.
//! - `RegisterManagedInstance` is anonymous (the SSM agent sends it with anonymous
//!   credentials, i.e. unsigned). Body `{"ActivationCode", "ActivationId", "PublicKey",
//!   "PublicKeyType", "Fingerprint"}`: a missing member, a code shorter than 20 characters, an
//!   id that is not a UUID, a public key that is not a base64 DER SubjectPublicKeyInfo of an
//!   RSA key (at least 392 characters), or a key type other than `Rsa` gives
//!   `ValidationException`; an id of no activation the test created gives
//!   `InvalidActivationId`; a code that does not match, or an activation at its registration
//!   limit, gives `InvalidActivation`; an expired one `ActivationExpired`. Success is HTTP 200
//!   `{"InstanceId": "mi-<17 hex>"}` and the managed instance is recorded (see
//!   [`SsmEmulator::managed_instances`]).
//! - Every other call is SigV4 (`AWS4-HMAC-SHA256`, service `ssm`, the emulator's region),
//!   recomputed by botocore (`crate::sigv4_verify`); failures get AWS's codes
//!   (`MissingAuthenticationTokenException`, `UnrecognizedClientException`,
//!   `InvalidSignatureException`), all HTTP 400.
//! - `DeregisterManagedInstance` body `{"InstanceId": "mi-..."}`: missing or not matching the model's pattern
//!   `^mi-[0-9a-f]{17}$` gives `ValidationException`; a well-formed id that is not a registered
//!   managed instance gives `InvalidInstanceId`; success is HTTP 200 `{}` and the instance is
//!   gone. Errors are `{"__type": CODE, "message": TEXT}` with `x-amzn-RequestId`.
//! - Faults: the next N requests answered 500 `InternalServerError`.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

pub use crate::sigv4_verify::Keys;

/// One request as the emulator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// `X-Amz-Target`.
    pub target: String,
    /// HTTP status answered.
    pub status: u16,
    /// `__type` of the error, empty on success.
    pub code: String,
    /// Whether botocore agreed with the signature.
    pub signature_verified: bool,
}

/// A hybrid activation, as `CreateActivation` makes one (the test creates them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    /// The activation id (a UUID).
    pub id: String,
    /// The activation code (secret).
    pub code: String,
    /// How many managed instances may register with it.
    pub registration_limit: u32,
    /// Whether it has expired.
    pub expired: bool,
}

impl Activation {
    /// An activation for one instance that has not expired.
    pub fn new(id: &str, code: &str) -> Activation {
        Activation {
            id: id.to_owned(),
            code: code.to_owned(),
            registration_limit: 1,
            expired: false,
        }
    }
}

/// A managed instance registered through `RegisterManagedInstance`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedInstance {
    /// `mi-...`.
    pub instance_id: String,
    /// The activation it registered with.
    pub activation_id: String,
    /// The instance's public key (base64 DER SubjectPublicKeyInfo).
    pub public_key: String,
    /// The instance's fingerprint.
    pub fingerprint: String,
}

#[derive(Debug, Default)]
struct State {
    registered: BTreeSet<String>,
    activations: Vec<Activation>,
    instances: Vec<ManagedInstance>,
    fail_next: u32,
    recorded: Vec<Recorded>,
}

type Shared = crate::sigv4_verify::Shared<State>;

/// The running emulator; stops on drop.
#[derive(Debug)]
pub struct SsmEmulator {
    inner: crate::sigv4_verify::Emulator<State>,
}

impl SsmEmulator {
    /// Starts on a free loopback port for `region`, accepting `keys`.
    pub fn start(region: &str, keys: Keys) -> SsmEmulator {
        SsmEmulator {
            inner: crate::sigv4_verify::Emulator::start("ssm-emulator", region, keys, handle),
        }
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn endpoint(&self) -> String {
        format!("http://{}/", self.inner.addr())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.shared().lock()
    }

    /// Registers a managed instance.
    pub fn register(&self, instance_id: &str) {
        self.state().registered.insert(instance_id.to_owned());
    }

    /// Creates a hybrid activation that `RegisterManagedInstance` accepts.
    pub fn create_activation(&self, activation: Activation) {
        self.state().activations.push(activation);
    }

    /// The managed instances registered through `RegisterManagedInstance`, in order.
    pub fn managed_instances(&self) -> Vec<ManagedInstance> {
        self.state().instances.clone()
    }

    /// Whether the instance is registered.
    pub fn is_registered(&self, instance_id: &str) -> bool {
        self.state().registered.contains(instance_id)
    }

    /// Answers the next `n` requests with 500 `InternalServerError`.
    pub fn fail_next(&self, n: u32) {
        self.state().fail_next = n;
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().recorded.clone()
    }
}

/// An AWS JSON 1.1 answer.
fn answer(shared: &Shared, status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let n = shared.next();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    if let Ok(v) = format!("00000000-0000-4000-8000-{n:012x}").parse() {
        h.insert("x-amzn-requestid", v);
    }
    r
}

/// The outcome of a request before it is turned into a response.
struct Outcome {
    status: StatusCode,
    code: String,
    message: String,
    verified: bool,
    /// The success body (`{}` when empty).
    body: String,
}

impl Outcome {
    fn err(status: StatusCode, code: &str, message: impl Into<String>) -> Outcome {
        Outcome {
            status,
            code: code.to_owned(),
            message: message.into(),
            verified: false,
            body: String::new(),
        }
    }

    fn success(body: String, verified: bool) -> Outcome {
        Outcome {
            status: StatusCode::OK,
            code: String::new(),
            message: String::new(),
            verified,
            body,
        }
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let target = header(&parts.headers, "x-amz-target").unwrap_or_default();
    let injected = {
        let mut s = shared.lock();
        if s.fail_next > 0 {
            s.fail_next -= 1;
            true
        } else {
            false
        }
    };
    let outcome = if injected {
        Outcome::err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "An internal error occurred (fault injection).",
        )
    } else {
        let shared2 = shared.clone();
        let body2 = body.clone();
        tokio::task::spawn_blocking(move || process(&shared2, &parts, &body2))
            .await
            .unwrap_or_else(|e| {
                Outcome::err(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    e.to_string(),
                )
            })
    };
    shared.lock().recorded.push(Recorded {
        target,
        status: outcome.status.as_u16(),
        code: if outcome.status.is_success() {
            String::new()
        } else {
            outcome.code.clone()
        },
        signature_verified: outcome.verified,
    });
    let body = if outcome.status.is_success() {
        if outcome.body.is_empty() {
            "{}".to_owned()
        } else {
            outcome.body
        }
    } else {
        serde_json::json!({"__type": outcome.code, "message": outcome.message}).to_string()
    };
    answer(&shared, outcome.status, body)
}

use crate::sigv4_verify::header;

fn process(shared: &Shared, parts: &hyper::http::request::Parts, body: &[u8]) -> Outcome {
    use StatusCode as S;
    let headers = &parts.headers;
    if header(headers, "x-amz-target").as_deref() == Some("AmazonSSM.RegisterManagedInstance") {
        if header(headers, "content-type").as_deref() != Some("application/x-amz-json-1.1") {
            return Outcome::err(S::BAD_REQUEST, "UnknownOperationException", "");
        }
        return register_managed_instance(shared, body);
    }
    if let Err(r) = crate::sigv4_verify::verify(parts, body, &shared.keys, &shared.region, "ssm") {
        return Outcome::err(S::BAD_REQUEST, r.code, r.message);
    }
    let ok = |o: Outcome| Outcome {
        verified: true,
        ..o
    };
    if header(headers, "content-type").as_deref() != Some("application/x-amz-json-1.1") {
        return ok(Outcome::err(
            S::BAD_REQUEST,
            "UnknownOperationException",
            "",
        ));
    }
    let target = header(headers, "x-amz-target").unwrap_or_default();
    if target != "AmazonSSM.DeregisterManagedInstance" {
        return ok(Outcome::err(
            S::BAD_REQUEST,
            "UnknownOperationException",
            "",
        ));
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return ok(Outcome::err(
            S::BAD_REQUEST,
            "SerializationException",
            "Start of structure or map found where not expected.",
        ));
    };
    let Some(id) = value.get("InstanceId").and_then(|v| v.as_str()) else {
        return ok(Outcome::err(
            S::BAD_REQUEST,
            "ValidationException",
            "1 validation error detected: Value null at 'instanceId' failed to satisfy constraint: Member must not be null",
        ));
    };
    let well_formed = id.strip_prefix("mi-").is_some_and(|h| {
        h.len() == 17 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    });
    if !well_formed {
        return ok(Outcome::err(
            S::BAD_REQUEST,
            "ValidationException",
            format!(
                "1 validation error detected: Value '{id}' at 'instanceId' failed to satisfy constraint: Member must satisfy regular expression pattern: (^mi-[0-9a-f]{{17}}$)|(^eks_c:[0-9A-Za-z][A-Za-z0-9\\-_]{{0,99}}_\\w{{17}}$)"
            ),
        ));
    }
    let removed = shared.lock().registered.remove(id);
    if !removed {
        return ok(Outcome::err(
            S::BAD_REQUEST,
            "InvalidInstanceId",
            format!("Instance id {id} is not a registered managed instance."),
        ));
    }
    ok(Outcome::success(String::new(), true))
}

/// A `ValidationException` for one member.
fn invalid(member: &str, detail: &str) -> Outcome {
    Outcome::err(
        StatusCode::BAD_REQUEST,
        "ValidationException",
        format!(
            "1 validation error detected: Value at '{member}' failed to satisfy constraint: {detail}"
        ),
    )
}

/// Whether `text` is a UUID (`8-4-4-4-12` hex digits).
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether `text` is base64 of a DER SubjectPublicKeyInfo of an RSA key.
fn is_rsa_public_key(text: &str) -> bool {
    use base64::Engine as _;
    use x509_cert::der::Decode as _;
    const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()
        .and_then(|der| x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(&der).ok())
        .is_some_and(|spki| spki.algorithm.oid.to_string() == RSA_ENCRYPTION)
}

/// `RegisterManagedInstance`: checks the members, then the activation; records the instance.
fn register_managed_instance(shared: &Shared, body: &[u8]) -> Outcome {
    use StatusCode as S;
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Outcome::err(
            S::BAD_REQUEST,
            "SerializationException",
            "Start of structure or map found where not expected.",
        );
    };
    let member = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let must = "Member must not be null";
    let Some(code) = member("ActivationCode") else {
        return invalid("activationCode", must);
    };
    if !(20..=250).contains(&code.len()) {
        return invalid(
            "activationCode",
            "Member must have length between 20 and 250",
        );
    }
    let Some(id) = member("ActivationId") else {
        return invalid("activationId", must);
    };
    if !is_uuid(&id) {
        return invalid(
            "activationId",
            "Member must satisfy regular expression pattern: ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        );
    }
    let Some(public_key) = member("PublicKey") else {
        return invalid("publicKey", must);
    };
    if public_key.len() < 392 || !is_rsa_public_key(&public_key) {
        return invalid(
            "publicKey",
            "Member must be a base64 DER SubjectPublicKeyInfo of an RSA key of at least 392 characters",
        );
    }
    if member("PublicKeyType").is_some_and(|t| t != "Rsa") {
        return invalid("publicKeyType", "Member must satisfy enum value set: [Rsa]");
    }
    let Some(fingerprint) = member("Fingerprint") else {
        return invalid("fingerprint", must);
    };
    let mut state = shared.lock();
    let Some(activation) = state.activations.iter().find(|a| a.id == id).cloned() else {
        return Outcome::err(
            S::BAD_REQUEST,
            "InvalidActivationId",
            format!("Activation ID {id} is not valid"),
        );
    };
    if activation.expired {
        return Outcome::err(
            S::BAD_REQUEST,
            "ActivationExpired",
            format!("Activation {id} has expired"),
        );
    }
    let used = state
        .instances
        .iter()
        .filter(|i| i.activation_id == id)
        .count();
    if activation.code != code || used >= activation.registration_limit as usize {
        return Outcome::err(
            S::BAD_REQUEST,
            "InvalidActivation",
            "Activation ID or code is not valid, or the activation has reached its registration limit",
        );
    }
    // 17 hex digits, unique per registration: from the instance's key and a serial number.
    let digest = {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(public_key.as_bytes());
        h.update(shared.next().to_be_bytes());
        hex::encode(h.finalize())
    };
    let instance_id = format!("mi-{}", &digest[..17]);
    state.registered.insert(instance_id.clone());
    state.instances.push(ManagedInstance {
        instance_id: instance_id.clone(),
        activation_id: id,
        public_key,
        fingerprint,
    });
    Outcome::success(
        serde_json::json!({ "InstanceId": instance_id }).to_string(),
        false,
    )
}
