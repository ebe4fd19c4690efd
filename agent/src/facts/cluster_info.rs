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
//! or an unpinned CA is a refusal. [`verify`] is pure; [`discover`] is the IO around it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::Mac as _;

use crate::model::kubeadm::TOKEN_FIX;
use crate::model::{BootstrapToken, CaPin};

/// Where the ConfigMap lives on every API server.
pub const CLUSTER_INFO_PATH: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";
/// The key that holds the kubeconfig with the server and the CA.
pub const KUBECONFIG_KEY: &str = "kubeconfig";
/// The prefix of the per-token signature keys.
pub const JWS_KEY_PREFIX: &str = "jws-kubeconfig-";
/// How long discovery waits for `cluster-info` and the token's signature (kubeadm's default).
pub const DEFAULT_DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// TCP connect timeout of one request.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Timeout of one request.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// First wait between attempts; doubled after each failure.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(250);
/// Longest wait between attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// The largest `cluster-info` response read (a ConfigMap is at most 1 MiB).
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// What discovery established: the API server and its CA, both signed by the token holder
/// and the CA pinned.
#[derive(Clone, PartialEq, Eq)]
pub struct Verified {
    /// The `server` of the signed kubeconfig: what kubelet talks to.
    pub server: String,
    /// The CA certificates (PEM) from the signed kubeconfig.
    pub ca_pem: Vec<u8>,
    /// The pin that matched.
    pub matched_pin: CaPin,
    /// The signed kubeconfig text (compared with the second, CA-verified read).
    pub kubeconfig: String,
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("server", &self.server)
            .field("matched_pin", &self.matched_pin)
            .finish_non_exhaustive()
    }
}

/// Why discovery refused or failed. Never contains the token secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTPS client for cluster-info discovery: {reason}")]
    Client {
        /// What failed.
        reason: String,
    },
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
        /// The last transport error.
        #[source]
        source: reqwest::Error,
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

/// Checks the detached JWS `jws` (`header..signature`) over `payload` with the token:
/// HS256 keyed with the token secret, `kid` = token id. Constant-time comparison.
pub fn verify_detached_jws(
    jws: &str,
    payload: &[u8],
    token: &BootstrapToken,
) -> Result<(), String> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = jws.trim().split('.').collect();
    let [header_b64, body, signature_b64] = parts.as_slice() else {
        return Err(format!(
            "expected the compact form `header..signature`, found {} part(s)",
            parts.len()
        ));
    };
    if !body.is_empty() {
        return Err("the payload part is not empty; expected a detached signature".into());
    }
    let header_bytes = b64
        .decode(header_b64)
        .map_err(|e| format!("the header is not base64url ({e})"))?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header_bytes)
        .map_err(|e| format!("the header is not a JSON object ({e})"))?;
    match header.get("alg").and_then(|v| v.as_str()) {
        Some("HS256") => {}
        Some(other) => return Err(format!("algorithm {other:?}, expected HS256")),
        None => return Err("the header has no algorithm".into()),
    }
    match header.get("kid").and_then(|v| v.as_str()) {
        Some(kid) if kid == token.id() => {}
        Some(kid) => {
            return Err(format!(
                "it was made for token id {kid:?}, not \"{}\"",
                token.id()
            ));
        }
        None => return Err("the header has no key id (kid)".into()),
    }
    if header.contains_key("crit") || header.contains_key("b64") {
        return Err(
            "the header has critical or unencoded-payload parameters this protocol never uses"
                .into(),
        );
    }
    let signature = b64
        .decode(signature_b64)
        .map_err(|e| format!("the signature is not base64url ({e})"))?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(token.secret_key())
        .map_err(|e| format!("HMAC key ({e})"))?;
    // JWS signing input: ASCII(BASE64URL(header) || '.' || BASE64URL(payload)).
    mac.update(header_b64.as_bytes());
    mac.update(b".");
    mac.update(b64.encode(payload).as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| "the HMAC-SHA256 does not match".to_owned())
}

#[derive(serde::Deserialize)]
struct KubeconfigDoc {
    #[serde(default)]
    clusters: Option<Vec<NamedCluster>>,
}

#[derive(serde::Deserialize)]
struct NamedCluster {
    cluster: ClusterBody,
}

#[derive(serde::Deserialize)]
struct ClusterBody {
    #[serde(default)]
    server: Option<String>,
    #[serde(rename = "certificate-authority-data", default)]
    certificate_authority_data: Option<String>,
}

