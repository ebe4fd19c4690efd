//! IAM Roles Anywhere: temporary credentials for a host that holds an X.509 certificate and
//! its private key, through the `CreateSession` API (`POST /sessions` on
//! `rolesanywhere.<region>.<partition suffix>`).
//!
//! The request is signed like SigV4 but with the certificate's private key instead of an
//! HMAC key: algorithm `AWS4-X509-RSA-SHA256` (RSASSA-PKCS1-v1_5 over SHA-256) or
//! `AWS4-X509-ECDSA-SHA256` (ECDSA over SHA-256, DER-encoded), credential scope
//! `<serial>/<date>/<region>/rolesanywhere/aws4_request` where `<serial>` is the certificate's
//! serial number in decimal, and the certificate (and intermediates) in the signed
//! `X-Amz-X509` (and `X-Amz-X509-Chain`) headers. aws-sigv4 only signs with HMAC keys, so the
//! canonical request is built here (pure functions, unit-tested); keys are RustCrypto's.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, future};
use base64::Engine;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::der::Decode;

use super::{Clock, Error};
use crate::model::Region;

/// The signing name of the service.
pub const SERVICE: &str = "rolesanywhere";
/// Session length asked for when none is given (the service's default).
pub const DEFAULT_DURATION_SECS: u32 = 3600;
/// Shortest session the service grants.
pub const MIN_DURATION_SECS: u32 = 900;
/// Longest session the service grants.
pub const MAX_DURATION_SECS: u32 = 43_200;
/// Credentials are refreshed this long before they expire.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// Connect timeout for `CreateSession`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Timeout of one `CreateSession` attempt.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per `CreateSession` call (transport errors, 5xx and 429 are retried).
pub const MAX_ATTEMPTS: u32 = 3;
/// Backoff before the second attempt; doubled each time.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(200);

const RSA_ALGORITHM: &str = "AWS4-X509-RSA-SHA256";
const ECDSA_ALGORITHM: &str = "AWS4-X509-ECDSA-SHA256";
/// SigV4 URI encoding: RFC 3986 unreserved characters stay.
const SIGV4_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

/// A private key that can sign `CreateSession`.
pub enum PrivateKey {
    /// RSA, signing RSASSA-PKCS1-v1_5 with SHA-256.
    Rsa(Box<rsa::pkcs1v15::SigningKey<Sha256>>),
    /// ECDSA on P-256.
    P256(p256::ecdsa::SigningKey),
    /// ECDSA on P-384 (still over a SHA-256 digest, as the algorithm name says).
    P384(p384::ecdsa::SigningKey),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            PrivateKey::Rsa(_) => "RSA",
            PrivateKey::P256(_) => "ECDSA P-256",
            PrivateKey::P384(_) => "ECDSA P-384",
        };
        write!(f, "PrivateKey({kind}, ** redacted **)")
    }
}

impl PrivateKey {
    /// The SigV4-X509 algorithm name for this key.
    pub fn algorithm(&self) -> &'static str {
        match self {
            PrivateKey::Rsa(_) => RSA_ALGORITHM,
            PrivateKey::P256(_) | PrivateKey::P384(_) => ECDSA_ALGORITHM,
        }
    }

    /// Signs `message` (the string to sign): SHA-256, then RSA PKCS#1 v1.5 or ECDSA (DER).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        use rsa::signature::{SignatureEncoding, Signer};
        let digest = Sha256::digest(message);
        match self {
            PrivateKey::Rsa(k) => Ok(k.try_sign(message).map_err(|e| e.to_string())?.to_vec()),
            PrivateKey::P256(k) => {
                let sig: p256::ecdsa::Signature =
                    k.sign_prehash(&digest).map_err(|e| e.to_string())?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            PrivateKey::P384(k) => {
                let sig: p384::ecdsa::Signature =
                    k.sign_prehash(&digest).map_err(|e| e.to_string())?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
        }
    }

    /// The public key as it appears in a certificate: the SubjectPublicKeyInfo's bit string
    /// (PKCS#1 `RSAPublicKey` DER, or the uncompressed EC point).
    fn public_key_bits(&self) -> Vec<u8> {
        match self {
            PrivateKey::Rsa(k) => {
                use rsa::pkcs1::EncodeRsaPublicKey;
                let private: &rsa::RsaPrivateKey = k.as_ref().as_ref();
                rsa::RsaPublicKey::from(private)
                    .to_pkcs1_der()
                    .map(|d| d.as_bytes().to_vec())
                    .unwrap_or_default()
            }
            PrivateKey::P256(k) => k
                .verifying_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
            PrivateKey::P384(k) => k
                .verifying_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
        }
    }
}

