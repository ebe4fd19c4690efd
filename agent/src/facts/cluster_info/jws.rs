//! The pure half of token discovery: the detached JWS over `cluster-info`'s kubeconfig
//! (HS256 keyed with the bootstrap token's secret, `kid` = the token id), then the CA pin
//! check of the CA that kubeconfig names.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use hmac::Mac as _;

use super::{Error, JWS_KEY_PREFIX, KUBECONFIG_KEY};
use crate::model::{BootstrapToken, CaPin};

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
