//! The one HTTP client builder for the agent's own calls: which CA certificates are trusted,
//! whether and which proxy is used (with `NO_PROXY`), connect and request timeouts, and the
//! user agent. TLS is rustls with aws-lc-rs, as everywhere in the agent.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::ProxySettings;

/// Default TCP connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The user agent of every request: `eks-node-agent/<version>`.
pub const USER_AGENT: &str = concat!("eks-node-agent/", env!("CARGO_PKG_VERSION"));

/// Which servers a client trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The system's CA certificates.
    System,
    /// The system's CA certificates and those of a PEM bundle (a mirror's private CA).
    SystemAnd(PathBuf),
    /// Only the certificates of a PEM bundle (`AWS_CA_BUNDLE`, as the AWS CLI and SDKs use it).
    Only(PathBuf),
    /// Only these PEM certificates (a cluster's CA).
    Pem(Vec<u8>),
    /// No CA at all: the client speaks plain HTTP only (IMDS, loopback endpoints), and loading
    /// no store keeps the daemon's memory small.
    None,
    /// Any server certificate (handshake signatures are still checked). Only for kubeadm's
    /// token discovery, whose first read is authenticated afterwards by the token's signature
    /// and the CA pin.
    UnverifiedForTokenDiscovery,
}

/// Whether a client uses a proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proxy {
    /// Never (IMDS, loopback endpoints).
    Never,
    /// The process environment's `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`.
    FromEnvironment,
    /// These settings.
    Settings(ProxySettings),
}

/// Why a client could not be built. Each names what was wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A CA bundle that cannot be read or holds no usable certificate.
    #[error("CA bundle {path}: {reason}")]
    CaBundle {
        /// The bundle.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// CA certificates given inline that are not usable.
    #[error("CA certificates: {reason}")]
    Certificates {
        /// What is wrong.
        reason: String,
    },
    /// A proxy URL that does not parse.
    #[error("proxy {url:?} is not a valid URL")]
    Proxy {
        /// The setting.
        url: String,
        /// The parser's error.
        #[source]
        source: reqwest::Error,
    },
    /// rustls refused the settings.
    #[error("cannot set up TLS")]
    Tls(#[source] rustls::Error),
    /// reqwest refused the settings.
    #[error("cannot build the HTTP client")]
    Build(#[source] reqwest::Error),
}

impl crate::exit::Classify for Error {
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            // A CA bundle, certificates or a proxy setting someone gave: fix the input.
            Error::CaBundle { .. } | Error::Certificates { .. } | Error::Proxy { .. } => {
                crate::exit::Code::BadInput
            }
            Error::Tls(_) | Error::Build(_) => crate::exit::Code::Failure,
        }
    }
}

/// Builds a [`reqwest::Client`]. Defaults: the system's CAs, the process environment's proxy,
/// [`CONNECT_TIMEOUT`], no request timeout (bound each attempt with the retry policy or
/// [`ClientBuilder::timeout`]), [`USER_AGENT`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    trust: Trust,
    proxy: Proxy,
    connect_timeout: Duration,
    timeout: Option<Duration>,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder::new()
    }
}

impl ClientBuilder {
    /// The defaults.
    pub fn new() -> ClientBuilder {
        ClientBuilder {
            trust: Trust::System,
            proxy: Proxy::FromEnvironment,
            connect_timeout: CONNECT_TIMEOUT,
            timeout: None,
        }
    }

    /// Which servers to trust.
    pub fn trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self
    }

    /// Whether and which proxy to use.
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = proxy;
        self
    }

    /// The TCP connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// A bound on every request, body included.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The client.
    pub fn build(self) -> Result<reqwest::Client, Error> {
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls(tls_config(&self.trust)?)
            .connect_timeout(self.connect_timeout)
            .user_agent(USER_AGENT);
        if let Some(timeout) = self.timeout {
            builder = builder.timeout(timeout);
        }
        builder = match &self.proxy {
            Proxy::Never => builder.no_proxy(),
            Proxy::FromEnvironment => with_proxy(builder, &ProxySettings::from_process_env())?,
            Proxy::Settings(settings) => with_proxy(builder, settings)?,
        };
        builder.build().map_err(Error::Build)
    }
}