/// The signing identity: the end-entity certificate, its intermediates, and its key.
#[derive(Debug)]
pub struct X509Identity {
    leaf_der: Vec<u8>,
    chain_der: Vec<Vec<u8>>,
    serial: String,
    key: PrivateKey,
}

impl X509Identity {
    /// Builds the identity from PEM text: `certificate` holds the end-entity certificate
    /// first and optionally its intermediates; `intermediates` holds more; `key` is PKCS#8,
    /// PKCS#1 (RSA) or SEC1 (EC), unencrypted. The paths only name the files in errors.
    pub fn from_pem(
        certificate: (&Path, &str),
        key: (&Path, &str),
        intermediates: Option<(&Path, &str)>,
    ) -> Result<X509Identity, Error> {
        let bad = |what: &'static str, path: &Path, reason: String| Error::BadPem {
            what,
            path: path.to_owned(),
            reason,
        };
        let mut certs = pem_blocks(certificate.1, "CERTIFICATE")
            .map_err(|r| bad("certificate", certificate.0, r))?;
        if certs.is_empty() {
            return Err(bad(
                "certificate",
                certificate.0,
                "no PEM CERTIFICATE block; pass the node's X.509 certificate in PEM".into(),
            ));
        }
        if let Some((path, text)) = intermediates {
            certs.extend(
                pem_blocks(text, "CERTIFICATE")
                    .map_err(|r| bad("intermediate certificates", path, r))?,
            );
        }
        let leaf = Certificate::from_der(&certs[0]).map_err(|e| {
            bad(
                "certificate",
                certificate.0,
                format!("not an X.509 certificate: {e}"),
            )
        })?;
        for (i, der) in certs.iter().enumerate().skip(1) {
            Certificate::from_der(der).map_err(|e| {
                bad(
                    "certificate",
                    certificate.0,
                    format!("certificate #{} is not X.509: {e}", i + 1),
                )
            })?;
        }
        let serial = decimal_serial(leaf.tbs_certificate.serial_number.as_bytes());
        let private_key = parse_private_key(key.1).map_err(|r| bad("private key", key.0, r))?;
        let spki = &leaf.tbs_certificate.subject_public_key_info;
        if spki.subject_public_key.raw_bytes() != private_key.public_key_bits().as_slice() {
            return Err(bad(
                "private key",
                key.0,
                format!(
                    "does not belong to the certificate {} (serial {serial}); pass the key the certificate was issued for",
                    certificate.0.display()
                ),
            ));
        }
        let mut chain_der = certs;
        let leaf_der = chain_der.remove(0);
        Ok(X509Identity {
            leaf_der,
            chain_der,
            serial,
            key: private_key,
        })
    }

    /// Reads the files and builds the identity.
    pub fn load(
        certificate: &Path,
        key: &Path,
        intermediates: Option<&Path>,
    ) -> Result<X509Identity, Error> {
        let read = |what: &'static str, path: &Path| {
            std::fs::read_to_string(path).map_err(|source| Error::Read {
                what,
                path: path.to_owned(),
                source,
            })
        };
        let cert_text = read("certificate", certificate)?;
        let key_text = read("private key", key)?;
        let chain_text = intermediates
            .map(|p| read("intermediate certificates", p))
            .transpose()?;
        X509Identity::from_pem(
            (certificate, &cert_text),
            (key, &key_text),
            intermediates.zip(chain_text.as_deref()),
        )
    }

    /// The certificate's serial number in decimal (the "access key" of the credential scope).
    pub fn serial(&self) -> &str {
        &self.serial
    }
}

/// The DER bodies of the PEM blocks labelled `want`, in order; other labels are skipped.
fn pem_blocks(text: &str, want: &str) -> Result<Vec<Vec<u8>>, String> {
    Ok(all_pem_blocks(text)?
        .into_iter()
        .filter(|(label, _)| label == want)
        .map(|(_, der)| der)
        .collect())
}

