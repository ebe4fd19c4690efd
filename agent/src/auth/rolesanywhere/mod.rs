//! IAM Roles Anywhere: temporary credentials for a host that holds an X.509 certificate and
//! its private key, through the `CreateSession` API (`POST /sessions` on
//! `rolesanywhere.<region>.<partition suffix>`).
//!
//! - `identity`: the certificate and its key, from PEM;
//! - `signing`: the request, signed with that key (SigV4 with an X.509 algorithm);
//! - here: the client that sends it (retried under [`CREATE_SESSION_RETRY`]), parses the
//!   answer, and the credentials provider that keeps the session until shortly before it
//!   expires.

mod identity;
mod signing;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, future};
use serde::{Deserialize, Serialize};

use super::{Clock, Error};
use crate::model::Region;
use crate::net::retry::{NoAnswer, is_retryable_error, is_retryable_status};
use crate::net::{Attempt, ClientBuilder, Proxy, RetryPolicy, Trust};

pub use identity::{PrivateKey, X509Identity, decimal_serial};
pub use signing::{SignedRequest, sign_request};

/// The signing name of the service.
pub const SERVICE: &str = "rolesanywhere";
/// Session length asked for when none is given (the service's default).
pub const DEFAULT_DURATION_SECS: u32 = 3600;
/// Shortest session the service grants.
pub const MIN_DURATION_SECS: u32 = 900;
/// Longest session the service grants.
/// The largest CreateSession answer read (credentials and the subject: a few KiB).
const MAX_ANSWER_BYTES: usize = 256 * 1024;
pub const MAX_DURATION_SECS: u32 = 43_200;
/// Credentials are refreshed this long before they expire.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// How one `CreateSession` call is retried (transport errors, throttling and server errors):
/// 3 attempts of at most 10 s each, backoff from 200 ms, 35 s in all.
pub const CREATE_SESSION_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    initial_backoff: Duration::from_millis(200),
    max_backoff: Duration::from_secs(2),
    attempt_timeout: Duration::from_secs(10),
    total_deadline: Duration::from_secs(35),
};
/// The service's name in messages.
const SERVICE_NAME: &str = "IAM Roles Anywhere";

/// A hybrid node's IAM Roles Anywhere set-up (from `spec.hybrid.iamRolesAnywhere`, see
/// `config::NodeConfig::credential_source`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// The node's certificate (PEM).
    pub certificate: PathBuf,
    /// Its private key (PEM).
    pub private_key: PathBuf,
    /// What to ask `CreateSession` for; the node name is the session name.
    pub session: SessionParams,
    /// The region of the trust anchor, whose Roles Anywhere endpoint signs the session.
    pub region: Region,
    /// An endpoint override (`AWS_ENDPOINT_URL_ROLESANYWHERE`, or `status --rolesanywhere-endpoint`).
    pub endpoint: Option<String>,
    /// Extra CA certificates for the endpoint (`AWS_CA_BUNDLE`).
    pub ca_bundle: Option<PathBuf>,
    /// The proxy for `CreateSession`.
    pub proxy: crate::net::ProxySettings,
}

/// The variable naming the Roles Anywhere endpoint (as for the AWS SDKs).
pub const ENDPOINT_ENV: &str = "AWS_ENDPOINT_URL_ROLESANYWHERE";

/// What to ask `CreateSession` for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionParams {
    /// The trust anchor that issued (a CA of) the certificate.
    pub trust_anchor_arn: String,
    /// The Roles Anywhere profile.
    pub profile_arn: String,
    /// The role to assume.
    pub role_arn: String,
    /// The role session name (default: the certificate's serial number).
    pub role_session_name: Option<String>,
    /// Session length, [`MIN_DURATION_SECS`] to [`MAX_DURATION_SECS`].
    pub duration_secs: u32,
}