/// Verifies a `cluster-info` ConfigMap's data: the token's signature over `kubeconfig`, then
/// the CA in that kubeconfig against `pins` (any certificate of the bundle may match, as in
/// kubeadm). `endpoint` is for messages only.
pub fn verify(
    data: &BTreeMap<String, String>,
    token: &BootstrapToken,
    pins: &[CaPin],
    endpoint: &str,
) -> Result<Verified, Error> {
    let kubeconfig = data
        .get(KUBECONFIG_KEY)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Error::NoKubeconfig {
            endpoint: endpoint.to_owned(),
        })?;
    let key = format!("{JWS_KEY_PREFIX}{}", token.id());
    let jws = data
        .get(&key)
        .filter(|j| !j.is_empty())
        .ok_or_else(|| Error::NoSignature {
            endpoint: endpoint.to_owned(),
            token_id: token.id().to_owned(),
            waited: Duration::ZERO,
        })?;
    verify_detached_jws(jws, kubeconfig.as_bytes(), token).map_err(|reason| {
        Error::BadSignature {
            endpoint: endpoint.to_owned(),
            token_id: token.id().to_owned(),
            reason,
        }
    })?;
    let bad = |reason: String| Error::BadKubeconfig {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let doc: KubeconfigDoc =
        serde_yaml_ng::from_str(kubeconfig).map_err(|e| bad(format!("not YAML ({e})")))?;
    let clusters = doc.clusters.unwrap_or_default();
    let [named] = clusters.as_slice() else {
        return Err(bad(format!(
            "expected exactly one cluster, found {}",
            clusters.len()
        )));
    };
    let server = named
        .cluster
        .server
        .clone()
        .filter(|s| s.starts_with("https://"))
        .ok_or_else(|| bad("the cluster has no https:// server".into()))?;
    let ca_b64 = named
        .cluster
        .certificate_authority_data
        .as_deref()
        .ok_or_else(|| bad("the cluster has no certificate-authority-data".into()))?;
    let compact: String = ca_b64
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let ca_pem = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| bad(format!("certificate-authority-data is not base64 ({e})")))?;
    let ders =
        pem_certificates(&ca_pem).map_err(|e| bad(format!("certificate-authority-data: {e}")))?;
    let mut found = Vec::new();
    for der in &ders {
        let pin = CaPin::of_certificate(der)
            .map_err(|e| bad(format!("certificate-authority-data: {e}")))?;
        if pins.contains(&pin) {
            return Ok(Verified {
                server,
                ca_pem,
                matched_pin: pin,
                kubeconfig: kubeconfig.clone(),
            });
        }
        found.push(pin.to_string());
    }
    Err(Error::PinMismatch {
        endpoint: endpoint.to_owned(),
        found: found.join(", "),
        pinned: pins
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The DER certificates of a PEM bundle (at least one).
fn pem_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    use rustls_pki_types::pem::PemObject as _;
    let mut out = Vec::new();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
        out.push(cert.map_err(|e| format!("not PEM ({e})"))?.to_vec());
    }
    if out.is_empty() {
        return Err("no PEM CERTIFICATE block".into());
    }
    Ok(out)
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
            connect: CONNECT_TIMEOUT,
            attempt: ATTEMPT_TIMEOUT,
            backoff_initial: BACKOFF_INITIAL,
            backoff_max: BACKOFF_MAX,
        }
    }
}

