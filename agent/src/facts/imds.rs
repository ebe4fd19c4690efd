//! An IMDSv2 client: session tokens, bounded retries with backoff, a total deadline per read,
//! the standard `AWS_EC2_METADATA_*` environment overrides, and typed reads of the paths the
//! agent needs.
//!
//! The token is never logged and never appears in an error.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use url::Url;

/// The retry policy type, with [`IMDS_RETRY`] as the client's default.
pub use crate::net::RetryPolicy;
use crate::net::retry::{is_retryable_error, is_retryable_status};
use crate::net::{Attempt, ClientBuilder, Proxy, Trust};

/// The IPv4 link-local endpoint of IMDS.
pub const IMDS_ENDPOINT_IPV4: &str = "http://169.254.169.254";
/// The IPv6 endpoint of IMDS (Nitro instances with the IPv6 endpoint turned on).
pub const IMDS_ENDPOINT_IPV6: &str = "http://[fd00:ec2::254]";
/// Lifetime asked for each session token (the IMDS maximum, six hours).
pub const IMDS_TOKEN_TTL_SECS: u64 = 21_600;
/// A token is replaced this long before IMDS would expire it.
pub const IMDS_TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(120);
/// Timeout of one TCP connect.
pub const IMDS_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How one read is retried: at most 10 attempts of 2 s each (token request, request and
/// body), backoff from 100 ms doubling to 5 s, 60 s in all.
pub const IMDS_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 10,
    initial_backoff: Duration::from_millis(100),
    max_backoff: Duration::from_secs(5),
    attempt_timeout: Duration::from_secs(2),
    total_deadline: Duration::from_secs(60),
};

/// Environment variable naming the IMDS endpoint URL.
pub const ENV_ENDPOINT: &str = "AWS_EC2_METADATA_SERVICE_ENDPOINT";
/// Environment variable choosing `IPv4` or `IPv6` for the default endpoint.
pub const ENV_ENDPOINT_MODE: &str = "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE";
/// Environment variable that turns IMDS off (`true`).
pub const ENV_DISABLED: &str = "AWS_EC2_METADATA_DISABLED";

/// The largest IMDS answer read (user data is at most 16 KiB; metadata documents are small).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// The largest session token read (IMDS tokens are about 56 bytes).
const MAX_TOKEN_BYTES: usize = 4096;
const TOKEN_PATH: &str = "/latest/api/token";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
const TOKEN_TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";

/// Errors reading IMDS.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// IMDS did not answer usefully within the attempts and the deadline.
    #[error(
        "IMDS unreachable at {endpoint} after {attempts} attempts over {elapsed:.1?}: {last_cause}"
    )]
    Unreachable {
        /// The endpoint tried.
        endpoint: String,
        /// How many attempts were made.
        attempts: u32,
        /// How long was spent trying.
        elapsed: Duration,
        /// The last failure, with its causes joined.
        last_cause: String,
    },
    /// IMDS is turned off: by `AWS_EC2_METADATA_DISABLED`, or it answered 403.
    #[error(
        "IMDS is turned off ({reason}); turn the instance metadata endpoint on (HttpEndpoint=enabled) or unset {ENV_DISABLED}"
    )]
    Disabled {
        /// What said so.
        reason: String,
    },
    /// IMDS answered a status the client cannot act on.
    #[error("IMDS answered HTTP {status} for {path} at {endpoint}")]
    Status {
        /// The endpoint.
        endpoint: String,
        /// The path read.
        path: String,
        /// The HTTP status.
        status: u16,
    },
    /// A path every EC2 instance has was absent (404).
    #[error("IMDS has no {path} at {endpoint} (HTTP 404), which every EC2 instance has")]
    Missing {
        /// The endpoint.
        endpoint: String,
        /// The path read.
        path: String,
    },
    /// A value could not be parsed.
    #[error("IMDS returned an invalid value for {path}: {reason}")]
    InvalidValue {
        /// The path read.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// The instance identity document is not the expected JSON.
    #[error("IMDS returned an invalid instance identity document at {path}")]
    IdentityDocument {
        /// The path read.
        path: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The endpoint from the environment or a parameter is not a URL.
    #[error(
        "invalid IMDS endpoint {value:?} (from {origin}): expected a URL like http://169.254.169.254"
    )]
    InvalidEndpoint {
        /// The value given.
        value: String,
        /// Where it came from.
        origin: &'static str,
        /// The parse error.
        #[source]
        source: url::ParseError,
    },
    /// `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE` has an unknown value.
    #[error("invalid {ENV_ENDPOINT_MODE} {value:?}: expected IPv4 or IPv6")]
    InvalidEndpointMode {
        /// The value given.
        value: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the IMDS HTTP client")]
    Client(#[source] crate::net::client::Error),
}

/// Which default endpoint to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointMode {
    /// `http://169.254.169.254`.
    Ipv4,
    /// `http://[fd00:ec2::254]`.
    Ipv6,
}

