//! kubeadm-style token discovery (EKS Anywhere): read the `cluster-info` ConfigMap from
//! `kube-public` anonymously, check its detached JWS with the bootstrap token, pin the cluster
//! CA by the SHA-256 of its public key, then read `cluster-info` again over TLS verified with
//! that CA and require the same content.
//!
//! The protocol, as kubeadm and k8s.io/cluster-bootstrap define it:
//! - a bootstrap token is `<id>.<secret>`, `[a-z0-9]{6}.[a-z0-9]{16}`;
//! - the bootstrapsigner controller keeps one key `jws-kubeconfig-<id>` per valid token in
//!   `cluster-info`: a JWS (RFC 7515) in compact serialization with the payload part left
//!   empty (`header..signature`, Appendix F), HS256 with the token secret as the key and the
//!   token id as `kid`, over the value of the `kubeconfig` key; it removes the key when the
//!   token expires;
//! - a CA pin is `sha256:<hex>` of the DER SubjectPublicKeyInfo of the CA certificate.
//!
//! There is no trust-on-first-use: a missing pin is a configuration error, and a bad signature
//! or an unpinned CA is a refusal. [`verify`] (in `jws`) is pure; the reads are in `fetch`;
//! [`discover`] is the flow around them.

mod fetch;
mod jws;

use std::time::{Duration, Instant};

use crate::model::kubeadm::TOKEN_FIX;
use crate::model::{BootstrapToken, CaPin};
use crate::net::retry::NoAnswer;
use crate::net::{Attempt, RetryPolicy};

pub use fetch::parse_config_map;
pub use jws::{Verified, verify, verify_detached_jws};

/// Where the ConfigMap lives on every API server.
pub const CLUSTER_INFO_PATH: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";
/// The key that holds the kubeconfig with the server and the CA.
pub const KUBECONFIG_KEY: &str = "kubeconfig";
/// The prefix of the per-token signature keys.
pub const JWS_KEY_PREFIX: &str = "jws-kubeconfig-";
/// How long discovery waits for `cluster-info` and the token's signature (kubeadm's default).
pub const DEFAULT_DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Timeout of one request.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// First wait between attempts; doubled after each failure.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(250);
/// Longest wait between attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(8);

/// Why discovery refused or failed. Never contains the token secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTPS client for cluster-info discovery")]
    Client(#[source] crate::net::client::Error),
    /// No answer from the API server (connect, TLS handshake, timeout).
    #[error(
        "cannot read cluster-info from {url} after {attempts} attempt(s) in {waited:.0?}: the API server is unreachable; check spec.cluster.apiServerEndpoint and the network path to the control plane"
    )]
    Unreachable {
        /// The URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        waited: Duration,
        /// The last transport error, or the attempt's timeout.
        #[source]
        source: NoAnswer,
    },
    /// The API server answered with an error status.
    #[error(
        "GET {url} answered HTTP {status} after {attempts} attempt(s) in {waited:.0?}: {message}{hint}"
    )]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The Status object's message (or the body's start).
        message: String,
        /// What that status means here.
        hint: &'static str,
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        waited: Duration,
    },
    /// The answer is not a ConfigMap.
    #[error(
        "GET {url} did not return a ConfigMap ({reason}); is spec.cluster.apiServerEndpoint a Kubernetes API server?"
    )]
    NotConfigMap {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// `cluster-info` has no kubeconfig.
    #[error(
        "the cluster-info ConfigMap in kube-public at {endpoint} has no `kubeconfig` key: this API server is not set up for bootstrap-token discovery (kubeadm creates it with `kubeadm init phase bootstrap-token`)"
    )]
    NoKubeconfig {
        /// The API server.
        endpoint: String,
    },
    /// No signature for the token id: unknown or expired token.
    #[error(
        "the cluster-info ConfigMap in kube-public at {endpoint} has no signature for token id \"{token_id}\" (no `jws-kubeconfig-{token_id}` key) after waiting {waited:.0?}: the token is unknown to this cluster or has expired (the bootstrapsigner controller removes the signatures of expired tokens); {TOKEN_FIX}"
    )]
    NoSignature {
        /// The API server.
        endpoint: String,
        /// The token id.
        token_id: String,
        /// How long discovery waited for the signature to appear.
        waited: Duration,
    },
    /// The JWS does not verify.
    #[error(
        "refusing to trust the API server at {endpoint}: the signature `jws-kubeconfig-{token_id}` in cluster-info does not verify ({reason}); either the secret of token \"{token_id}\" in spec.kubeadm.bootstrapToken is wrong, or cluster-info was altered by someone without the token. Check the token with `kubeadm token list` on a control-plane node, or {TOKEN_FIX}"
    )]
    BadSignature {
        /// The API server.
        endpoint: String,
        /// The token id.
        token_id: String,
        /// What failed.
        reason: String,
    },
    /// The signed kubeconfig cannot be read.
    #[error(
        "the kubeconfig in cluster-info at {endpoint} (correctly signed) is malformed: {reason}"
    )]
    BadKubeconfig {
        /// The API server.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
    /// The CA matches no pin.
    #[error(
        "refusing to trust the API server at {endpoint}: the cluster CA in cluster-info has public key {found}, which matches none of spec.kubeadm.caCertHashes ({pinned}); compute the right pin on a control-plane node with `openssl x509 -in /etc/kubernetes/pki/ca.crt -noout -pubkey | openssl pkey -pubin -outform der | sha256sum` (or `kubeadm token create --print-join-command`) and never copy it from this message"
    )]
    PinMismatch {
        /// The API server.
        endpoint: String,
        /// The pins of the certificates found.
        found: String,
        /// The configured pins.
        pinned: String,
    },
    /// The second read, TLS verified with the pinned CA, failed its TLS check.
    #[error(
        "refusing to trust the API server at {url}: its TLS certificate does not verify against the pinned cluster CA from cluster-info; the server that answered is not the cluster's API server"
    )]
    PinnedTls {
        /// The URL.
        url: String,
        /// The TLS error.
        #[source]
        source: reqwest::Error,
    },
    /// The CA-verified read returned other content than the first.
    #[error(
        "refusing to trust the API server at {endpoint}: the kubeconfig in cluster-info read over TLS verified with the pinned CA differs from the one read first"
    )]
    Changed {
        /// The API server.
        endpoint: String,
    },
}