/// Accepts any server certificate but still checks the handshake signatures: the first,
/// unauthenticated read of `cluster-info`, whose content is then authenticated by the JWS and
/// the CA pin (and re-read over verified TLS).
#[derive(Debug)]
struct UnverifiedServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for UnverifiedServer {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The HTTPS client: with `ca_pem`, only that CA is trusted; without, no certificate is
/// checked (the first read; its content is authenticated by [`verify`]).
fn client(ca_pem: Option<&[u8]>, limits: &Limits) -> Result<reqwest::Client, Error> {
    let fail = |reason: String| Error::Client { reason };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?;
    let tls = match ca_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for der in pem_certificates(pem).map_err(fail)? {
                roots
                    .add(rustls_pki_types::CertificateDer::from(der))
                    .map_err(|e| fail(format!("the pinned CA is not usable as a root ({e})")))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        // TLS-BYPASS-REVIEWED: kubeadm's token discovery. This first read cannot know the CA
        // yet; what it returns is trusted only after the JWS (HMAC with the token secret) and
        // the CA pin verify, and the second read then requires a certificate from that CA.
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(UnverifiedServer(provider)))
            .with_no_client_auth(),
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(limits.connect)
        .timeout(limits.attempt)
        .build()
        .map_err(|e| fail(e.to_string()))
}

/// One read of `cluster-info`.
enum Attempt {
    /// The ConfigMap's data.
    Data(BTreeMap<String, String>),
    /// Worth another try (transport error, 404 before kubeadm created it, 5xx, 429, ...).
    Retry(Error),
    /// Final.
    Fail(Error),
}

fn is_tls_verification_error(e: &reqwest::Error) -> bool {
    /// rustls's error, possibly inside (nested) io::Error wrappers, as the TLS stream reports it.
    fn rustls_error<'a>(mut e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
        loop {
            if let Some(tls) = e.downcast_ref::<rustls::Error>() {
                return Some(tls);
            }
            e = e.downcast_ref::<std::io::Error>()?.get_ref()?;
        }
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(tls) = rustls_error(c) {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            );
        }
        cause = c.source();
    }
    false
}

async fn read_once(
    client: &reqwest::Client,
    url: &str,
    pinned: bool,
    attempts: u32,
    waited: Duration,
) -> Attempt {
    let response = match client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
    {
        Ok(r) => r,
        Err(source) if pinned && is_tls_verification_error(&source) => {
            return Attempt::Fail(Error::PinnedTls {
                url: url.to_owned(),
                source,
            });
        }
        Err(source) => {
            return Attempt::Retry(Error::Unreachable {
                url: url.to_owned(),
                attempts,
                waited,
                source,
            });
        }
    };
    let status = response.status();
    let body = match read_body(response).await {
        Ok(b) => b,
        Err(source) => {
            return Attempt::Retry(Error::Unreachable {
                url: url.to_owned(),
                attempts,
                waited,
                source,
            });
        }
    };
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
        let (hint, retry) = match status.as_u16() {
            404 => (
                "; the cluster-info ConfigMap does not exist (yet): this API server is not set up for bootstrap-token discovery, or kubeadm has not finished `kubeadm init`",
                true,
            ),
            401 | 403 => (
                "; anonymous reads of cluster-info are refused: kubeadm grants them with the Role kubeadm:bootstrap-signer-clusterinfo in kube-public (and needs anonymous auth enabled on the API server)",
                true,
            ),
            429 | 500..=599 => ("; the API server is overloaded or starting", true),
            _ => ("", false),
        };
        let error = Error::Status {
            url: url.to_owned(),
            status: status.as_u16(),
            message,
            hint,
            attempts,
            waited,
        };
        return if retry {
            Attempt::Retry(error)
        } else {
            Attempt::Fail(error)
        };
    }
    match parse_config_map(&body) {
        Ok(data) => Attempt::Data(data),
        Err(reason) => Attempt::Fail(Error::NotConfigMap {
            url: url.to_owned(),
            reason,
        }),
    }
}