/// Where the client talks to, resolved from the environment (pure: takes a lookup function).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointSetting {
    /// IMDS is turned off.
    Disabled,
    /// Use this endpoint.
    Endpoint(Url),
}

/// Resolves the endpoint from `AWS_EC2_METADATA_*` variables given by `lookup`.
/// The explicit endpoint wins over the mode; `AWS_EC2_METADATA_DISABLED=true` wins over both.
pub fn endpoint_from_env(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<EndpointSetting, Error> {
    if lookup(ENV_DISABLED).is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Ok(EndpointSetting::Disabled);
    }
    if let Some(value) = lookup(ENV_ENDPOINT).filter(|v| !v.trim().is_empty()) {
        let url = parse_endpoint(value.trim(), ENV_ENDPOINT)?;
        return Ok(EndpointSetting::Endpoint(url));
    }
    let mode = match lookup(ENV_ENDPOINT_MODE).filter(|v| !v.trim().is_empty()) {
        None => EndpointMode::Ipv4,
        Some(v) if v.trim().eq_ignore_ascii_case("ipv4") => EndpointMode::Ipv4,
        Some(v) if v.trim().eq_ignore_ascii_case("ipv6") => EndpointMode::Ipv6,
        Some(value) => return Err(Error::InvalidEndpointMode { value }),
    };
    let default = match mode {
        EndpointMode::Ipv4 => IMDS_ENDPOINT_IPV4,
        EndpointMode::Ipv6 => IMDS_ENDPOINT_IPV6,
    };
    Ok(EndpointSetting::Endpoint(parse_endpoint(
        default, "default",
    )?))
}

fn parse_endpoint(value: &str, origin: &'static str) -> Result<Url, Error> {
    Url::parse(value).map_err(|source| Error::InvalidEndpoint {
        value: value.to_string(),
        origin,
        source,
    })
}

/// A session token and when to stop using it. Debug never prints the token.
struct Token {
    value: String,
    refresh_at: Instant,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("value", &"<redacted>")
            .field("refresh_at", &self.refresh_at)
            .finish()
    }
}

/// The IMDSv2 client. Cheap to share by reference; reads may run concurrently and share one
/// session token.
#[derive(Debug)]
pub struct Imds {
    client: reqwest::Client,
    /// Base URL without a trailing slash; `None` when IMDS is turned off.
    endpoint: Option<String>,
    policy: RetryPolicy,
    token_ttl_secs: u64,
    token: Mutex<Option<Token>>,
    /// Unreachable reads are logged at debug level (the caller reports them itself).
    quiet: bool,
}

impl Imds {
    /// The client for this host: endpoint from `AWS_EC2_METADATA_*`, default policy.
    pub fn new() -> Result<Imds, Error> {
        match endpoint_from_env(|k| std::env::var(k).ok())? {
            EndpointSetting::Disabled => Imds::build(None),
            EndpointSetting::Endpoint(url) => Imds::build(Some(url)),
        }
    }

    /// A client for the given endpoint (an emulator in tests), default policy.
    pub fn with_endpoint(url: &str) -> Result<Imds, Error> {
        let url = parse_endpoint(url, "parameter")?;
        Imds::build(Some(url))
    }

    fn build(endpoint: Option<Url>) -> Result<Imds, Error> {
        // IMDS is plain HTTP on a link-local (or loopback) address: no CA, never a proxy.
        // Each attempt is bounded by the retry policy.
        let client = ClientBuilder::new()
            .trust(Trust::None)
            .proxy(Proxy::Never)
            .connect_timeout(IMDS_CONNECT_TIMEOUT)
            .build()
            .map_err(Error::Client)?;
        Ok(Imds {
            client,
            endpoint: endpoint.map(|u| u.as_str().trim_end_matches('/').to_string()),
            policy: IMDS_RETRY,
            token_ttl_secs: IMDS_TOKEN_TTL_SECS,
            token: Mutex::new(None),
            quiet: false,
        })
    }