fn all_pem_blocks(text: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start..];
        let label_end = after["-----BEGIN ".len()..]
            .find("-----")
            .ok_or("unterminated PEM header")?;
        let label = &after["-----BEGIN ".len().."-----BEGIN ".len() + label_end];
        let end_marker = format!("-----END {label}-----");
        let end = after
            .find(&end_marker)
            .ok_or_else(|| format!("PEM block {label} has no END line"))?;
        let block = &after[..end + end_marker.len()];
        let (decoded_label, der) = x509_cert::der::pem::decode_vec(block.as_bytes())
            .map_err(|e| format!("bad PEM block {label}: {e}"))?;
        out.push((decoded_label.to_owned(), der));
        rest = &after[end + end_marker.len()..];
    }
    Ok(out)
}

/// Parses an unencrypted private key in PEM: PKCS#8, PKCS#1 RSA or SEC1 EC.
fn parse_private_key(text: &str) -> Result<PrivateKey, String> {
    use pkcs8::DecodePrivateKey;
    use rsa::pkcs1::DecodeRsaPrivateKey;
    let blocks = all_pem_blocks(text)?;
    for (label, der) in &blocks {
        match label.as_str() {
            "PRIVATE KEY" => {
                let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice())
                    .map_err(|e| format!("bad PKCS#8 key: {e}"))?;
                let alg = info.algorithm.oid.to_string();
                if alg == OID_RSA {
                    let k = rsa::RsaPrivateKey::from_pkcs8_der(der)
                        .map_err(|e| format!("bad RSA key: {e}"))?;
                    return Ok(PrivateKey::Rsa(Box::new(rsa::pkcs1v15::SigningKey::new(k))));
                }
                if alg == OID_EC {
                    let curve = info
                        .algorithm
                        .parameters_oid()
                        .map(|o| o.to_string())
                        .map_err(|e| format!("EC key without a named curve: {e}"))?;
                    return ec_key(
                        &curve,
                        || p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(|e| e.to_string()),
                        || p384::ecdsa::SigningKey::from_pkcs8_der(der).map_err(|e| e.to_string()),
                    );
                }
                return Err(format!(
                    "unsupported key algorithm {alg}; use an RSA or ECDSA (P-256, P-384) key"
                ));
            }
            "RSA PRIVATE KEY" => {
                let k = rsa::RsaPrivateKey::from_pkcs1_der(der)
                    .map_err(|e| format!("bad PKCS#1 RSA key: {e}"))?;
                return Ok(PrivateKey::Rsa(Box::new(rsa::pkcs1v15::SigningKey::new(k))));
            }
            "EC PRIVATE KEY" => {
                let ec = sec1::EcPrivateKey::try_from(der.as_slice())
                    .map_err(|e| format!("bad SEC1 EC key: {e}"))?;
                let curve = ec
                    .parameters
                    .and_then(|p| p.named_curve())
                    .map(|o| o.to_string())
                    .or_else(|| {
                        blocks
                            .iter()
                            .find(|(l, _)| l == "EC PARAMETERS")
                            .and_then(|(_, d)| {
                                x509_cert::der::asn1::ObjectIdentifier::from_der(d)
                                    .ok()
                                    .map(|o| o.to_string())
                            })
                    })
                    // Without parameters, the scalar's length tells the curve.
                    .or_else(|| match ec.private_key.len() {
                        32 => Some(OID_P256.to_owned()),
                        48 => Some(OID_P384.to_owned()),
                        _ => None,
                    })
                    .ok_or("EC key without a named curve")?;
                return ec_key(
                    &curve,
                    || {
                        p256::SecretKey::from_sec1_der(der)
                            .map(Into::into)
                            .map_err(|e| e.to_string())
                    },
                    || {
                        p384::SecretKey::from_sec1_der(der)
                            .map(Into::into)
                            .map_err(|e| e.to_string())
                    },
                );
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err("encrypted keys are not supported; decrypt it first (openssl pkcs8 -in KEY -out KEY.pem)".into());
            }
            _ => {}
        }
    }
    Err("no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY) found".into())
}

fn ec_key(
    curve: &str,
    p256: impl FnOnce() -> Result<p256::ecdsa::SigningKey, String>,
    p384: impl FnOnce() -> Result<p384::ecdsa::SigningKey, String>,
) -> Result<PrivateKey, String> {
    match curve {
        OID_P256 => Ok(PrivateKey::P256(
            p256().map_err(|e| format!("bad P-256 key: {e}"))?,
        )),
        OID_P384 => Ok(PrivateKey::P384(
            p384().map_err(|e| format!("bad P-384 key: {e}"))?,
        )),
        other => Err(format!("unsupported EC curve {other}; use P-256 or P-384")),
    }
}

