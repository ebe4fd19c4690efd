//! An emulator of IAM Roles Anywhere `CreateSession`, and a test PKI to go with it.
//!
//! No Roles Anywhere endpoint can run here, so this follows the published protocol: HTTPS
//! (rustls, its own test CA, loopback only), `POST /sessions?profileArn&roleArn&trustAnchorArn`,
//! the end-entity certificate in `X-Amz-X509` and intermediates in `X-Amz-X509-Chain` (base64
//! DER, comma-separated), and an `Authorization` header of the form
//! `AWS4-X509-{RSA,ECDSA}-SHA256 Credential=<serial>/<date>/<region>/rolesanywhere/aws4_request,
//! SignedHeaders=..., Signature=<hex>`. The emulator rebuilds the canonical request from what
//! it received, verifies the signature with the certificate's public key (aws-lc-rs, not the
//! RustCrypto code the agent signs with), validates the chain to the trust anchor (webpki),
//! and answers 201 with `credentialSet[0].credentials`, or the service's REST-JSON errors:
//! 403 `AccessDeniedException`, 404 `ResourceNotFoundException`, 400 `ValidationException`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_cert::der::Decode;

/// Accepted difference between `X-Amz-Date` and the emulator's clock.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
const SERVICE: &str = "rolesanywhere";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

/// Key types the test PKI issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA 2048.
    Rsa,
    /// ECDSA P-256.
    P256,
    /// ECDSA P-384.
    P384,
}

fn new_key(kind: KeyKind) -> KeyPair {
    match kind {
        KeyKind::Rsa => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        }
        KeyKind::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyKind::P384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
    }
    .expect("generate a test key")
}

/// A CA (root or intermediate) of the test PKI.
pub struct Ca {
    /// Its certificate.
    pub cert: rcgen::Certificate,
    /// Its key.
    pub key: KeyPair,
}

/// A root CA (the trust anchor) and an intermediate CA below it.
#[derive(Debug)]
pub struct TestPki {
    /// The trust anchor.
    pub root: Ca,
    /// Issues the end-entity certificates.
    pub intermediate: Ca,
}

/// An end-entity certificate with its key, as PEM text.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The private key (PKCS#8 PEM).
    pub key_pem: String,
    /// The intermediate CA certificate (PEM).
    pub chain_pem: String,
    /// The serial number in decimal.
    pub serial: String,
}

impl Leaf {
    /// Writes `cert.pem`, `key.pem` and `chain.pem` into `dir` and returns their paths.
    pub fn write(&self, dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let paths = (
            dir.join("cert.pem"),
            dir.join("key.pem"),
            dir.join("chain.pem"),
        );
        std::fs::write(&paths.0, &self.cert_pem).expect("write cert");
        std::fs::write(&paths.1, &self.key_pem).expect("write key");
        std::fs::write(&paths.2, &self.chain_pem).expect("write chain");
        paths
    }
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
    p.not_after = OffsetDateTime::now_utc() + time::Duration::days(30);
    p
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

impl TestPki {
    /// A new root (`kind` key) and intermediate (P-256 key).
    pub fn new(name: &str, kind: KeyKind) -> TestPki {
        let root_key = new_key(kind);
        let root_cert = ca_params(&format!("{name} root CA"))
            .self_signed(&root_key)
            .expect("root CA");
        let int_key = new_key(KeyKind::P256);
        let int_cert = ca_params(&format!("{name} intermediate CA"))
            .signed_by(&int_key, &root_cert, &root_key)
            .expect("intermediate CA");
        TestPki {
            root: Ca {
                cert: root_cert,
                key: root_key,
            },
            intermediate: Ca {
                cert: int_cert,
                key: int_key,
            },
        }
    }

    /// The trust anchor certificate in DER.
    pub fn root_der(&self) -> Vec<u8> {
        self.root.cert.der().to_vec()
    }

    /// Issues an end-entity certificate valid from `not_before` to `not_after`.
    pub fn issue(
        &self,
        cn: &str,
        kind: KeyKind,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Leaf {
        let key = new_key(kind);
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.not_before = not_before;
        p.not_after = not_after;
        // A 16-byte serial with the top bit clear, so it is positive and well past u64.
        let mut serial: [u8; 16] = rand_bytes();
        serial[0] = (serial[0] & 0x7f) | 0x10;
        p.serial_number = Some(SerialNumber::from_slice(&serial));
        let cert = p
            .signed_by(&key, &self.intermediate.cert, &self.intermediate.key)
            .expect("leaf certificate");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            chain_pem: self.intermediate.cert.pem(),
            serial: decimal(&serial),
        }
    }