    /// Replaces the retry policy (tests and the benchmark use shorter deadlines).
    pub fn with_policy(mut self, policy: RetryPolicy) -> Imds {
        self.policy = policy;
        self
    }

    /// Logs unreachable reads at debug level only: for pollers that back off and report
    /// failures themselves.
    pub fn quiet(mut self) -> Imds {
        self.quiet = true;
        self
    }

    /// Replaces the token lifetime asked for (1..=21600 seconds).
    pub fn with_token_ttl(mut self, secs: u64) -> Imds {
        self.token_ttl_secs = secs.clamp(1, IMDS_TOKEN_TTL_SECS);
        self
    }

    /// The endpoint, or `None` when IMDS is turned off.
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// Reads `path` (e.g. `/latest/meta-data/mac`). `Ok(None)` when IMDS answers 404.
    pub async fn get_optional(&self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        let Some(endpoint) = self.endpoint.as_deref() else {
            return Err(Error::Disabled {
                reason: format!("{ENV_DISABLED}=true"),
            });
        };
        let started = Instant::now();
        let (result, attempts) = self
            .policy
            .run(
                |n| self.attempt(endpoint, path, n, started),
                |n, bound| {
                    unreachable(endpoint, n, started, format!("timed out after {bound:.1?}"))
                },
            )
            .await;
        if let Err(Error::Unreachable { elapsed, .. }) = &result {
            if self.quiet {
                tracing::debug!(endpoint, path, attempts, ?elapsed, "IMDS unreachable");
            } else {
                tracing::warn!(endpoint, path, attempts, ?elapsed, "IMDS unreachable");
            }
        }
        result
    }

    /// Reads `path`; a 404 is an error (the path exists on every instance).
    pub async fn get(&self, path: &str) -> Result<Vec<u8>, Error> {
        self.get_optional(path)
            .await?
            .ok_or_else(|| Error::Missing {
                endpoint: self.endpoint.clone().unwrap_or_default(),
                path: path.to_string(),
            })
    }

    /// Reads `path` as trimmed UTF-8 text.
    pub async fn get_text(&self, path: &str) -> Result<String, Error> {
        let body = self.get(path).await?;
        text(path, body)
    }

    /// Reads `path` as trimmed UTF-8 text; `None` on 404.
    pub async fn get_text_optional(&self, path: &str) -> Result<Option<String>, Error> {
        match self.get_optional(path).await? {
            None => Ok(None),
            Some(body) => text(path, body).map(Some),
        }
    }