/// A big-endian unsigned integer (a certificate serial number) in decimal.
pub fn decimal_serial(bytes: &[u8]) -> String {
    let mut digits: Vec<u8> = Vec::new(); // little-endian base-10 digits
    for &byte in bytes {
        let mut carry = u32::from(byte);
        for d in digits.iter_mut() {
            let v = u32::from(*d) * 256 + carry;
            *d = (v % 10) as u8;
            carry = v / 10;
        }
        while carry > 0 {
            digits.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    if digits.is_empty() {
        return "0".into();
    }
    digits.iter().rev().map(|d| char::from(b'0' + d)).collect()
}

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

/// A signed `CreateSession` request, ready to send.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The full URL, query included.
    pub url: String,
    /// Headers to send (all of them signed except none: every header here is signed).
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Vec<u8>,
    /// The canonical request that was signed (for tests and trace logs; holds no secret).
    pub canonical_request: String,
    /// The string to sign.
    pub string_to_sign: String,
}

impl std::fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedRequest")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The `CreateSession` endpoint of `region`: `https://rolesanywhere.<region>.<suffix>`.
pub fn default_endpoint(region: &Region) -> String {
    format!("https://{}", region.rolesanywhere_host())
}

/// Builds and signs `POST /sessions` at `now` (pure).
pub fn sign_request(
    identity: &X509Identity,
    params: &SessionParams,
    region: &Region,
    endpoint: &url::Url,
    now: SystemTime,
) -> Result<SignedRequest, Error> {
    let host = match (endpoint.host_str(), endpoint.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => {
            return Err(Error::InvalidInput {
                source_name: "--endpoint".into(),
                field: "URL",
                reason: format!("{endpoint} has no host"),
            });
        }
    };
    let t = time::OffsetDateTime::from(now);
    let amz_date = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let short_date = &amz_date[..8];
    let scope = format!("{short_date}/{}/{SERVICE}/aws4_request", region.as_str());

    let mut body = serde_json::Map::new();
    body.insert("durationSeconds".into(), params.duration_secs.into());
    if let Some(name) = &params.role_session_name {
        body.insert("roleSessionName".into(), name.clone().into());
    }
    let body = serde_json::to_vec(&body).unwrap_or_default();

    let mut query = [
        ("profileArn", params.profile_arn.as_str()),
        ("roleArn", params.role_arn.as_str()),
        ("trustAnchorArn", params.trust_anchor_arn.as_str()),
    ]
    .map(|(k, v)| {
        (
            utf8_percent_encode(k, SIGV4_ENCODE).to_string(),
            utf8_percent_encode(v, SIGV4_ENCODE).to_string(),
        )
    });
    query.sort();
    let canonical_query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");

    let b64 = base64::engine::general_purpose::STANDARD;
    let mut headers: Vec<(String, String)> = vec![
        ("content-type".into(), "application/json".into()),
        ("host".into(), host),
        ("x-amz-date".into(), amz_date.clone()),
        ("x-amz-x509".into(), b64.encode(&identity.leaf_der)),
    ];
    if !identity.chain_der.is_empty() {
        let chain = identity
            .chain_der
            .iter()
            .map(|d| b64.encode(d))
            .collect::<Vec<_>>()
            .join(",");
        headers.push(("x-amz-x509-chain".into(), chain));
    }
    headers.sort();
    let canonical_headers: String = headers
        .iter()
        .map(|(k, v)| format!("{k}:{}\n", v.trim()))
        .collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let payload_hash = hex::encode(Sha256::digest(&body));
    let path = "/sessions";
    let canonical_request = format!(
        "POST\n{path}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}"
    );
    let algorithm = identity.key.algorithm();
    let string_to_sign = format!(
        "{algorithm}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let signature = identity
        .key
        .sign(string_to_sign.as_bytes())
        .map_err(|e| Error::Sign {
            host: endpoint.to_string(),
            source: e.into(),
        })?;
    let authorization = format!(
        "{algorithm} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={}",
        identity.serial,
        hex::encode(signature)
    );
    headers.push(("authorization".into(), authorization));
    let base = endpoint.as_str().trim_end_matches('/');
    Ok(SignedRequest {
        url: format!("{base}{path}?{canonical_query}"),
        headers,
        body,
        canonical_request,
        string_to_sign,
    })
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
        service: "IAM Roles Anywhere",
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
            service: "IAM Roles Anywhere",
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

/// An HTTPS client for Roles Anywhere: rustls with the system's roots, or only the PEM bundle
/// named by `AWS_CA_BUNDLE` when set (as the AWS CLI and SDKs do).
pub fn https_client(ca_bundle: Option<&Path>) -> Result<reqwest::Client, Error> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_bundle {
        Some(path) => {
            use rustls_pki_types::pem::PemObject;
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path).map_err(|e| {
                Error::BadPem {
                    what: "CA bundle (AWS_CA_BUNDLE)",
                    path: path.to_owned(),
                    reason: e.to_string(),
                }
            })?;
            for cert in certs {
                let cert = cert.map_err(|e| Error::BadPem {
                    what: "CA bundle (AWS_CA_BUNDLE)",
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?;
                roots.add(cert).map_err(|e| Error::BadPem {
                    what: "CA bundle (AWS_CA_BUNDLE)",
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Transport {
            service: "IAM Roles Anywhere",
            endpoint: String::new(),
            attempts: 0,
            source: Box::new(e),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(ATTEMPT_TIMEOUT)
        .build()
        .map_err(|e| Error::Transport {
            service: "IAM Roles Anywhere",
            endpoint: String::new(),
            attempts: 0,
            source: Box::new(e),
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
            https_client(node.ca_bundle.as_deref())?,
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
        let endpoint = self.endpoint.to_string();
        match self.attempt(req).await {
            Ok((status, error_type, body)) => {
                parse_response(status, error_type.as_deref(), &body, &endpoint)
            }
            Err(e) => Err(Error::Transport {
                service: "IAM Roles Anywhere",
                endpoint,
                attempts: 1,
                source: Box::new(e),
            }),
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
        let body = resp.bytes().await?.to_vec();
        Ok((status, error_type, body))
    }

    /// Calls `CreateSession`, retrying transport errors, 5xx and 429 with backoff (each attempt
    /// signed afresh).
    pub async fn create_session(&self) -> Result<SessionCredentials, Error> {
        let endpoint = self.endpoint.to_string();
        let mut backoff = INITIAL_BACKOFF;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let req = self.sign()?;
            tracing::debug!(endpoint = %endpoint, attempt, serial = %self.identity.serial, "IAM Roles Anywhere CreateSession");
            match self.attempt(&req).await {
                Ok((status, error_type, body)) => {
                    let retryable = status >= 500 || status == 429;
                    let result = parse_response(status, error_type.as_deref(), &body, &endpoint);
                    if result.is_ok() || !retryable || attempt >= MAX_ATTEMPTS {
                        return result;
                    }
                    tracing::warn!(endpoint = %endpoint, status, attempt, "IAM Roles Anywhere answered with a retryable error");
                }
                Err(e) => {
                    if attempt >= MAX_ATTEMPTS {
                        return Err(Error::Transport {
                            service: "IAM Roles Anywhere",
                            endpoint,
                            attempts: attempt,
                            source: Box::new(e),
                        });
                    }
                    tracing::warn!(endpoint = %endpoint, attempt, error = %e, "IAM Roles Anywhere request failed; retrying");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
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
    fn serials_print_in_decimal() {
        assert_eq!(decimal_serial(&[]), "0");
        assert_eq!(decimal_serial(&[0]), "0");
        assert_eq!(decimal_serial(&[0x01, 0x00]), "256");
        assert_eq!(decimal_serial(&[0x00, 0xff]), "255");
        assert_eq!(
            decimal_serial(&[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            u64::MAX.wrapping_shr(1).to_string()
        );
        // 2^128 - 1 = 340282366920938463463374607431768211455
        assert_eq!(
            decimal_serial(&[0xff; 16]),
            "340282366920938463463374607431768211455"
        );
    }

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

    fn p256_identity() -> (X509Identity, p256::ecdsa::SigningKey) {
        // A self-contained P-256 key and a minimal certificate carrying its public key are
        // made by the integration tests with rcgen; here only the signing math is checked,
        // so the identity is assembled directly.
        let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let id = X509Identity {
            leaf_der: b"leaf".to_vec(),
            chain_der: vec![b"int1".to_vec(), b"int2".to_vec()],
            serial: "123456789".into(),
            key: PrivateKey::P256(key.clone()),
        };
        (id, key)
    }

    #[test]
    fn canonical_request_and_signature() {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        let (id, key) = p256_identity();
        let params = SessionParams {
            trust_anchor_arn: "arn:aws:rolesanywhere:us-west-2:123456789012:trust-anchor/ta".into(),
            profile_arn: "arn:aws:rolesanywhere:us-west-2:123456789012:profile/p".into(),
            role_arn: "arn:aws:iam::123456789012:role/node".into(),
            role_session_name: None,
            duration_secs: DEFAULT_DURATION_SECS,
        };
        params.validate().unwrap();
        let region = Region::parse("us-west-2", "t").unwrap();
        let endpoint = url::Url::parse("https://127.0.0.1:8443").unwrap();
        let now = SystemTime::from(time::macros::datetime!(2024-05-01 12:34:56 UTC));
        let req = sign_request(&id, &params, &region, &endpoint, now).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let expected_creq = format!(
            "POST\n/sessions\n\
             profileArn=arn%3Aaws%3Arolesanywhere%3Aus-west-2%3A123456789012%3Aprofile%2Fp\
             &roleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fnode\
             &trustAnchorArn=arn%3Aaws%3Arolesanywhere%3Aus-west-2%3A123456789012%3Atrust-anchor%2Fta\n\
             content-type:application/json\nhost:127.0.0.1:8443\nx-amz-date:20240501T123456Z\n\
             x-amz-x509:{}\nx-amz-x509-chain:{},{}\n\n\
             content-type;host;x-amz-date;x-amz-x509;x-amz-x509-chain\n{}",
            b64.encode(b"leaf"),
            b64.encode(b"int1"),
            b64.encode(b"int2"),
            hex::encode(Sha256::digest(br#"{"durationSeconds":3600}"#)),
        );
        assert_eq!(req.canonical_request, expected_creq);
        assert_eq!(req.body, br#"{"durationSeconds":3600}"#);
        assert!(
            req.url
                .starts_with("https://127.0.0.1:8443/sessions?profileArn=arn%3Aaws"),
            "{}",
            req.url
        );
        let sts = format!(
            "AWS4-X509-ECDSA-SHA256\n20240501T123456Z\n20240501/us-west-2/rolesanywhere/aws4_request\n{}",
            hex::encode(Sha256::digest(expected_creq.as_bytes()))
        );
        assert_eq!(req.string_to_sign, sts);
        let auth = &req
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1;
        let prefix = "AWS4-X509-ECDSA-SHA256 Credential=123456789/20240501/us-west-2/rolesanywhere/aws4_request, \
                      SignedHeaders=content-type;host;x-amz-date;x-amz-x509;x-amz-x509-chain, Signature=";
        assert!(auth.starts_with(prefix), "{auth}");
        let sig = hex::decode(&auth[prefix.len()..]).unwrap();
        let sig = p256::ecdsa::Signature::from_der(&sig).unwrap();
        key.verifying_key()
            .verify_prehash(&Sha256::digest(sts.as_bytes()), &sig)
            .unwrap();
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

    #[test]
    fn keys_in_every_pem_form_are_read_and_matched() {
        use p256::pkcs8::EncodePrivateKey;
        let key = p256::SecretKey::from_slice(&[9u8; 32]).unwrap();
        let pkcs8 = key.to_pkcs8_pem(Default::default()).unwrap();
        assert!(matches!(
            parse_private_key(&pkcs8).unwrap(),
            PrivateKey::P256(_)
        ));
        let sec1 = key.to_sec1_pem(Default::default()).unwrap();
        assert!(matches!(
            parse_private_key(&sec1).unwrap(),
            PrivateKey::P256(_)
        ));
        let k384 = p384::SecretKey::from_slice(&[9u8; 48]).unwrap();
        let sec1_384 = k384.to_sec1_pem(Default::default()).unwrap();
        assert!(matches!(
            parse_private_key(&sec1_384).unwrap(),
            PrivateKey::P384(_)
        ));
        let enc =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(parse_private_key(enc).unwrap_err().contains("encrypted"));
        assert!(
            parse_private_key("nothing here")
                .unwrap_err()
                .contains("no PEM private key")
        );
    }
}