    /// Issues a certificate valid now for 30 days.
    pub fn issue_valid(&self, cn: &str, kind: KeyKind) -> Leaf {
        let now = OffsetDateTime::now_utc();
        self.issue(
            cn,
            kind,
            now - time::Duration::hours(1),
            now + time::Duration::days(30),
        )
    }
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    aws_lc_rs::rand::fill(&mut out).expect("random bytes");
    out
}

/// A big-endian unsigned integer in decimal (the emulator's own, for the credential scope).
pub fn decimal(bytes: &[u8]) -> String {
    let mut n: Vec<u32> = bytes.iter().map(|&b| u32::from(b)).collect();
    let mut digits = Vec::new();
    while n.iter().any(|&d| d != 0) {
        let mut rem = 0u32;
        for d in n.iter_mut() {
            let cur = rem * 256 + *d;
            *d = cur / 10;
            rem = cur % 10;
        }
        digits.push(char::from(b'0' + rem as u8));
    }
    if digits.is_empty() {
        "0".into()
    } else {
        digits.iter().rev().collect()
    }
}

/// What the emulated account has configured.
#[derive(Debug, Clone)]
pub struct Config {
    /// The region the endpoint serves.
    pub region: String,
    /// The trust anchor's ARN.
    pub trust_anchor_arn: String,
    /// The trust anchor's CA certificate (DER).
    pub trust_anchor_der: Vec<u8>,
    /// The profile's ARN.
    pub profile_arn: String,
    /// Roles the profile may hand out.
    pub role_arns: Vec<String>,
    /// The credentials every session gets (the tests need the secret to check signatures).
    pub access_key_id: String,
    /// Secret of the issued credentials.
    pub secret_access_key: String,
    /// Session token of the issued credentials.
    pub session_token: String,
    /// Accepted difference between `X-Amz-Date` and the emulator's clock
    /// ([`MAX_CLOCK_SKEW`]; tests that move the client's clock widen it).
    pub max_clock_skew: Duration,
}

impl Config {
    /// A configuration in `us-west-2`, account 123456789012, for `pki`'s root.
    pub fn for_pki(pki: &TestPki) -> Config {
        let suffix = hex::encode(rand_bytes::<6>());
        Config {
            region: "us-west-2".into(),
            trust_anchor_arn: "arn:aws:rolesanywhere:us-west-2:123456789012:trust-anchor/4579702c-cbd1-4a1e-8a1f-111111111111".into(),
            trust_anchor_der: pki.root_der(),
            profile_arn: "arn:aws:rolesanywhere:us-west-2:123456789012:profile/6f4b1a2e-7c2d-4e55-9a3b-222222222222".into(),
            role_arns: vec!["arn:aws:iam::123456789012:role/eks-hybrid-node".into()],
            access_key_id: format!("ASIA{}", suffix.to_uppercase()),
            secret_access_key: format!("ra/secret+{}", hex::encode(rand_bytes::<12>())),
            session_token: format!("ra-session-token/{}", hex::encode(rand_bytes::<24>())),
            max_clock_skew: MAX_CLOCK_SKEW,
        }
    }
}

/// One request the emulator answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// HTTP status returned.
    pub status: u16,
    /// Error code, if any.
    pub code: Option<String>,
    /// Error message, if any.
    pub message: Option<String>,
    /// Requested `durationSeconds`.
    pub duration_seconds: Option<i64>,
}

/// A running emulator; stopped on drop.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    ca_bundle: PathBuf,
    _dir: tempfile::TempDir,
    log: Arc<Mutex<Vec<Recorded>>>,
    _thread: crate::loopback_http::RuntimeThread,
}