impl SessionParams {
    /// Checks the ARNs and the duration; errors name the flag.
    pub fn validate(&self) -> Result<(), Error> {
        let check = |value: &str, flag: &str, field: &'static str, service: &str, kind: &str| {
            let parts: Vec<&str> = value.splitn(6, ':').collect();
            let ok = parts.len() == 6
                && parts[0] == "arn"
                && parts[1].starts_with("aws")
                && parts[2] == service
                && parts[5].starts_with(kind);
            if ok {
                Ok(())
            } else {
                Err(Error::InvalidInput {
                    source_name: flag.into(),
                    field,
                    reason: format!(
                        "{value:?} is not an ARN of the form arn:aws:{service}:...:{kind}..."
                    ),
                })
            }
        };
        check(
            &self.trust_anchor_arn,
            "--trust-anchor-arn",
            "trust anchor ARN",
            "rolesanywhere",
            "trust-anchor/",
        )?;
        check(
            &self.profile_arn,
            "--profile-arn",
            "profile ARN",
            "rolesanywhere",
            "profile/",
        )?;
        super::credentials::validate_role_arn(&self.role_arn, "--role-arn")?;
        if !(MIN_DURATION_SECS..=MAX_DURATION_SECS).contains(&self.duration_secs) {
            return Err(Error::InvalidInput {
                source_name: "--session-duration".into(),
                field: "session duration",
                reason: format!(
                    "{} seconds is outside {MIN_DURATION_SECS}..={MAX_DURATION_SECS}",
                    self.duration_secs
                ),
            });
        }
        if let Some(name) = &self.role_session_name {
            let ok = (2..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_".contains(&b));
            if !ok {
                return Err(Error::InvalidInput {
                    source_name: "--role-session-name".into(),
                    field: "role session name",
                    reason: "use 2 to 64 characters of letters, digits and +=,.@-_".into(),
                });
            }
        }
        Ok(())
    }
}

/// The `CreateSession` endpoint of `region`: `https://rolesanywhere.<region>.<suffix>`.
pub fn default_endpoint(region: &Region) -> String {
    format!("https://{}", region.rolesanywhere_host())
}

/// Temporary credentials from `CreateSession`.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionCredentials {
    /// `ASIA...`.
    pub access_key_id: String,
    /// Secret.
    pub secret_access_key: String,
    /// Secret.
    pub session_token: String,
    /// When they stop working.
    pub expiration: SystemTime,
}

impl std::fmt::Debug for SessionCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

impl From<SessionCredentials> for Credentials {
    fn from(c: SessionCredentials) -> Credentials {
        Credentials::new(
            c.access_key_id,
            c.secret_access_key,
            Some(c.session_token),
            Some(c.expiration),
            "RolesAnywhere",
        )
    }
}

/// The `credential_process` output format (version 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialProcessOutput {
    /// Always 1.
    #[serde(rename = "Version")]
    pub version: u32,
    /// Access key id.
    #[serde(rename = "AccessKeyId")]
    pub access_key_id: String,
    /// Secret access key.
    #[serde(rename = "SecretAccessKey")]
    pub secret_access_key: String,
    /// Session token.
    #[serde(rename = "SessionToken")]
    pub session_token: String,
    /// RFC 3339 expiration.
    #[serde(rename = "Expiration")]
    pub expiration: String,
}