/// Waits and deadlines of discovery; production values are the named constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Total time to wait for `cluster-info` and the token's signature.
    pub timeout: Duration,
    /// TCP connect timeout of one request.
    pub connect: Duration,
    /// Timeout of one request.
    pub attempt: Duration,
    /// First wait between attempts.
    pub backoff_initial: Duration,
    /// Longest wait between attempts.
    pub backoff_max: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: DEFAULT_DISCOVERY_TIMEOUT,
            connect: crate::net::client::CONNECT_TIMEOUT,
            attempt: ATTEMPT_TIMEOUT,
            backoff_initial: BACKOFF_INITIAL,
            backoff_max: BACKOFF_MAX,
        }
    }
}

impl Limits {
    /// How the reads of one phase are retried, with `total` to spend: as many attempts as
    /// fit, each bounded by `attempt`.
    fn policy(&self, total: Duration) -> RetryPolicy {
        RetryPolicy {
            attempt_timeout: self.attempt,
            ..RetryPolicy::until(total, self.backoff_initial, self.backoff_max)
        }
    }
}

/// Logs a read that will be retried (while time is left).
fn logged<T>(phase: &'static str, attempt: u32, outcome: Attempt<T, Error>) -> Attempt<T, Error> {
    if let Attempt::Retry(e) = &outcome {
        tracing::warn!(attempt, error = %e, "cluster-info discovery ({phase}): attempt failed");
    }
    outcome
}

/// The first read's data, checked: verified, or not signed for the token yet (worth another
/// read: the bootstrapsigner adds the signature shortly after the token is created), or
/// refused.
fn signed(
    data: &std::collections::BTreeMap<String, String>,
    token: &BootstrapToken,
    pins: &[CaPin],
    endpoint: &str,
    started: Instant,
) -> Attempt<Verified, Error> {
    match verify(data, token, pins, endpoint) {
        Ok(v) => Attempt::Done(v),
        Err(Error::NoSignature { .. }) => Attempt::Retry(Error::NoSignature {
            endpoint: endpoint.to_owned(),
            token_id: token.id().to_owned(),
            waited: started.elapsed(),
        }),
        Err(e) => Attempt::Fail(e),
    }
}

/// Discovery through `cluster-info` at `endpoint` (an https:// URL): the unverified read,
/// retried with backoff until the token's signature is there or `limits.timeout` passes;
/// [`verify`]; then the read over TLS verified with the pinned CA, which must return the same
/// kubeconfig.
pub async fn discover(
    endpoint: &str,
    token: &BootstrapToken,
    pins: &[CaPin],
    limits: &Limits,
) -> Result<Verified, Error> {
    let url = format!("{}{CLUSTER_INFO_PATH}", endpoint.trim_end_matches('/'));
    let started = Instant::now();
    let unverified = fetch::client(None, limits)?;
    let (verified, first_reads) = limits
        .policy(limits.timeout)
        .run(
            |n| {
                let (client, url) = (&unverified, &url);
                async move {
                    let outcome = fetch::read(client, url, false, n, started)
                        .await
                        .and_then(|data| signed(&data, token, pins, endpoint, started));
                    logged("unverified TLS", n, outcome)
                }
            },
            |n, bound| fetch::timed_out(&url, n, started, bound),
        )
        .await;
    let verified = verified?;
    tracing::info!(endpoint, token_id = %token.id(), pin = %verified.matched_pin, server = %verified.server, "cluster-info signature and CA pin verified; reading it again over verified TLS");
    let pinned = fetch::client(Some(&verified.ca_pem), limits)?;
    // The verified read gets one whole attempt even when the wait for the signature took
    // all the time.
    let left = limits
        .timeout
        .saturating_sub(started.elapsed())
        .max(limits.attempt);
    let (same, _) = limits
        .policy(left)
        .run(
            |n| {
                let (client, url, kubeconfig) = (&pinned, &url, &verified.kubeconfig);
                async move {
                    let outcome = fetch::read(client, url, true, first_reads + n, started)
                        .await
                        .and_then(|data| {
                            if data.get(KUBECONFIG_KEY) == Some(kubeconfig) {
                                Attempt::Done(())
                            } else {
                                Attempt::Fail(Error::Changed {
                                    endpoint: endpoint.to_owned(),
                                })
                            }
                        });
                    logged("verified TLS", first_reads + n, outcome)
                }
            },
            |n, bound| fetch::timed_out(&url, first_reads + n, started, bound),
        )
        .await;
    same.map(|()| verified)
}