async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `data` of a `v1` `ConfigMap` JSON object.
pub fn parse_config_map(body: &[u8]) -> Result<BTreeMap<String, String>, String> {
    #[derive(serde::Deserialize)]
    struct ConfigMap {
        kind: String,
        #[serde(default)]
        data: BTreeMap<String, String>,
    }
    let cm: ConfigMap =
        serde_json::from_slice(body).map_err(|e| format!("the body is not a ConfigMap ({e})"))?;
    if cm.kind != "ConfigMap" {
        return Err(format!("kind is {:?}", cm.kind));
    }
    Ok(cm.data)
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
    let insecure = client(None, limits)?;
    let mut attempts = 0u32;
    let mut backoff = limits.backoff_initial;
    let verified = loop {
        attempts += 1;
        let outcome = match read_once(&insecure, &url, false, attempts, started.elapsed()).await {
            Attempt::Data(data) => match verify(&data, token, pins, endpoint) {
                Ok(v) => break v,
                // The bootstrapsigner adds the signature shortly after the token is created.
                Err(Error::NoSignature { .. }) => Error::NoSignature {
                    endpoint: endpoint.to_owned(),
                    token_id: token.id().to_owned(),
                    waited: started.elapsed(),
                },
                Err(e) => return Err(e),
            },
            Attempt::Retry(e) => e,
            Attempt::Fail(e) => return Err(e),
        };
        if started.elapsed() + backoff > limits.timeout {
            return Err(outcome);
        }
        tracing::warn!(attempt = attempts, retry_in = ?backoff, error = %outcome, "cluster-info discovery: retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(limits.backoff_max);
    };
    tracing::info!(endpoint, token_id = %token.id(), pin = %verified.matched_pin, server = %verified.server, "cluster-info signature and CA pin verified; reading it again over verified TLS");
    let pinned = client(Some(&verified.ca_pem), limits)?;
    let mut backoff = limits.backoff_initial;
    loop {
        attempts += 1;
        match read_once(&pinned, &url, true, attempts, started.elapsed()).await {
            Attempt::Data(data) => {
                return if data.get(KUBECONFIG_KEY) == Some(&verified.kubeconfig) {
                    Ok(verified)
                } else {
                    Err(Error::Changed {
                        endpoint: endpoint.to_owned(),
                    })
                };
            }
            Attempt::Fail(e) => return Err(e),
            Attempt::Retry(e) => {
                if started.elapsed() + backoff > limits.timeout {
                    return Err(e);
                }
                tracing::warn!(attempt = attempts, retry_in = ?backoff, error = %e, "cluster-info discovery (verified TLS): retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(limits.backoff_max);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef";

    fn token() -> BootstrapToken {
        BootstrapToken::parse(&format!("abcdef.{SECRET}")).unwrap()
    }

    fn sign(header: &str, payload: &[u8], key: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let h = b64.encode(header);
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(format!("{h}.{}", b64.encode(payload)).as_bytes());
        format!("{h}..{}", b64.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn tokens_parse_and_never_show_the_secret() {
        let t = token();
        assert_eq!(t.id(), "abcdef");
        assert!(!format!("{t:?}").contains(SECRET));
        for bad in [
            "",
            "abcdef",
            "abcdef.0123456789abcde",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdefg",
            "abcdef:0123456789abcdef",
            "abcdef.0123456789abcdef.x",
        ] {
            let err = BootstrapToken::parse(bad).unwrap_err().to_string();
            assert!(bad.is_empty() || !err.contains(bad), "{err}");
        }
    }

    #[test]
    fn pins_parse() {
        let hex = "a".repeat(64);
        let pin = CaPin::parse(&format!("sha256:{hex}")).unwrap();
        assert_eq!(pin.to_string(), format!("sha256:{hex}"));
        assert_eq!(
            CaPin::parse(&format!("SHA256:{}", "A".repeat(64))).unwrap(),
            pin
        );
        for bad in [
            hex.clone(),
            format!("sha1:{hex}"),
            "sha256:abc".into(),
            format!("sha256:{}", "g".repeat(64)),
        ] {
            assert!(CaPin::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn jws_checks_algorithm_key_id_and_mac() {
        let payload = b"apiVersion: v1\n";
        let good = sign(
            r#"{"alg":"HS256","kid":"abcdef"}"#,
            payload,
            SECRET.as_bytes(),
        );
        verify_detached_jws(&good, payload, &token()).unwrap();
        // kubeadm pads the key with zeros to 32 bytes; HMAC pads to its block size anyway.
        let mut padded = SECRET.as_bytes().to_vec();
        padded.resize(32, 0);
        let kubeadm_style = sign(r#"{"alg":"HS256","kid":"abcdef"}"#, payload, &padded);
        assert_eq!(kubeadm_style, good);
        assert!(verify_detached_jws(&good, b"apiVersion: v2\n", &token()).is_err());
        let wrong_kid = sign(
            r#"{"alg":"HS256","kid":"zzzzzz"}"#,
            payload,
            SECRET.as_bytes(),
        );
        assert!(
            verify_detached_jws(&wrong_kid, payload, &token())
                .unwrap_err()
                .contains("zzzzzz")
        );
        let none = sign(
            r#"{"alg":"none","kid":"abcdef"}"#,
            payload,
            SECRET.as_bytes(),
        );
        assert!(
            verify_detached_jws(&none, payload, &token())
                .unwrap_err()
                .contains("HS256")
        );
        let attached = good.replacen("..", ".eA.", 1);
        assert!(verify_detached_jws(&attached, payload, &token()).is_err());
        let other_key = sign(
            r#"{"alg":"HS256","kid":"abcdef"}"#,
            payload,
            b"fedcba9876543210",
        );
        assert!(
            verify_detached_jws(&other_key, payload, &token())
                .unwrap_err()
                .contains("HMAC")
        );
    }
}