impl From<&SessionCredentials> for CredentialProcessOutput {
    fn from(c: &SessionCredentials) -> Self {
        CredentialProcessOutput {
            version: 1,
            access_key_id: c.access_key_id.clone(),
            secret_access_key: c.secret_access_key.clone(),
            session_token: c.session_token.clone(),
            expiration: crate::model::text::rfc3339(c.expiration),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateSessionOutput {
    #[serde(default)]
    credential_set: Vec<CredentialResponse>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CredentialResponse {
    credentials: Option<WireCredentials>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
}

/// Parses a `CreateSession` answer: 2xx with `credentialSet[0].credentials`, or an AWS REST-JSON
/// error (`x-amzn-ErrorType` header or `__type`/`code` in the body, and `message`).
pub fn parse_response(
    status: u16,
    error_type_header: Option<&str>,
    body: &[u8],
    endpoint: &str,
) -> Result<SessionCredentials, Error> {
    let bad = |reason: String| Error::BadResponse {
        service: SERVICE_NAME,
        endpoint: endpoint.to_owned(),
        reason,
    };
    if !(200..300).contains(&status) {
        let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let field = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| json.get(*n).and_then(|v| v.as_str()).map(str::to_owned))
        };
        let code = error_type_header
            .map(str::to_owned)
            .or_else(|| field(&["__type", "code", "Code"]))
            .map(|c| sanitize_error_code(&c))
            .unwrap_or_else(|| "UnknownError".into());
        let message = field(&["message", "Message"]).unwrap_or_default();
        return Err(Error::Service {
            service: SERVICE_NAME,
            endpoint: endpoint.to_owned(),
            status,
            code,
            message,
        });
    }
    let out: CreateSessionOutput = serde_json::from_slice(body)
        .map_err(|e| bad(format!("not a CreateSession response: {e}")))?;
    let creds = out
        .credential_set
        .into_iter()
        .next()
        .and_then(|c| c.credentials)
        .ok_or_else(|| bad("credentialSet[0].credentials is missing".into()))?;
    let expiration = crate::model::text::parse_rfc3339(&creds.expiration).ok_or_else(|| {
        bad(format!(
            "expiration {:?} is not an RFC 3339 time",
            creds.expiration
        ))
    })?;
    Ok(SessionCredentials {
        access_key_id: creds.access_key_id,
        secret_access_key: creds.secret_access_key,
        session_token: creds.session_token,
        expiration,
    })
}

/// `AccessDeniedException:http://...` or `aws.foo#AccessDeniedException` -> `AccessDeniedException`.
fn sanitize_error_code(code: &str) -> String {
    let code = code.split(':').next().unwrap_or(code);
    code.rsplit('#').next().unwrap_or(code).trim().to_owned()
}

/// An HTTPS client for Roles Anywhere: the system's CAs, or only the PEM bundle named by
/// `AWS_CA_BUNDLE` when set (as the AWS CLI and SDKs use it); the environment's proxy; every
/// request bounded by [`CREATE_SESSION_RETRY`]'s attempt timeout.
pub fn https_client(ca_bundle: Option<&Path>) -> Result<reqwest::Client, Error> {
    https_client_with(ca_bundle, Proxy::FromEnvironment)
}

/// [`https_client`] with a given proxy (a hybrid node's: its process environment, else its
/// NodeConfig's, as for its other AWS calls).
pub fn https_client_with(ca_bundle: Option<&Path>, proxy: Proxy) -> Result<reqwest::Client, Error> {
    let trust = match ca_bundle {
        Some(path) => Trust::Only(path.to_owned()),
        None => Trust::System,
    };
    ClientBuilder::new()
        .trust(trust)
        .proxy(proxy)
        .timeout(CREATE_SESSION_RETRY.attempt_timeout)
        .build()
        .map_err(|source| Error::HttpClient {
            service: SERVICE_NAME,
            source,
        })
}

/// Everything needed to call `CreateSession` repeatedly.
#[derive(Debug, Clone)]
pub struct RolesAnywhere {
    identity: Arc<X509Identity>,
    params: SessionParams,
    region: Region,
    endpoint: url::Url,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl RolesAnywhere {
    /// A client for `endpoint` (default: [`default_endpoint`]).
    pub fn new(
        identity: X509Identity,
        params: SessionParams,
        region: Region,
        endpoint: Option<&str>,
        client: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Result<RolesAnywhere, Error> {
        params.validate()?;
        let endpoint_text = endpoint
            .map(str::to_owned)
            .unwrap_or_else(|| default_endpoint(&region));
        let endpoint = url::Url::parse(&endpoint_text)
            .ok()
            .filter(|u| matches!(u.scheme(), "https" | "http") && u.host_str().is_some())
            .ok_or_else(|| Error::InvalidInput {
                source_name: "--endpoint".into(),
                field: "URL",
                reason: format!("{endpoint_text:?} is not an https:// URL"),
            })?;
        Ok(RolesAnywhere {
            identity: Arc::new(identity),
            params,
            region,
            endpoint,
            client,
            clock,
        })
    }

    /// The client for a hybrid node: its certificate and key, its ARNs and its node name as
    /// the session name.
    pub fn for_node(node: &NodeIdentity, clock: Arc<dyn Clock>) -> Result<RolesAnywhere, Error> {
        let identity = X509Identity::load(&node.certificate, &node.private_key, None)?;
        RolesAnywhere::new(
            identity,
            node.session.clone(),
            node.region.clone(),
            node.endpoint.as_deref(),
            https_client_with(
                node.ca_bundle.as_deref(),
                Proxy::Settings(node.proxy.clone()),
            )?,
            clock,
        )
    }

    /// Signs a `CreateSession` request at the clock's current time.
    pub fn sign(&self) -> Result<SignedRequest, Error> {
        sign_request(
            &self.identity,
            &self.params,
            &self.region,
            &self.endpoint,
            self.clock.now(),
        )
    }

    /// Sends one signed request (no retry) and parses the answer.
    pub async fn send(&self, req: &SignedRequest) -> Result<SessionCredentials, Error> {
        match self.exchange(req, 1).await {
            Attempt::Done(credentials) => Ok(credentials),
            Attempt::Retry(e) | Attempt::RetryNow(e) | Attempt::Fail(e) => Err(e),
        }
    }

    /// The `attempt`-th exchange of `req`: the credentials, or whether the failure is worth
    /// another attempt (transport errors, throttling, server errors).
    async fn exchange(
        &self,
        req: &SignedRequest,
        attempt: u32,
    ) -> Attempt<SessionCredentials, Error> {
        let endpoint = self.endpoint.as_str();
        match self.attempt(req).await {
            Ok((status, error_type, body)) => {
                match parse_response(status, error_type.as_deref(), &body, endpoint) {
                    Ok(credentials) => Attempt::Done(credentials),
                    Err(e) if is_retryable_status(status) => {
                        tracing::warn!(
                            endpoint,
                            status,
                            attempt,
                            "IAM Roles Anywhere answered with a retryable error"
                        );
                        Attempt::Retry(e)
                    }
                    Err(e) => Attempt::Fail(e),
                }
            }
            Err(e) => {
                let retry = is_retryable_error(&e);
                if retry {
                    tracing::warn!(endpoint, attempt, error = %e, "IAM Roles Anywhere request failed");
                }
                let failed = self.transport_error(attempt, Box::new(e));
                if retry {
                    Attempt::Retry(failed)
                } else {
                    Attempt::Fail(failed)
                }
            }
        }
    }

    fn transport_error(
        &self,
        attempts: u32,
        source: Box<dyn std::error::Error + Send + Sync>,
    ) -> Error {
        Error::Transport {
            service: SERVICE_NAME,
            endpoint: self.endpoint.to_string(),
            attempts,
            source,
        }
    }

    async fn attempt(
        &self,
        req: &SignedRequest,
    ) -> Result<(u16, Option<String>, Vec<u8>), reqwest::Error> {
        let mut builder = self.client.post(&req.url).body(req.body.clone());
        for (k, v) in &req.headers {
            // reqwest writes Host from the URL: the same value that was signed.
            if k != "host" {
                builder = builder.header(k, v);
            }
        }
        let resp = builder.send().await?;
        let status = resp.status().as_u16();
        let error_type = resp
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = match crate::net::body::read_capped(resp, MAX_ANSWER_BYTES).await {
            Ok(body) => body,
            Err(crate::net::body::BodyError::Http(e)) => return Err(e),
            // Too large for any CreateSession answer: kept short, parsed as the error it is.
            Err(e) => e.to_string().into_bytes(),
        };
        Ok((status, error_type, body))
    }

    /// Calls `CreateSession` under [`CREATE_SESSION_RETRY`], each attempt signed afresh.
    pub async fn create_session(&self) -> Result<SessionCredentials, Error> {
        let (result, _) = CREATE_SESSION_RETRY
            .run(
                |attempt| async move {
                    let req = match self.sign() {
                        Ok(req) => req,
                        Err(e) => return Attempt::Fail(e),
                    };
                    tracing::debug!(endpoint = %self.endpoint, attempt, serial = %self.identity.serial(), "IAM Roles Anywhere CreateSession");
                    self.exchange(&req, attempt).await
                },
                |attempt, bound| {
                    self.transport_error(attempt, Box::new(NoAnswer::TimedOut(bound)))
                },
            )
            .await;
        result
    }
}

/// A credentials provider over [`RolesAnywhere`] that keeps the last session and asks for a new
/// one [`REFRESH_BEFORE_EXPIRY`] before it expires.
#[derive(Debug, Clone)]
pub struct RolesAnywhereProvider {
    inner: RolesAnywhere,
    cached: Arc<Mutex<Option<SessionCredentials>>>,
}

impl RolesAnywhereProvider {
    /// Wraps a client.
    pub fn new(inner: RolesAnywhere) -> RolesAnywhereProvider {
        RolesAnywhereProvider {
            inner,
            cached: Arc::new(Mutex::new(None)),
        }
    }

    /// Current credentials: cached while more than [`REFRESH_BEFORE_EXPIRY`] is left.
    pub async fn credentials(&self) -> Result<SessionCredentials, Error> {
        let now = self.inner.clock.now();
        if let Some(c) = self.cached.lock().ok().and_then(|g| g.clone())
            && !needs_refresh(c.expiration, now)
        {
            return Ok(c);
        }
        let fresh = self.inner.create_session().await?;
        if let Ok(mut g) = self.cached.lock() {
            *g = Some(fresh.clone());
        }
        Ok(fresh)
    }
}

/// True when credentials expiring at `expiration` must be replaced at `now`.
pub fn needs_refresh(expiration: SystemTime, now: SystemTime) -> bool {
    expiration
        .duration_since(now)
        .map(|left| left <= REFRESH_BEFORE_EXPIRY)
        .unwrap_or(true)
}

impl ProvideCredentials for RolesAnywhereProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.credentials()
                .await
                .map(Credentials::from)
                .map_err(provider::error::CredentialsError::provider_error)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_five_minutes_before_expiry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!(!needs_refresh(now + Duration::from_secs(301), now));
        assert!(needs_refresh(now + Duration::from_secs(300), now));
        assert!(needs_refresh(now - Duration::from_secs(1), now));
    }

    #[test]
    fn error_responses_keep_code_and_message() {
        let body = br#"{"message":"Untrusted signing certificate"}"#;
        let err = parse_response(
            403,
            Some("AccessDeniedException:http://internal.amazon.com/"),
            body,
            "https://x",
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::Service { status: 403, code, message, .. } if code == "AccessDeniedException" && message == "Untrusted signing certificate"),
            "{err:?}"
        );
        let err = parse_response(
            400,
            None,
            br#"{"__type":"com.amazon#ValidationException","message":"bad"}"#,
            "https://x",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("ValidationException: bad"),
            "{err}"
        );
    }

    #[test]
    fn success_response_shape() {
        let body = br#"{"credentialSet":[{"assumedRoleUser":{"arn":"arn:aws:sts::123456789012:assumed-role/r/1","assumedRoleId":"AROA:1"},"credentials":{"accessKeyId":"ASIAX","expiration":"2024-01-01T01:00:00Z","secretAccessKey":"s","sessionToken":"t"},"packedPolicySize":0,"roleArn":"arn:aws:iam::123456789012:role/r","sourceIdentity":"CN=node"}],"subjectArn":"arn:aws:rolesanywhere:us-west-2:123456789012:subject/x"}"#;
        let c = parse_response(201, None, body, "https://x").unwrap();
        assert_eq!(c.access_key_id, "ASIAX");
        assert_eq!(
            crate::model::text::rfc3339(c.expiration),
            "2024-01-01T01:00:00Z"
        );
        let out = CredentialProcessOutput::from(&c);
        let json = serde_json::to_string(&out).unwrap();
        assert_eq!(
            json,
            r#"{"Version":1,"AccessKeyId":"ASIAX","SecretAccessKey":"s","SessionToken":"t","Expiration":"2024-01-01T01:00:00Z"}"#
        );
        assert!(!format!("{c:?}").contains("\"s\""));
        assert!(parse_response(201, None, br#"{"credentialSet":[]}"#, "https://x").is_err());
    }

    #[test]
    fn params_are_validated_with_the_flag_named() {
        let mut p = SessionParams {
            trust_anchor_arn: "arn:aws:rolesanywhere:us-west-2:123456789012:trust-anchor/ta".into(),
            profile_arn: "arn:aws:rolesanywhere:us-west-2:123456789012:profile/p".into(),
            role_arn: "arn:aws:iam::123456789012:role/node".into(),
            role_session_name: Some("node-1".into()),
            duration_secs: 3600,
        };
        p.validate().unwrap();
        p.profile_arn = "arn:aws:iam::123456789012:role/oops".into();
        assert!(
            p.validate()
                .unwrap_err()
                .to_string()
                .starts_with("--profile-arn")
        );
        p.profile_arn = "arn:aws:rolesanywhere:us-west-2:123456789012:profile/p".into();
        p.duration_secs = 60;
        assert!(
            p.validate()
                .unwrap_err()
                .to_string()
                .starts_with("--session-duration")
        );
    }
}
