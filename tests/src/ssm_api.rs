//! An emulator of the AWS Systems Manager API's `DeregisterManagedInstance`, named as an
//! emulator (moto 5.2.5 does not implement the call). Real HTTP on 127.0.0.1, following the
//! published protocol (AWS JSON 1.1, botocore's `ssm/2014-11-06/service-2.json`):
//!
//! - `POST /` with `Content-Type: application/x-amz-json-1.1` and
//!   `X-Amz-Target: AmazonSSM.<Operation>`; other targets get `UnknownOperationException`.
//! - SigV4 (`AWS4-HMAC-SHA256`, service `ssm`, the emulator's region): the signature is
//!   recomputed by **botocore** (the reference signer, from the test venv) over the headers the
//!   request says it signed; host, x-amz-date and every `x-amz-*` header must be signed; the
//!   request time must be within 5 minutes. Failures get AWS's codes:
//!   `MissingAuthenticationTokenException`, `UnrecognizedClientException` (unknown key or
//!   token), `InvalidSignatureException` (bad signature, scope or expired), all HTTP 400.
//! - Body `{"InstanceId": "mi-..."}`: missing or not matching the model's pattern
//!   `^mi-[0-9a-f]{17}$` gives `ValidationException`; a well-formed id that is not a registered
//!   managed instance gives `InvalidInstanceId`; success is HTTP 200 `{}` and the instance is
//!   gone. Errors are `{"__type": CODE, "message": TEXT}` with `x-amzn-RequestId`.
//! - Faults: the next N requests answered 500 `InternalServerError`.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::loopback_http::LoopbackServer;

/// Longest clock difference SigV4 accepts.
const MAX_SKEW_SECS: i64 = 5 * 60;

/// The access key the emulator accepts.
#[derive(Debug, Clone)]
pub struct Keys {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token, if the credentials are temporary.
    pub session_token: Option<String>,
}

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

#[derive(Debug)]
struct Shared {
    region: String,
    keys: Keys,
    state: Mutex<State>,
    counter: AtomicU64,
}

/// The running emulator; stops on drop.
#[derive(Debug)]
pub struct SsmEmulator {
    server: LoopbackServer,
    shared: Arc<Shared>,
}