    /// One attempt: make sure there is a token, then GET. `Done(None)` is a 404.
    async fn attempt(
        &self,
        endpoint: &str,
        path: &str,
        n: u32,
        started: Instant,
    ) -> Attempt<Option<Vec<u8>>, Error> {
        let retry = |cause: String| {
            tracing::debug!(path, attempt = n, cause = %cause, "IMDS attempt failed");
            Attempt::Retry(unreachable(endpoint, n, started, cause))
        };
        let token = match self.token(endpoint).await {
            Ok(Ok(token)) => token,
            Ok(Err(cause)) => return retry(cause),
            Err(e) => return Attempt::Fail(e),
        };
        let url = format!("{endpoint}{path}");
        let Ok(mut header) = reqwest::header::HeaderValue::from_str(&token) else {
            self.token.lock().await.take();
            return retry(
                "IMDS returned a session token that is not a valid header value".to_string(),
            );
        };
        header.set_sensitive(true);
        let sent = self
            .client
            .get(&url)
            .header(TOKEN_HEADER, header)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) if is_retryable_error(&e) => return retry(describe(&e)),
            Err(e) => return Attempt::Fail(unreachable(endpoint, n, started, describe(&e))),
        };
        match response.status().as_u16() {
            200 => match crate::net::body::read_capped(response, MAX_ANSWER_BYTES).await {
                Ok(body) => Attempt::Done(Some(body)),
                Err(crate::net::body::BodyError::Http(e)) => retry(describe(&e)),
                Err(e) => Attempt::Fail(unreachable(endpoint, n, started, e.to_string())),
            },
            404 => Attempt::Done(None),
            401 => {
                tracing::debug!(
                    path,
                    "IMDS refused the session token (401); getting a new one"
                );
                // Forget the token only if no concurrent read has replaced it already.
                let mut slot = self.token.lock().await;
                if slot.as_ref().is_some_and(|t| t.value == token) {
                    slot.take();
                }
                drop(slot);
                let refused = unreachable(
                    endpoint,
                    n,
                    started,
                    "the session token was refused (HTTP 401)".to_string(),
                );
                // A refusal on the first attempt is retried at once; a later one backs off.
                if n == 1 {
                    Attempt::RetryNow(refused)
                } else {
                    Attempt::Retry(refused)
                }
            }
            403 => Attempt::Fail(Error::Disabled {
                reason: format!("HTTP 403 for {path} at {endpoint}"),
            }),
            s if is_retryable_status(s) => retry(format!("HTTP {s} for {path}")),
            status => Attempt::Fail(Error::Status {
                endpoint: endpoint.to_string(),
                path: path.to_string(),
                status,
            }),
        }
    }

    /// The current token, fetching a new one when there is none or it is about to expire.
    /// The outer `Err` is final; the inner `Err` is a transient cause worth a retry.
    async fn token(&self, endpoint: &str) -> Result<Result<String, String>, Error> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref()
            && Instant::now() < t.refresh_at
        {
            return Ok(Ok(t.value.clone()));
        }
        slot.take();
        let asked_at = Instant::now();
        let sent = self
            .client
            .put(format!("{endpoint}{TOKEN_PATH}"))
            .header(TOKEN_TTL_HEADER, self.token_ttl_secs.to_string())
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => return Ok(Err(describe(&e))),
        };
        let status = response.status().as_u16();
        match status {
            200 => {}
            403 => {
                return Err(Error::Disabled {
                    reason: format!("HTTP 403 for the token request at {endpoint}"),
                });
            }
            s if is_retryable_status(s) => {
                return Ok(Err(format!("HTTP {s} for the token request")));
            }
            _ => {
                return Err(Error::Status {
                    endpoint: endpoint.to_string(),
                    path: TOKEN_PATH.to_string(),
                    status,
                });
            }
        }
        let granted = response
            .headers()
            .get(TOKEN_TTL_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(self.token_ttl_secs);
        let value = match crate::net::body::read_capped(response, MAX_TOKEN_BYTES).await {
            Ok(v) => String::from_utf8_lossy(&v).trim().to_string(),
            Err(crate::net::body::BodyError::Http(e)) => return Ok(Err(describe(&e))),
            Err(e) => return Ok(Err(e.to_string())),
        };
        if value.is_empty() {
            return Ok(Err("IMDS returned an empty session token".to_string()));
        }
        let refresh_at = asked_at + token_lifetime(granted);
        tracing::debug!(ttl_secs = granted, "got an IMDS session token");
        *slot = Some(Token {
            value: value.clone(),
            refresh_at,
        });
        Ok(Ok(value))
    }

    /// `autoscaling/target-lifecycle-state`; `None` outside an Auto Scaling group (404). A
    /// value IMDS does not document is an error naming it.
    pub async fn target_lifecycle_state(
        &self,
    ) -> Result<Option<crate::model::TargetLifecycleState>, Error> {
        let path = meta(TARGET_LIFECYCLE_STATE);
        let Some(text) = self.get_text_optional(&path).await? else {
            return Ok(None);
        };
        crate::model::TargetLifecycleState::parse(&text)
            .map(Some)
            .ok_or_else(|| Error::InvalidValue {
                path,
                reason: format!("{text:?} is not a documented target lifecycle state"),
            })
    }

    /// The instance identity document.
    pub async fn identity_document(&self) -> Result<IdentityDocument, Error> {
        let body = self.get(IDENTITY_DOCUMENT_PATH).await?;
        parse_identity_document(&body)
    }

    /// The user data, raw; `None` when the instance has none (404).
    pub async fn user_data(&self) -> Result<Option<Vec<u8>>, Error> {
        self.get_optional(USER_DATA_PATH).await
    }

    /// The MAC address of the primary network interface.
    pub async fn mac(&self) -> Result<String, Error> {
        self.get_text(&meta("mac")).await
    }

    /// The primary private IPv4 address; `None` on IPv6-only instances.
    pub async fn local_ipv4(&self) -> Result<Option<Ipv4Addr>, Error> {
        let path = meta("local-ipv4");
        match self.get_text_optional(&path).await? {
            None => Ok(None),
            Some(v) => parse_value(&path, &v).map(Some),
        }
    }

    /// `services/domain` (e.g. `amazonaws.com`).
    pub async fn domain(&self) -> Result<String, Error> {
        self.get_text(&meta("services/domain")).await
    }

    /// `services/partition` (e.g. `aws`).
    pub async fn partition(&self) -> Result<String, Error> {
        self.get_text(&meta("services/partition")).await
    }

    /// `placement/*` and the Outpost ARN when the instance runs on an Outpost.
    pub async fn placement(&self) -> Result<Placement, Error> {
        let paths = [
            meta("placement/availability-zone"),
            meta("placement/availability-zone-id"),
            meta("placement/region"),
            meta(OUTPOST_ARN),
        ];
        let (az, az_id, region, outpost) = tokio::join!(
            self.get_text(&paths[0]),
            self.get_text_optional(&paths[1]),
            self.get_text(&paths[2]),
            self.get_text_optional(&paths[3]),
        );
        Ok(Placement {
            availability_zone: az?,
            availability_zone_id: az_id?,
            region: region?,
            outpost_arn: outpost?,
        })
    }

    /// The network interface with this MAC address.
    pub async fn interface(&self, mac: &str) -> Result<NetworkInterface, Error> {
        let base = format!("network/interfaces/macs/{mac}");
        let p = |leaf: &str| meta(&format!("{base}/{leaf}"));
        let paths = [
            p("device-number"),
            p("network-card"),
            p("local-ipv4s"),
            p("ipv6s"),
            p("vpc-ipv4-cidr-blocks"),
            p("subnet-ipv4-cidr-block"),
        ];
        let (device, card, v4s, v6s, vpc, subnet) = tokio::join!(
            self.get_text(&paths[0]),
            self.get_text_optional(&paths[1]),
            self.get_text_optional(&paths[2]),
            self.get_text_optional(&paths[3]),
            self.get_text_optional(&paths[4]),
            self.get_text_optional(&paths[5]),
        );
        let device = device?;
        let card = card?;
        let subnet = subnet?;
        Ok(NetworkInterface {
            mac: mac.to_string(),
            device_number: parse_value(&p("device-number"), &device)?,
            network_card: card
                .map(|c| parse_value(&p("network-card"), &c))
                .transpose()?,
            local_ipv4s: parse_lines(&p("local-ipv4s"), v4s?.as_deref())?,
            ipv6s: parse_lines(&p("ipv6s"), v6s?.as_deref())?,
            vpc_ipv4_cidr_blocks: parse_lines(&p("vpc-ipv4-cidr-blocks"), vpc?.as_deref())?,
            subnet_ipv4_cidr_block: subnet
                .map(|s| parse_value(&p("subnet-ipv4-cidr-block"), &s))
                .transpose()?,
        })
    }

    /// Everything the agent reads from IMDS, fetched concurrently.
    pub async fn instance_metadata(&self) -> Result<InstanceMetadata, Error> {
        let primary = async {
            let mac = self.mac().await?;
            let interface = self.interface(&mac).await?;
            Ok::<_, Error>((mac, interface))
        };
        let (identity, primary, local_ipv4, domain, partition, placement) = tokio::join!(
            self.identity_document(),
            primary,
            self.local_ipv4(),
            self.domain(),
            self.partition(),
            self.placement(),
        );
        let (mac, interface) = primary?;
        Ok(InstanceMetadata {
            identity: identity?,
            mac,
            local_ipv4: local_ipv4?,
            interface,
            domain: domain?,
            partition: partition?,
            placement: placement?,
        })
    }
}