/// The proxy settings applied to a builder (instead of reqwest's own reading of the
/// environment, so that the NodeConfig's settings work the same way).
fn with_proxy(
    builder: reqwest::ClientBuilder,
    settings: &ProxySettings,
) -> Result<reqwest::ClientBuilder, Error> {
    let mut builder = builder.no_proxy();
    let no_proxy = settings
        .no_proxy
        .as_deref()
        .and_then(reqwest::NoProxy::from_string);
    let proxies = [
        (settings.https.as_deref(), true),
        (settings.http.as_deref(), false),
    ];
    for (url, https) in proxies {
        let Some(url) = url else { continue };
        let proxy = if https {
            reqwest::Proxy::https(url)
        } else {
            reqwest::Proxy::http(url)
        }
        .map_err(|source| Error::Proxy {
            url: url.to_owned(),
            source,
        })?
        .no_proxy(no_proxy.clone());
        builder = builder.proxy(proxy);
    }
    Ok(builder)
}

/// The rustls configuration for a trust setting.
fn tls_config(trust: &Trust) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(Error::Tls)?;
    let roots = match trust {
        // kubeadm's token discovery only (facts::cluster_info): its first read cannot know
        // the CA yet; what it returns is trusted only after the JWS (HMAC with the token
        // secret) and the CA pin verify, and the second read then requires a certificate
        // from that CA.
        Trust::UnverifiedForTokenDiscovery => {
            // TLS-BYPASS-REVIEWED: the one reviewed exception, explained just above.
            return Ok(builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(UnverifiedServer(provider)))
                .with_no_client_auth());
        }
        Trust::None => rustls::RootCertStore::empty(),
        Trust::System => system_roots(),
        Trust::SystemAnd(path) => {
            let mut roots = system_roots();
            add_bundle(&mut roots, path)?;
            roots
        }
        Trust::Only(path) => {
            let mut roots = rustls::RootCertStore::empty();
            add_bundle(&mut roots, path)?;
            roots
        }
        Trust::Pem(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            let bad = |reason: String| Error::Certificates { reason };
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(format!("not PEM ({e})")))?;
            if certs.is_empty() {
                return Err(bad("no PEM certificate".into()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| bad(format!("not usable as a root ({e})")))?;
            }
            roots
        }
    };
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// The system's CA certificates (unreadable ones are skipped, as every TLS client does).
fn system_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    roots
}

/// Adds every certificate of a PEM bundle; an unreadable bundle or one without a usable
/// certificate is an error naming the file.
fn add_bundle(roots: &mut rustls::RootCertStore, path: &std::path::Path) -> Result<(), Error> {
    let bad = |reason: String| Error::CaBundle {
        path: path.to_owned(),
        reason,
    };
    let pem = crate::model::bounded::read_capped(path, crate::model::bounded::MAX_PEM_BYTES)
        .map_err(|e| bad(format!("cannot read PEM certificates: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("cannot read PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in the file".into()));
    }
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
    }
    Ok(())
}

/// Accepts any server certificate but still checks the handshake signatures (see
/// [`Trust::UnverifiedForTokenDiscovery`]).
#[derive(Debug)]
struct UnverifiedServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for UnverifiedServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
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
        cert: &CertificateDer<'_>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_bundles_and_proxies_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = ClientBuilder::new()
            .trust(Trust::Only(empty.clone()))
            .build()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("empty.pem") && err.contains("no PEM certificate"),
            "{err}"
        );
        let err = ClientBuilder::new()
            .trust(Trust::Pem(b"garbage".to_vec()))
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
        let err = ClientBuilder::new()
            .trust(Trust::None)
            .proxy(Proxy::Settings(ProxySettings {
                https: Some("http://[::1".into()),
                ..ProxySettings::default()
            }))
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("proxy"), "{err}");
    }

    #[test]
    fn every_trust_setting_builds() {
        for trust in [
            Trust::System,
            Trust::None,
            Trust::UnverifiedForTokenDiscovery,
        ] {
            ClientBuilder::new()
                .trust(trust)
                .proxy(Proxy::Never)
                .timeout(Duration::from_secs(1))
                .build()
                .unwrap();
        }
    }
}