impl Emulator {
    /// Starts the emulator on a free loopback port.
    pub fn start(config: Config) -> Emulator {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().expect("tempdir");
        // The server's own TLS identity, from a CA the tests trust through AWS_CA_BUNDLE.
        let tls_ca_key = new_key(KeyKind::P256);
        let tls_ca = ca_params("roles anywhere emulator TLS CA")
            .self_signed(&tls_ca_key)
            .expect("TLS CA");
        let server_key = new_key(KeyKind::P256);
        let mut sp = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("params");
        sp.distinguished_name.push(DnType::CommonName, "127.0.0.1");
        sp.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
        sp.not_after = OffsetDateTime::now_utc() + time::Duration::days(30);
        let server_cert = sp
            .signed_by(&server_key, &tls_ca, &tls_ca_key)
            .expect("server cert");
        let ca_bundle = dir.path().join("emulator-ca.pem");
        std::fs::write(&ca_bundle, tls_ca.pem()).expect("write CA bundle");

        let tls = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![server_cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
            )
            .expect("TLS config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(State {
            config,
            log: log.clone(),
        });
        let thread = crate::loopback_http::RuntimeThread::spawn(
            "rolesanywhere-emulator",
            tokio::runtime::Builder::new_current_thread(),
            move |mut stop_rx| async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        accepted = listener.accept() => {
                            let Ok((tcp, _)) = accepted else { continue };
                            let acceptor = acceptor.clone();
                            let state = state.clone();
                            tokio::spawn(async move {
                                let Ok(tls) = acceptor.accept(tcp).await else { return };
                                let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                                    let state = state.clone();
                                    async move {
                                        let (parts, body) = req.into_parts();
                                        let body = body.collect().await?.to_bytes();
                                        let (status, code, payload) = state.handle(&parts, &body, SystemTime::now());
                                        let mut resp = hyper::Response::builder()
                                            .status(status)
                                            .header("content-type", "application/json");
                                        if let Some(code) = code {
                                            resp = resp.header("x-amzn-ErrorType", code);
                                        }
                                        Ok::<_, hyper::Error>(resp.body(Full::new(Bytes::from(payload))).expect("response"))
                                    }
                                });
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                                    .await;
                            });
                        }
                    }
                }
            },
        );
        Emulator {
            addr,
            ca_bundle,
            _dir: dir,
            log,
            _thread: thread,
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// PEM bundle with the CA of the emulator's TLS certificate (for `AWS_CA_BUNDLE`).
    pub fn ca_bundle(&self) -> &Path {
        &self.ca_bundle
    }

    /// Requests answered so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().expect("log").clone()
    }
}

struct State {
    config: Config,
    log: Arc<Mutex<Vec<Recorded>>>,
}

