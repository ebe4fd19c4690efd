//! Deregistering an SSM hybrid node: SSM `DeregisterManagedInstance` (AWS JSON 1.1, SigV4 by
//! aws-sigv4 with service `ssm`), then removing the SSM agent's registration on this host.
//!
//! The registration is what `amazon-ssm-agent -register` left: `/var/lib/amazon/ssm/registration`
//! (`{"ManagedInstanceID": "mi-...", "Region": "..."}`), the agent's key store
//! `/var/lib/amazon/ssm/Vault/`, and its per-instance state `/var/lib/amazon/ssm/<mi-id>/`.
//! The SSM agent package, its configuration and the shared credentials file are left alone.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde::Deserialize;

use super::Error;
use crate::apply::Root;
use crate::model::Region;
use crate::model::text::error_chain;
use crate::net::retry::{NoAnswer, is_retryable_error, is_retryable_status};
use crate::net::{Attempt, ClientBuilder, Proxy, RetryPolicy, Trust};

/// The SSM agent's registration file.
pub const REGISTRATION: &str = crate::model::paths::SSM_REGISTRATION;
/// The SSM agent's key store.
pub const VAULT_DIR: &str = "/var/lib/amazon/ssm/Vault";
/// The SSM agent's state directory (per-instance state lives in `<mi-id>/` below it).
pub const SSM_STATE_DIR: &str = "/var/lib/amazon/ssm";
/// The SigV4 signing name of SSM.
pub const SIGNING_NAME: &str = "ssm";
/// The JSON 1.1 target of the call.
pub const TARGET: &str = "AmazonSSM.DeregisterManagedInstance";
/// The AWS JSON 1.1 content type.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// How one SSM call is retried (transport errors, throttling, server errors): 4 attempts of
/// at most 10 s each (connect to response body), backoff from 500 ms doubling to 8 s, 60 s in
/// all.
pub const SSM_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 4,
    initial_backoff: Duration::from_millis(500),
    max_backoff: Duration::from_secs(8),
    attempt_timeout: Duration::from_secs(10),
    total_deadline: Duration::from_secs(60),
};
/// Largest error body read.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// A node's SSM registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The managed instance id (`mi-` + 17 hex digits).
    pub instance_id: String,
    /// The region it is registered in.
    pub region: Region,
}

#[derive(Deserialize)]
struct RegistrationFile {
    #[serde(rename = "ManagedInstanceID")]
    managed_instance_id: String,
    #[serde(rename = "Region")]
    region: String,
}

/// Whether `id` is a managed instance id: `mi-` and 17 lowercase hex digits.
pub fn is_managed_instance_id(id: &str) -> bool {
    id.strip_prefix("mi-")
        .is_some_and(|h| h.len() == 17 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// Parses the registration file (pure); `path` names it in errors.
pub fn parse_registration(text: &str, path: &Path) -> Result<Registration, Error> {
    let bad = |reason: String| Error::BadRegistration {
        path: path.to_path_buf(),
        reason,
    };
    let raw: RegistrationFile = serde_json::from_str(text).map_err(|e| {
        bad(format!(
            "{e}; expected {{\"ManagedInstanceID\": \"mi-...\", \"Region\": \"...\"}}"
        ))
    })?;
    if !is_managed_instance_id(&raw.managed_instance_id) {
        return Err(bad(format!(
            "ManagedInstanceID {:?} is not a managed instance id (mi- and 17 hex digits)",
            raw.managed_instance_id
        )));
    }
    let region = Region::parse(&raw.region, &format!("{} Region", path.display()))
        .map_err(|e| bad(e.to_string()))?;
    Ok(Registration {
        instance_id: raw.managed_instance_id,
        region,
    })
}

/// The registration under `root`, `None` when the node is not registered.
pub fn read_registration(root: &Root) -> Result<Option<Registration>, Error> {
    let path = root.path(Path::new(REGISTRATION))?;
    match crate::model::bounded::read_to_string_capped(&path, MAX_BODY_BYTES) {
        Ok(text) => parse_registration(&text, &path).map(Some),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            what: "SSM registration file",
            path,
            source,
        }),
    }
}