/// Path of the instance identity document.
pub const IDENTITY_DOCUMENT_PATH: &str = "/latest/dynamic/instance-identity/document";
/// Path of the user data.
pub const USER_DATA_PATH: &str = "/latest/user-data";
/// Meta-data leaf with the Auto Scaling target lifecycle state.
pub const TARGET_LIFECYCLE_STATE: &str = "autoscaling/target-lifecycle-state";
/// Meta-data leaf with the Outpost ARN (present only on Outposts).
const OUTPOST_ARN: &str = "outpost-arn";

/// The path of a `meta-data/` leaf.
pub fn meta(leaf: &str) -> String {
    format!("/latest/meta-data/{leaf}")
}

/// How long a token granted for `ttl_secs` may be used: the TTL less the refresh margin, or
/// half the TTL when the TTL is shorter than twice the margin.
pub fn token_lifetime(ttl_secs: u64) -> Duration {
    let ttl = Duration::from_secs(ttl_secs);
    if ttl > IMDS_TOKEN_REFRESH_MARGIN * 2 {
        ttl - IMDS_TOKEN_REFRESH_MARGIN
    } else {
        ttl / 2
    }
}

/// The error of a read that found IMDS unreachable after `attempts` (so far).
fn unreachable(endpoint: &str, attempts: u32, started: Instant, last_cause: String) -> Error {
    Error::Unreachable {
        endpoint: endpoint.to_string(),
        attempts,
        elapsed: started.elapsed(),
        last_cause,
    }
}

