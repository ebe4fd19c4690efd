//! An emulator of the AWS Systems Manager API's `DeregisterManagedInstance`, named as an
//! emulator (moto 5.2.5 does not implement the call). Real HTTP on 127.0.0.1, following the
//! published protocol (AWS JSON 1.1, botocore's `ssm/2014-11-06/service-2.json`):
//!
//! - `POST /` with `Content-Type: application/x-amz-json-1.1` and
//!   `X-Amz-Target: AmazonSSM.<Operation>`; other targets get `UnknownOperationException`.
//! - SigV4 (`AWS4-HMAC-SHA256`, service `ssm`, the emulator's region), recomputed by
//!   botocore (`crate::sigv4_verify`); failures get AWS's codes
//!   (`MissingAuthenticationTokenException`, `UnrecognizedClientException`,
//!   `InvalidSignatureException`), all HTTP 400.
//! - Body `{"InstanceId": "mi-..."}`: missing or not matching the model's pattern
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

#[derive(Debug, Default)]
struct State {
    registered: BTreeSet<String>,
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
}

impl Outcome {
    fn err(status: StatusCode, code: &str, message: impl Into<String>) -> Outcome {
        Outcome {
            status,
            code: code.to_owned(),
            message: message.into(),
            verified: false,
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
        "{}".to_owned()
    } else {
        serde_json::json!({"__type": outcome.code, "message": outcome.message}).to_string()
    };
    answer(&shared, outcome.status, body)
}

use crate::sigv4_verify::header;

fn process(shared: &Shared, parts: &hyper::http::request::Parts, body: &[u8]) -> Outcome {
    use StatusCode as S;
    let headers = &parts.headers;
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
    ok(Outcome {
        status: S::OK,
        code: String::new(),
        message: String::new(),
        verified: true,
    })
}