/// Removes the registration files under `root`; returns the host paths removed.
pub fn remove_registration(root: &Root, reg: &Registration) -> Result<Vec<PathBuf>, Error> {
    let mut removed = Vec::new();
    let instance_dir = Path::new(SSM_STATE_DIR).join(&reg.instance_id);
    for host in [
        PathBuf::from(VAULT_DIR),
        instance_dir,
        PathBuf::from(REGISTRATION),
    ] {
        let real = root.path(&host)?;
        let result = match fs::symlink_metadata(&real) {
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Ok(m) if m.is_dir() => fs::remove_dir_all(&real),
            _ => fs::remove_file(&real),
        };
        result.map_err(|source| Error::Io {
            what: "SSM registration",
            path: real.clone(),
            source,
        })?;
        removed.push(host);
    }
    Ok(removed)
}

/// The request body (pure).
pub fn request_body(instance_id: &str) -> Vec<u8> {
    serde_json::json!({ "InstanceId": instance_id })
        .to_string()
        .into_bytes()
}

/// The headers of a signed `DeregisterManagedInstance` request to `url` (pure but for the
/// signature's use of `now`): content type, target, and the SigV4 headers.
pub fn signed_headers(
    url: &url::Url,
    body: &[u8],
    credentials: &Credentials,
    region: &Region,
    now: SystemTime,
) -> Result<Vec<(String, String)>, Error> {
    let sign_err = |e: Box<dyn std::error::Error + Send + Sync>| Error::Sign {
        endpoint: url.to_string(),
        source: e,
    };
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => {
            return Err(sign_err("the SSM endpoint has no host".into()));
        }
    };
    let mut headers = vec![
        ("host".to_owned(), host),
        ("content-type".to_owned(), CONTENT_TYPE.to_owned()),
        ("x-amz-target".to_owned(), TARGET.to_owned()),
    ];
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region.as_str())
        .name(SIGNING_NAME)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| sign_err(Box::new(e)))?
        .into();
    let request = SignableRequest::new(
        "POST",
        url.as_str(),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| sign_err(Box::new(e)))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| sign_err(Box::new(e)))?
        .into_parts();
    for (k, v) in instructions.headers() {
        headers.push((k.to_owned(), v.to_owned()));
    }
    Ok(headers)
}

/// An AWS JSON 1.1 error: `__type` (namespace and suffix stripped) and message (pure).
pub fn parse_error(body: &[u8], header_type: Option<&str>) -> (String, String) {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let raw = value
        .get("__type")
        .and_then(|v| v.as_str())
        .or(header_type)
        .unwrap_or("UnknownError");
    let code = raw.rsplit('#').next().unwrap_or(raw);
    let code = code.split(':').next().unwrap_or(code).to_owned();
    let message = ["message", "Message"]
        .iter()
        .find_map(|k| value.get(*k).and_then(|v| v.as_str()))
        .unwrap_or("")
        .to_owned();
    (code, message)
}

/// Error codes worth another attempt besides 5xx.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
];

/// The SSM API client for one region.
#[derive(Debug, Clone)]
pub struct SsmApi {
    endpoint: url::Url,
    region: Region,
    client: reqwest::Client,
    policy: RetryPolicy,
}

impl SsmApi {
    /// The regional endpoint (`https://ssm.REGION.DNS-SUFFIX/`), or `endpoint` when given
    /// (tests; `AWS_ENDPOINT_URL_SSM`); the system's CAs, the environment's proxy, calls
    /// retried under [`SSM_RETRY`].
    pub fn new(region: Region, endpoint: Option<&str>) -> Result<SsmApi, Error> {
        let text = endpoint.map(str::to_owned).unwrap_or_else(|| {
            format!(
                "https://ssm.{}.{}/",
                region.as_str(),
                region.partition().dns_suffix
            )
        });
        let endpoint = url::Url::parse(&text).map_err(|e| Error::BadSource {
            given: text.clone(),
            reason: format!("the SSM endpoint is not a URL: {e}"),
        })?;
        let client = ClientBuilder::new()
            .trust(Trust::System)
            .proxy(Proxy::FromEnvironment)
            .build()
            .map_err(|source| Error::Client {
                purpose: "SSM",
                source,
            })?;
        Ok(SsmApi {
            endpoint,
            region,
            client,
            policy: SSM_RETRY,
        })
    }