/// What a reqwest error was, and its causes joined by ": " (reqwest's own text, which repeats
/// the URL, is left out).
fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    match std::error::Error::source(err) {
        Some(cause) => format!("{kind}: {}", crate::model::text::error_chain(cause)),
        None => kind.to_string(),
    }
}

fn text(path: &str, body: Vec<u8>) -> Result<String, Error> {
    String::from_utf8(body)
        .map(|s| s.trim().to_string())
        .map_err(|_| Error::InvalidValue {
            path: path.to_string(),
            reason: "not UTF-8 text".to_string(),
        })
}

fn parse_value<T: std::str::FromStr>(path: &str, value: &str) -> Result<T, Error>
where
    T::Err: fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e: T::Err| Error::InvalidValue {
            path: path.to_string(),
            reason: format!("{value:?}: {e}"),
        })
}

/// Parses a newline-separated list; absent (404) or empty means an empty list.
fn parse_lines<T: std::str::FromStr>(path: &str, body: Option<&str>) -> Result<Vec<T>, Error>
where
    T::Err: fmt::Display,
{
    body.unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| parse_value(path, l))
        .collect()
}

/// Parses the instance identity document.
pub fn parse_identity_document(body: &[u8]) -> Result<IdentityDocument, Error> {
    serde_json::from_slice(body).map_err(|source| Error::IdentityDocument {
        path: IDENTITY_DOCUMENT_PATH.to_string(),
        source,
    })
}

/// The fields of the instance identity document the agent uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityDocument {
    /// Region, e.g. `us-west-2`.
    pub region: String,
    /// Instance ID, e.g. `i-0123456789abcdef0`.
    pub instance_id: String,
    /// Instance type, e.g. `m5.large`.
    pub instance_type: String,
    /// Availability zone, e.g. `us-west-2a`.
    pub availability_zone: String,
    /// The AWS account ID.
    pub account_id: String,
    /// The primary private IPv4 address (absent on IPv6-only instances).
    #[serde(default)]
    pub private_ip: Option<Ipv4Addr>,
}

/// `placement/*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// `placement/availability-zone`.
    pub availability_zone: String,
    /// `placement/availability-zone-id` (e.g. `usw2-az1`).
    pub availability_zone_id: Option<String>,
    /// `placement/region`.
    pub region: String,
    /// The Outpost ARN when the instance runs on an AWS Outpost.
    pub outpost_arn: Option<String>,
}

/// `network/interfaces/macs/<mac>/*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInterface {
    /// The MAC address.
    pub mac: String,
    /// `device-number` (0 for the primary interface).
    pub device_number: u32,
    /// `network-card` (absent on instance types with one network card).
    pub network_card: Option<u32>,
    /// `local-ipv4s`.
    pub local_ipv4s: Vec<Ipv4Addr>,
    /// `ipv6s` (empty when the interface has none).
    pub ipv6s: Vec<Ipv6Addr>,
    /// `vpc-ipv4-cidr-blocks`.
    pub vpc_ipv4_cidr_blocks: Vec<Ipv4Net>,
    /// `subnet-ipv4-cidr-block` (absent in IPv6-only subnets).
    pub subnet_ipv4_cidr_block: Option<Ipv4Net>,
}