impl SsmEmulator {
    /// Starts on a free loopback port for `region`, accepting `keys`.
    pub fn start(region: &str, keys: Keys) -> SsmEmulator {
        let shared = Arc::new(Shared {
            region: region.to_owned(),
            keys,
            state: Mutex::new(State::default()),
            counter: AtomicU64::new(0),
        });
        let s = shared.clone();
        let server = LoopbackServer::start("ssm-emulator", move |req| {
            let s = s.clone();
            async move { Ok(handle(s, req).await) }
        });
        SsmEmulator { server, shared }
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn endpoint(&self) -> String {
        format!("http://{}/", self.server.addr())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().expect("state lock")
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
    let n = shared.counter.fetch_add(1, Ordering::SeqCst);
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
        let mut s = shared.state.lock().expect("state lock");
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
    shared
        .state
        .lock()
        .expect("state lock")
        .recorded
        .push(Recorded {
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

fn header(headers: &hyper::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
struct Auth {
    access_key: String,
    date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
}

fn parse_auth(value: &str) -> Option<Auth> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v.to_owned()),
            "SignedHeaders" => signed = Some(v.to_owned()),
            "Signature" => signature = Some(v.to_owned()),
            _ => return None,
        }
    }
    let credential = credential?;
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[4] != "aws4_request" {
        return None;
    }
    Some(Auth {
        access_key: scope[0].to_owned(),
        date: scope[1].to_owned(),
        region: scope[2].to_owned(),
        service: scope[3].to_owned(),
        signed_headers: signed?.split(';').map(str::to_owned).collect(),
        signature: signature?,
    })
}

fn process(shared: &Shared, parts: &hyper::http::request::Parts, body: &[u8]) -> Outcome {
    use StatusCode as S;
    let headers = &parts.headers;
    let Some(auth_header) = header(headers, "authorization") else {
        return Outcome::err(
            S::BAD_REQUEST,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        );
    };
    let Some(auth) = parse_auth(&auth_header) else {
        return Outcome::err(
            S::BAD_REQUEST,
            "IncompleteSignatureException",
            format!(
                "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters. Authorization={auth_header}"
            ),
        );
    };
    let keys = &shared.keys;
    if auth.access_key != keys.access_key_id
        || header(headers, "x-amz-security-token") != keys.session_token
    {
        return Outcome::err(
            S::BAD_REQUEST,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        );
    }
    if auth.service != "ssm" {
        return Outcome::err(
            S::BAD_REQUEST,
            "InvalidSignatureException",
            format!(
                "Credential should be scoped to correct service: 'ssm'. Found '{}'.",
                auth.service
            ),
        );
    }
    if auth.region != shared.region {
        return Outcome::err(
            S::BAD_REQUEST,
            "InvalidSignatureException",
            format!(
                "Credential should be scoped to a valid region, not '{}'.",
                auth.region
            ),
        );
    }
    let Some(amz_date) = header(headers, "x-amz-date") else {
        return Outcome::err(
            S::BAD_REQUEST,
            "IncompleteSignatureException",
            "Missing X-Amz-Date.",
        );
    };
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let Ok(when) = time::PrimitiveDateTime::parse(&amz_date, &format) else {
        return Outcome::err(
            S::BAD_REQUEST,
            "IncompleteSignatureException",
            "Malformed X-Amz-Date.",
        );
    };
    let skew = (when.assume_utc() - time::OffsetDateTime::now_utc())
        .whole_seconds()
        .abs();
    if skew > MAX_SKEW_SECS || !amz_date.starts_with(&auth.date) {
        return Outcome::err(
            S::BAD_REQUEST,
            "InvalidSignatureException",
            format!("Signature expired: {amz_date} is not within 5 minutes of the server time."),
        );
    }
    let present: Vec<String> = headers
        .keys()
        .map(|k| k.as_str().to_ascii_lowercase())
        .filter(|k| k == "host" || k.starts_with("x-amz-"))
        .collect();
    if let Some(missing) = present.iter().find(|k| !auth.signed_headers.contains(k)) {
        return Outcome::err(
            S::BAD_REQUEST,
            "InvalidSignatureException",
            format!("'{missing}' must be a signed header."),
        );
    }
    let signed: Vec<(String, String)> = auth
        .signed_headers
        .iter()
        .filter(|h| *h != "x-amz-date" && *h != "x-amz-security-token")
        .map(|h| (h.clone(), header(headers, h).unwrap_or_default()))
        .collect();
    let want = botocore_signature(shared, parts.method.as_str(), &signed, body, &amz_date);
    if want != auth.signature {
        return Outcome::err(
            S::BAD_REQUEST,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
        );
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
    let removed = shared
        .state
        .lock()
        .expect("state lock")
        .registered
        .remove(id);
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

/// botocore's SigV4 signature for the request, at its own X-Amz-Date.
const BOTOCORE_SIGNER: &str = r#"
import base64, datetime, json, sys
from unittest import mock
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
s = json.load(sys.stdin)
creds = Credentials(s["access_key"], s["secret_key"], s.get("session_token"))
headers = dict(s["headers"])
req = AWSRequest(method=s["method"], url="http://%s/" % headers["host"], data=base64.b64decode(s["body"]), headers=headers)
frozen = datetime.datetime.strptime(s["amz_date"], "%Y%m%dT%H%M%SZ")
if hasattr(botocore.auth, "get_current_datetime"):
    patcher = mock.patch.object(botocore.auth, "get_current_datetime", return_value=frozen)
else:
    fake = mock.Mock(wraps=datetime.datetime)
    fake.utcnow.return_value = frozen
    fake.now.return_value = frozen
    patcher = mock.patch.object(botocore.auth.datetime, "datetime", fake)
with patcher:
    botocore.auth.SigV4Auth(creds, s["service"], s["region"]).add_auth(req)
auth = req.headers["Authorization"]
print(json.dumps({"signature": auth.rsplit("Signature=", 1)[1], "authorization": auth}))
"#;

fn botocore_signature(
    shared: &Shared,
    method: &str,
    headers: &[(String, String)],
    body: &[u8],
    amz_date: &str,
) -> String {
    use base64::Engine;
    let spec = serde_json::json!({
        "access_key": shared.keys.access_key_id,
        "secret_key": shared.keys.secret_access_key,
        "session_token": shared.keys.session_token,
        "method": method,
        "headers": headers,
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "amz_date": amz_date,
        "service": "ssm",
        "region": shared.region,
    });
    let mut child = Command::new(crate::venv_bin("python"))
        .args(["-c", BOTOCORE_SIGNER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the botocore signer");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(spec.to_string().as_bytes())
        .expect("write to the botocore signer");
    let out = child.wait_with_output().expect("botocore signer output");
    assert!(
        out.status.success(),
        "botocore signer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("botocore signer JSON");
    v["signature"].as_str().unwrap_or_default().to_owned()
}