    /// Replaces the retry policy.
    pub fn with_policy(mut self, policy: RetryPolicy) -> SsmApi {
        self.policy = policy;
        self
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &url::Url {
        &self.endpoint
    }

    /// Calls `DeregisterManagedInstance` for `instance_id`, re-signing each attempt with
    /// `now()`; retried under the client's policy.
    pub async fn deregister_managed_instance(
        &self,
        credentials: &Credentials,
        instance_id: &str,
        now: &dyn Fn() -> SystemTime,
    ) -> Result<(), Error> {
        let body = &request_body(instance_id);
        let failed = |attempts, reason: String, source| Error::Download {
            url: self.endpoint.to_string(),
            attempts,
            reason,
            source,
        };
        let (result, _) = self
            .policy
            .run(
                |n| async move {
                    let outcome = self.attempt(credentials, instance_id, body, now(), n).await;
                    if let Attempt::Retry(e) = &outcome {
                        tracing::warn!(endpoint = %self.endpoint, attempt = n, error = %error_chain(e), "SSM call failed");
                    }
                    outcome
                },
                |n, bound| failed(n, "no answer".into(), Some(NoAnswer::TimedOut(bound))),
            )
            .await;
        result?;
        tracing::info!(instance_id, endpoint = %self.endpoint, "deregistered the managed instance from SSM");
        Ok(())
    }

    /// The `n`-th attempt, signed at `now`.
    async fn attempt(
        &self,
        credentials: &Credentials,
        instance_id: &str,
        body: &[u8],
        now: SystemTime,
        n: u32,
    ) -> Attempt<(), Error> {
        let failed = |reason: String, source| Error::Download {
            url: self.endpoint.to_string(),
            attempts: n,
            reason,
            source,
        };
        let headers = match signed_headers(&self.endpoint, body, credentials, &self.region, now) {
            Ok(h) => h,
            Err(e) => return Attempt::Fail(e),
        };
        let mut req = self.client.post(self.endpoint.clone()).body(body.to_vec());
        for (k, v) in &headers {
            if k != "host" {
                req = req.header(k.as_str(), v.as_str());
            }
        }
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) if is_retryable_error(&e) => {
                return Attempt::Retry(failed("no answer".into(), Some(NoAnswer::Http(e))));
            }
            Err(e) => return Attempt::Fail(failed("no answer".into(), Some(NoAnswer::Http(e)))),
        };
        let status = resp.status();
        let header_type = resp
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // Only the status and a bounded error body matter; a longer body is not read.
        let bytes = crate::net::body::read_capped(resp, MAX_BODY_BYTES)
            .await
            .unwrap_or_default();
        if status.is_success() {
            return Attempt::Done(());
        }
        let slice = &bytes[..bytes.len().min(MAX_BODY_BYTES)];
        let (code, message) = parse_error(slice, header_type.as_deref());
        if is_retryable_status(status.as_u16()) || RETRYABLE_CODES.contains(&code.as_str()) {
            let reason = format!("HTTP {} {code}: {message}", status.as_u16());
            return Attempt::Retry(failed(reason, None));
        }
        Attempt::Fail(Error::Ssm {
            instance_id: instance_id.to_owned(),
            endpoint: self.endpoint.to_string(),
            status: status.as_u16(),
            fix: fix_for(&code),
            code,
            message,
        })
    }
}

