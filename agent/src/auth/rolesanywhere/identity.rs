//! The node's X.509 identity for IAM Roles Anywhere: its certificate (and intermediates) and
//! the private key that goes with it, read from PEM. Keys are RSA or ECDSA (P-256, P-384),
//! unencrypted, in PKCS#8, PKCS#1 or SEC1 form.
//!
//! RSA signs with aws-lc-rs (constant-time RSASSA-PKCS1-v1_5; the `rsa` crate's
//! non-constant-time operations are RUSTSEC-2023-0071, "Marvin"). ECDSA signs with RustCrypto's
//! p256/p384, whose arithmetic is constant-time: aws-lc-rs has no P-384 signer over SHA-256,
//! the digest Roles Anywhere's `AWS4-X509-ECDSA-SHA256` prescribes for every curve.

use std::path::Path;

use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::der::Decode;

use crate::auth::Error;

const RSA_ALGORITHM: &str = "AWS4-X509-RSA-SHA256";
const ECDSA_ALGORITHM: &str = "AWS4-X509-ECDSA-SHA256";

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

/// A private key that can sign `CreateSession`.
pub enum PrivateKey {
    /// RSA (2048 to 8192 bits), signing RSASSA-PKCS1-v1_5 with SHA-256.
    Rsa(Box<aws_lc_rs::signature::RsaKeyPair>),
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
        let digest = Sha256::digest(message);
        match self {
            PrivateKey::Rsa(k) => {
                let mut signature = vec![0; k.public_modulus_len()];
                k.sign(
                    &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                    &aws_lc_rs::rand::SystemRandom::new(),
                    message,
                    &mut signature,
                )
                .map_err(|_| "RSA signing failed".to_owned())?;
                Ok(signature)
            }
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
                use aws_lc_rs::signature::KeyPair;
                // PKCS#1 RSAPublicKey DER, as in the certificate's bit string.
                k.public_key().as_ref().to_vec()
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
    pub(super) leaf_der: Vec<u8>,
    pub(super) chain_der: Vec<Vec<u8>>,
    pub(super) serial: String,
    pub(super) key: PrivateKey,
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
            crate::model::bounded::read_to_string_capped(path, crate::model::bounded::MAX_PEM_BYTES)
                .map_err(|source| Error::Read {
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
    let blocks = all_pem_blocks(text)?;
    for (label, der) in &blocks {
        match label.as_str() {
            "PRIVATE KEY" => {
                let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice())
                    .map_err(|e| format!("bad PKCS#8 key: {e}"))?;
                let alg = info.algorithm.oid.to_string();
                if alg == OID_RSA {
                    let k = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(der)
                        .map_err(|e| format!("bad RSA key: {e} (2048 to 8192 bits)"))?;
                    return Ok(PrivateKey::Rsa(Box::new(k)));
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
                let k = aws_lc_rs::signature::RsaKeyPair::from_der(der)
                    .map_err(|e| format!("bad PKCS#1 RSA key: {e} (2048 to 8192 bits)"))?;
                return Ok(PrivateKey::Rsa(Box::new(k)));
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