/// Everything read from IMDS for discovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceMetadata {
    /// The instance identity document.
    pub identity: IdentityDocument,
    /// MAC of the primary interface.
    pub mac: String,
    /// `local-ipv4` (absent on IPv6-only instances).
    pub local_ipv4: Option<Ipv4Addr>,
    /// The primary interface.
    pub interface: NetworkInterface,
    /// `services/domain`.
    pub domain: String,
    /// `services/partition`.
    pub partition: String,
    /// `placement/*`.
    pub placement: Placement,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn endpoint_defaults_to_ipv4() {
        let got = endpoint_from_env(env(&[])).expect("ok");
        assert_eq!(
            got,
            EndpointSetting::Endpoint(Url::parse(IMDS_ENDPOINT_IPV4).expect("url"))
        );
    }

    #[test]
    fn endpoint_mode_ipv6_picks_the_ipv6_endpoint() {
        let got = endpoint_from_env(env(&[(ENV_ENDPOINT_MODE, "IPv6")])).expect("ok");
        let EndpointSetting::Endpoint(url) = got else {
            panic!("expected an endpoint")
        };
        assert_eq!(url.host_str(), Some("[fd00:ec2::254]"));
    }

    #[test]
    fn explicit_endpoint_wins_and_disabled_wins_over_all() {
        let got = endpoint_from_env(env(&[
            (ENV_ENDPOINT_MODE, "IPv6"),
            (ENV_ENDPOINT, "http://127.0.0.1:1234/"),
        ]))
        .expect("ok");
        assert_eq!(
            got,
            EndpointSetting::Endpoint(Url::parse("http://127.0.0.1:1234/").expect("url"))
        );
        let got = endpoint_from_env(env(&[(ENV_DISABLED, "TRUE"), (ENV_ENDPOINT, "http://x")]))
            .expect("ok");
        assert_eq!(got, EndpointSetting::Disabled);
    }

    #[test]
    fn bad_mode_and_bad_url_are_errors_naming_the_variable() {
        let err = endpoint_from_env(env(&[(ENV_ENDPOINT_MODE, "ipv5")])).expect_err("bad mode");
        assert!(err.to_string().contains(ENV_ENDPOINT_MODE), "{err}");
        let err = endpoint_from_env(env(&[(ENV_ENDPOINT, "not a url")])).expect_err("bad url");
        assert!(err.to_string().contains(ENV_ENDPOINT), "{err}");
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = IMDS_RETRY;
        assert_eq!(p.backoff(1), p.initial_backoff);
        assert_eq!(p.backoff(2), p.initial_backoff * 2);
        assert_eq!(p.backoff(3), p.initial_backoff * 4);
        assert_eq!(p.backoff(40), p.max_backoff);
    }

    #[test]
    fn token_lifetime_keeps_a_margin() {
        assert_eq!(
            token_lifetime(21_600),
            Duration::from_secs(21_600) - IMDS_TOKEN_REFRESH_MARGIN
        );
        assert_eq!(token_lifetime(10), Duration::from_secs(5));
    }

    #[test]
    fn identity_document_parses_the_fields_used() {
        let doc = br#"{"accountId":"123456789012","architecture":"x86_64","availabilityZone":"us-west-2b",
            "billingProducts":null,"imageId":"ami-0abcdef1234567890","instanceId":"i-0123456789abcdef0",
            "instanceType":"m5.large","kernelId":null,"pendingTime":"2026-01-01T00:00:00Z",
            "privateIp":"10.0.1.23","ramdiskId":null,"region":"us-west-2","version":"2017-09-30"}"#;
        let d = parse_identity_document(doc).expect("parses");
        assert_eq!(d.region, "us-west-2");
        assert_eq!(d.instance_type, "m5.large");
        assert_eq!(d.private_ip, Some(Ipv4Addr::new(10, 0, 1, 23)));
        let err = parse_identity_document(b"{}").expect_err("missing fields");
        assert!(err.to_string().contains(IDENTITY_DOCUMENT_PATH), "{err}");
    }

    #[test]
    fn lists_parse_and_bad_entries_name_the_path() {
        let v: Vec<Ipv4Net> = parse_lines("p", Some("10.0.0.0/16\n10.1.0.0/16\n")).expect("ok");
        assert_eq!(v.len(), 2);
        let none: Vec<Ipv6Addr> = parse_lines("p", None).expect("ok");
        assert!(none.is_empty());
        let err = parse_lines::<Ipv4Addr>("/x/local-ipv4s", Some("10.0.0.300")).expect_err("bad");
        assert!(err.to_string().contains("/x/local-ipv4s"), "{err}");
    }

    #[tokio::test]
    async fn disabled_client_fails_without_network() {
        let imds = Imds::build(None).expect("client");
        let err = imds.mac().await.expect_err("disabled");
        assert!(matches!(err, Error::Disabled { .. }), "{err}");
    }
}
