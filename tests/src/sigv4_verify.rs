//! SigV4 verification for the AWS API emulators, with **botocore** (the reference signer, from
//! the test venv) recomputing the signature over the headers the request says it signed:
//! host, x-amz-date and every `x-amz-*` header must be signed, the scope must name the
//! emulator's service and region, and the request time must be within 5 minutes. Failures
//! carry AWS's error codes (`MissingAuthenticationTokenException`,
//! `IncompleteSignatureException`, `UnrecognizedClientException`, `InvalidSignatureException`);
//! each emulator answers them in its own protocol.

use std::io::Write;
use std::process::{Command, Stdio};

/// Longest clock difference SigV4 accepts.
const MAX_SKEW_SECS: i64 = 5 * 60;

/// The access key an emulator accepts.
#[derive(Debug, Clone)]
pub struct Keys {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token, if the credentials are temporary.
    pub session_token: Option<String>,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// AWS's error code.
    pub code: &'static str,
    /// The message.
    pub message: String,
}

fn reject(code: &'static str, message: impl Into<String>) -> Rejection {
    Rejection {
        code,
        message: message.into(),
    }
}

/// A header as text.
pub fn header(headers: &hyper::HeaderMap, name: &str) -> Option<String> {
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

/// Verifies the request's SigV4 signature for `keys`, `region` and `service`. Blocking (runs
/// botocore): call it from a blocking task.
pub fn verify(
    parts: &hyper::http::request::Parts,
    body: &[u8],
    keys: &Keys,
    region: &str,
    service: &str,
) -> Result<(), Rejection> {
    let headers = &parts.headers;
    let Some(auth_header) = header(headers, "authorization") else {
        return Err(reject(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let Some(auth) = parse_auth(&auth_header) else {
        return Err(reject(
            "IncompleteSignatureException",
            format!(
                "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters. Authorization={auth_header}"
            ),
        ));
    };
    if auth.access_key != keys.access_key_id
        || header(headers, "x-amz-security-token") != keys.session_token
    {
        return Err(reject(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
    }
    if auth.service != service {
        return Err(reject(
            "InvalidSignatureException",
            format!(
                "Credential should be scoped to correct service: '{service}'. Found '{}'.",
                auth.service
            ),
        ));
    }
    if auth.region != region {
        return Err(reject(
            "InvalidSignatureException",
            format!(
                "Credential should be scoped to a valid region, not '{}'.",
                auth.region
            ),
        ));
    }
    let Some(amz_date) = header(headers, "x-amz-date") else {
        return Err(reject(
            "IncompleteSignatureException",
            "Missing X-Amz-Date.",
        ));
    };
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let Ok(when) = time::PrimitiveDateTime::parse(&amz_date, &format) else {
        return Err(reject(
            "IncompleteSignatureException",
            "Malformed X-Amz-Date.",
        ));
    };
    let skew = (when.assume_utc() - time::OffsetDateTime::now_utc())
        .whole_seconds()
        .abs();
    if skew > MAX_SKEW_SECS || !amz_date.starts_with(&auth.date) {
        return Err(reject(
            "InvalidSignatureException",
            format!("Signature expired: {amz_date} is not within 5 minutes of the server time."),
        ));
    }
    let present: Vec<String> = headers
        .keys()
        .map(|k| k.as_str().to_ascii_lowercase())
        .filter(|k| k == "host" || k.starts_with("x-amz-"))
        .collect();
    if let Some(missing) = present.iter().find(|k| !auth.signed_headers.contains(k)) {
        return Err(reject(
            "InvalidSignatureException",
            format!("'{missing}' must be a signed header."),
        ));
    }
    let signed: Vec<(String, String)> = auth
        .signed_headers
        .iter()
        .filter(|h| *h != "x-amz-date" && *h != "x-amz-security-token")
        .map(|h| (h.clone(), header(headers, h).unwrap_or_default()))
        .collect();
    let want = botocore_signature(
        keys,
        region,
        service,
        parts.method.as_str(),
        &signed,
        body,
        &amz_date,
    );
    if want != auth.signature {
        return Err(reject(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
        ));
    }
    Ok(())
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
    keys: &Keys,
    region: &str,
    service: &str,
    method: &str,
    headers: &[(String, String)],
    body: &[u8],
    amz_date: &str,
) -> String {
    use base64::Engine;
    let spec = serde_json::json!({
        "access_key": keys.access_key_id,
        "secret_key": keys.secret_access_key,
        "session_token": keys.session_token,
        "method": method,
        "headers": headers,
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "amz_date": amz_date,
        "service": service,
        "region": region,
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

/// What an AWS API emulator shares with its request handler: its region and the keys it
/// accepts, its state, and a counter for request IDs.
#[derive(Debug)]
pub struct Shared<S> {
    /// The region requests must be scoped to.
    pub region: String,
    /// The accepted keys.
    pub keys: Keys,
    /// The emulator's state.
    pub state: std::sync::Mutex<S>,
    /// Request IDs.
    pub counter: std::sync::atomic::AtomicU64,
}

impl<S> Shared<S> {
    /// The state.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, S> {
        self.state.lock().expect("state lock")
    }

    /// The next serial number (request IDs, tokens).
    pub fn next(&self) -> u64 {
        self.counter
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    }
}

/// A running AWS API emulator on 127.0.0.1 with SigV4 keys; stops on drop.
#[derive(Debug)]
pub struct Emulator<S> {
    server: crate::loopback_http::LoopbackServer,
    shared: std::sync::Arc<Shared<S>>,
}

impl<S: Default + Send + 'static> Emulator<S> {
    /// Starts `handle` on a free loopback port for `region`, accepting `keys`.
    pub fn start<H, Fut>(name: &str, region: &str, keys: Keys, handle: H) -> Emulator<S>
    where
        H: Fn(std::sync::Arc<Shared<S>>, hyper::Request<hyper::body::Incoming>) -> Fut
            + Send
            + Sync
            + 'static,
        Fut: Future<Output = hyper::Response<http_body_util::Full<bytes::Bytes>>> + Send + 'static,
    {
        let shared = std::sync::Arc::new(Shared {
            region: region.to_owned(),
            keys,
            state: std::sync::Mutex::new(S::default()),
            counter: std::sync::atomic::AtomicU64::new(0),
        });
        let s = shared.clone();
        let handle = std::sync::Arc::new(handle);
        let server = crate::loopback_http::LoopbackServer::start(name, move |req| {
            let (s, handle) = (s.clone(), handle.clone());
            async move { Ok(handle(s, req).await) }
        });
        Emulator { server, shared }
    }

    /// The listening address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr()
    }

    /// The shared state.
    pub fn shared(&self) -> &Shared<S> {
        &self.shared
    }
}