/// A REST-JSON error: status, `x-amzn-ErrorType`, message.
struct Fail(u16, &'static str, String);

fn denied(msg: impl Into<String>) -> Fail {
    Fail(403, "AccessDeniedException", msg.into())
}

fn invalid(msg: impl Into<String>) -> Fail {
    Fail(400, "ValidationException", msg.into())
}

const ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

impl State {
    fn handle(
        &self,
        parts: &hyper::http::request::Parts,
        body: &[u8],
        now: SystemTime,
    ) -> (u16, Option<String>, Vec<u8>) {
        let mut duration = None;
        let result = self.create_session(parts, body, now, &mut duration);
        let (status, code, message, payload) = match result {
            Ok(payload) => (201, None, None, payload),
            Err(Fail(status, code, message)) => {
                let payload =
                    serde_json::to_vec(&serde_json::json!({ "message": message })).expect("json");
                (status, Some(code.to_owned()), Some(message), payload)
            }
        };
        self.log.lock().expect("log").push(Recorded {
            status,
            code: code.clone(),
            message,
            duration_seconds: duration,
        });
        (status, code, payload)
    }

    fn create_session(
        &self,
        parts: &hyper::http::request::Parts,
        body: &[u8],
        now: SystemTime,
        duration_out: &mut Option<i64>,
    ) -> Result<Vec<u8>, Fail> {
        let cfg = &self.config;
        if parts.method != hyper::http::Method::POST || parts.uri.path() != "/sessions" {
            return Err(Fail(
                404,
                "ResourceNotFoundException",
                format!("No route for {} {}", parts.method, parts.uri.path()),
            ));
        }
        // Query: exactly the three ARNs.
        let query: BTreeMap<String, String> =
            url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let arn = |k: &str| {
            query
                .get(k)
                .cloned()
                .ok_or_else(|| invalid(format!("{k} is required")))
        };
        let (profile_arn, role_arn, trust_anchor_arn) =
            (arn("profileArn")?, arn("roleArn")?, arn("trustAnchorArn")?);

        // Body.
        let json: serde_json::Value = if body.is_empty() {
            serde_json::json!({})
        } else {
            serde_json::from_slice(body).map_err(|_| invalid("Invalid JSON body"))?
        };
        let duration = match json.get("durationSeconds") {
            None => 3600,
            Some(v) => v
                .as_i64()
                .ok_or_else(|| invalid("durationSeconds must be an integer"))?,
        };
        *duration_out = Some(duration);
        if !(900..=43200).contains(&duration) {
            return Err(invalid("durationSeconds must be between 900 and 43200"));
        }

        // Authorization header.
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let auth = header("authorization").ok_or_else(|| denied("Missing Authentication Token"))?;
        let (algorithm, rest) = auth
            .split_once(' ')
            .ok_or_else(|| denied("Malformed Authorization header"))?;
        if algorithm != "AWS4-X509-RSA-SHA256" && algorithm != "AWS4-X509-ECDSA-SHA256" {
            return Err(denied(format!("Unsupported signing algorithm {algorithm}")));
        }
        let fields: BTreeMap<&str, &str> = rest
            .split(',')
            .filter_map(|f| f.trim().split_once('='))
            .collect();
        let (credential, signed_headers, signature) = match (
            fields.get("Credential"),
            fields.get("SignedHeaders"),
            fields.get("Signature"),
        ) {
            (Some(c), Some(h), Some(s)) => (*c, *h, *s),
            _ => return Err(denied("Malformed Authorization header")),
        };
        let scope: Vec<&str> = credential.split('/').collect();
        if scope.len() != 5
            || scope[2] != cfg.region
            || scope[3] != SERVICE
            || scope[4] != "aws4_request"
        {
            return Err(denied(format!(
                "Credential should be scoped to a valid region and service: {credential}"
            )));
        }
        let signed: Vec<&str> = signed_headers.split(';').collect();
        for required in ["host", "x-amz-date", "x-amz-x509"] {
            if !signed.contains(&required) {
                return Err(denied(format!("Signed headers must include {required}")));
            }
        }
        if header("x-amz-x509-chain").is_some() && !signed.contains(&"x-amz-x509-chain") {
            return Err(denied("Signed headers must include x-amz-x509-chain"));
        }

        // Date.
        let amz_date = header("x-amz-date").ok_or_else(|| denied("Missing X-Amz-Date"))?;
        let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
        let signed_at = time::PrimitiveDateTime::parse(&amz_date, &fmt)
            .map_err(|_| denied("Invalid X-Amz-Date"))?
            .assume_utc();
        let skew = (OffsetDateTime::from(now) - signed_at)
            .whole_seconds()
            .unsigned_abs();
        if skew > cfg.max_clock_skew.as_secs() {
            return Err(denied(
                "Signature expired or request date too far from the server time",
            ));
        }
        if scope[1] != &amz_date[..8] {
            return Err(denied("Credential scope date does not match X-Amz-Date"));
        }

        // Certificates.
        let b64 = base64::engine::general_purpose::STANDARD;
        let leaf_der = b64
            .decode(header("x-amz-x509").ok_or_else(|| denied("Missing X-Amz-X509"))?)
            .map_err(|_| invalid("X-Amz-X509 is not base64"))?;
        let chain: Vec<Vec<u8>> = match header("x-amz-x509-chain") {
            None => Vec::new(),
            Some(c) => c
                .split(',')
                .map(|p| {
                    b64.decode(p.trim())
                        .map_err(|_| invalid("X-Amz-X509-Chain is not base64"))
                })
                .collect::<Result<_, _>>()?,
        };
        let leaf = x509_cert::Certificate::from_der(&leaf_der)
            .map_err(|_| invalid("X-Amz-X509 is not an X.509 certificate"))?;
        let serial = decimal(leaf.tbs_certificate.serial_number.as_bytes());
        if scope[0] != serial {
            return Err(denied(
                "Credential does not match the certificate serial number",
            ));
        }

        // Signature over the canonical request rebuilt from what arrived.
        let mut canonical_query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| {
                (
                    percent_encoding::utf8_percent_encode(k, ENCODE).to_string(),
                    percent_encoding::utf8_percent_encode(v, ENCODE).to_string(),
                )
            })
            .collect();
        canonical_query.sort();
        let canonical_query = canonical_query
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let mut canonical_headers = String::new();
        for name in &signed {
            let values: Vec<String> = parts
                .headers
                .get_all(*name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            if values.is_empty() {
                return Err(denied(format!(
                    "Signed header {name} is missing from the request"
                )));
            }
            canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
        }
        let canonical_request = format!(
            "{}\n{}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{}",
            parts.method,
            parts.uri.path(),
            hex::encode(Sha256::digest(body))
        );
        let string_to_sign = format!(
            "{algorithm}\n{amz_date}\n{}\n{}",
            scope[1..].join("/"),
            hex::encode(Sha256::digest(canonical_request.as_bytes()))
        );
        let sig = hex::decode(signature).map_err(|_| denied("Signature is not hex"))?;
        let spki = &leaf.tbs_certificate.subject_public_key_info;
        let key_bits = spki.subject_public_key.raw_bytes();
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<x509_cert::der::asn1::ObjectIdentifier>().ok())
            .map(|o| o.to_string());
        let alg: &'static dyn aws_lc_rs::signature::VerificationAlgorithm =
            match (algorithm, curve.as_deref()) {
                ("AWS4-X509-RSA-SHA256", _) => &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
                ("AWS4-X509-ECDSA-SHA256", Some(OID_P256)) => {
                    &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1
                }
                ("AWS4-X509-ECDSA-SHA256", Some(OID_P384)) => {
                    &aws_lc_rs::signature::ECDSA_P384_SHA256_ASN1
                }
                _ => {
                    return Err(denied(
                        "Signing algorithm does not match the certificate's key",
                    ));
                }
            };
        aws_lc_rs::signature::UnparsedPublicKey::new(alg, key_bits)
            .verify(string_to_sign.as_bytes(), &sig)
            .map_err(|_| denied("Signature validation failed"))?;

        // Chain to the trust anchor, validity at `now`, client-auth usage.
        if trust_anchor_arn != cfg.trust_anchor_arn {
            return Err(Fail(
                404,
                "ResourceNotFoundException",
                "Trust anchor not found".into(),
            ));
        }
        if profile_arn != cfg.profile_arn {
            return Err(Fail(
                404,
                "ResourceNotFoundException",
                "Profile not found".into(),
            ));
        }
        if !cfg.role_arns.contains(&role_arn) {
            return Err(denied("Role is not allowed by the profile"));
        }
        let anchor_der = CertificateDer::from(cfg.trust_anchor_der.clone());
        let anchor = webpki::anchor_from_trusted_cert(&anchor_der)
            .map_err(|_| denied("Bad trust anchor"))?
            .to_owned();
        let leaf_cert_der = CertificateDer::from(leaf_der.clone());
        let ee = webpki::EndEntityCert::try_from(&leaf_cert_der)
            .map_err(|_| invalid("Unparseable certificate"))?;
        let intermediates: Vec<CertificateDer<'_>> =
            chain.into_iter().map(CertificateDer::from).collect();
        let unix = UnixTime::since_unix_epoch(
            now.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        );
        let algs = rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .all;
        ee.verify_for_usage(
            algs,
            &[anchor],
            &intermediates,
            unix,
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .map_err(|e| match e {
            webpki::Error::CertExpired { .. } => denied("Certificate expired"),
            webpki::Error::CertNotValidYet { .. } => denied("Certificate not yet valid"),
            _ => denied("Untrusted signing certificate"),
        })?;

        let expiration = OffsetDateTime::from(now) + time::Duration::seconds(duration);
        let expiration = expiration
            .replace_nanosecond(0)
            .expect("whole seconds")
            .format(&time::format_description::well_known::Rfc3339)
            .expect("format");
        let session = json
            .get("roleSessionName")
            .and_then(|v| v.as_str())
            .unwrap_or(&serial)
            .to_owned();
        let role_name = role_arn.rsplit('/').next().unwrap_or("role");
        let answer = serde_json::json!({
            "credentialSet": [{
                "assumedRoleUser": {
                    "arn": format!("arn:aws:sts::123456789012:assumed-role/{role_name}/{session}"),
                    "assumedRoleId": format!("AROAEMULATOR:{session}"),
                },
                "credentials": {
                    "accessKeyId": cfg.access_key_id,
                    "expiration": expiration,
                    "secretAccessKey": cfg.secret_access_key,
                    "sessionToken": cfg.session_token,
                },
                "packedPolicySize": 0,
                "roleArn": role_arn,
                "sourceIdentity": leaf.tbs_certificate.subject.to_string(),
            }],
            "subjectArn": "arn:aws:rolesanywhere:us-west-2:123456789012:subject/0f0e0d0c-0b0a-0908-0706-050403020100",
        });
        Ok(serde_json::to_vec(&answer).expect("json"))
    }
}