/// What to do about an SSM error code.
fn fix_for(code: &str) -> String {
    match code {
        "InvalidInstanceId" => "SSM does not know this managed instance for these credentials: it was \
            already deregistered (then remove the registration by hand or run `uninstall` without \
            --deregister), or the credentials lack ssm:DeregisterManagedInstance on it"
            .into(),
        "UnrecognizedClientException" | "InvalidSignatureException" | "ExpiredTokenException"
        | "IncompleteSignature" | "MissingAuthenticationTokenException" => {
            "the credentials were refused: check the SSM agent's credentials file (or \
             AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and the host clock"
                .into()
        }
        "AccessDeniedException" => {
            "allow ssm:DeregisterManagedInstance for this node's role (or use credentials that have it)"
                .into()
        }
        _ => "see the message above".into(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn registration_is_parsed_and_checked() {
        let p = Path::new("/var/lib/amazon/ssm/registration");
        let r = parse_registration(
            r#"{"ManagedInstanceID":"mi-0123456789abcdef0","Region":"us-west-2"}"#,
            p,
        )
        .unwrap();
        assert_eq!(r.instance_id, "mi-0123456789abcdef0");
        assert_eq!(r.region.as_str(), "us-west-2");
        for bad in [
            r#"{"ManagedInstanceID":"i-0123","Region":"us-west-2"}"#,
            r#"{"ManagedInstanceID":"mi-0123456789abcdef0"}"#,
            "not json",
        ] {
            let err = parse_registration(bad, p).unwrap_err();
            assert!(
                err.to_string().contains("/var/lib/amazon/ssm/registration"),
                "{err}"
            );
        }
    }

    #[test]
    fn errors_are_parsed_like_the_sdks_do() {
        assert_eq!(
            parse_error(br#"{"__type":"InvalidInstanceId","message":"gone"}"#, None),
            ("InvalidInstanceId".into(), "gone".into())
        );
        assert_eq!(
            parse_error(
                br#"{"__type":"com.amazonaws.ssm#InvalidInstanceId","Message":"x"}"#,
                None
            ),
            ("InvalidInstanceId".into(), "x".into())
        );
        assert_eq!(
            parse_error(b"", Some("ThrottlingException:http://internal")),
            ("ThrottlingException".into(), "".into())
        );
    }

    #[test]
    fn requests_are_signed_for_ssm() {
        let creds = Credentials::new("AKIDEXAMPLE", "secret", Some("tok".into()), None, "t");
        let url = url::Url::parse("https://ssm.us-west-2.amazonaws.com/").unwrap();
        let region = Region::parse("us-west-2", "t").unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let body = request_body("mi-0123456789abcdef0");
        assert_eq!(body, br#"{"InstanceId":"mi-0123456789abcdef0"}"#);
        let h = signed_headers(&url, &body, &creds, &region, now).unwrap();
        let get = |k: &str| {
            h.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        let auth = get("authorization");
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-west-2/ssm/aws4_request"
            ),
            "{auth}"
        );
        assert!(
            auth.contains(
                "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
            ),
            "{auth}"
        );
        assert_eq!(get("x-amz-date"), "20231114T221320Z");
        assert_eq!(get("x-amz-security-token"), "tok");
        assert_eq!(get("x-amz-target"), TARGET);
    }

    #[test]
    fn removes_the_registration_only() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::at(tmp.path());
        let base = tmp.path().join("var/lib/amazon/ssm");
        fs::create_dir_all(base.join("Vault/Store")).unwrap();
        fs::create_dir_all(base.join("mi-0123456789abcdef0/document")).unwrap();
        fs::write(base.join("Vault/Store/RegistrationKey"), b"k").unwrap();
        fs::write(
            base.join("registration"),
            br#"{"ManagedInstanceID":"mi-0123456789abcdef0","Region":"us-west-2"}"#,
        )
        .unwrap();
        fs::write(base.join("other"), b"keep").unwrap();
        let reg = read_registration(&root).unwrap().unwrap();
        let removed = remove_registration(&root, &reg).unwrap();
        assert_eq!(removed.len(), 3);
        assert!(base.join("other").exists());
        assert!(!base.join("registration").exists());
        assert!(read_registration(&root).unwrap().is_none());
    }
}
