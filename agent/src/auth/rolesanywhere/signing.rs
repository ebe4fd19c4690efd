//! The `CreateSession` request, signed like SigV4 but with the certificate's private key
//! instead of an HMAC key: algorithm `AWS4-X509-RSA-SHA256` (RSASSA-PKCS1-v1_5 over SHA-256)
//! or `AWS4-X509-ECDSA-SHA256` (ECDSA over SHA-256, DER-encoded), credential scope
//! `<serial>/<date>/<region>/rolesanywhere/aws4_request` where `<serial>` is the certificate's
//! serial number in decimal, and the certificate (and intermediates) in the signed
//! `X-Amz-X509` (and `X-Amz-X509-Chain`) headers. aws-sigv4 only signs with HMAC keys, so the
//! canonical request is built here, purely; keys are RustCrypto's.

use std::time::SystemTime;

use base64::Engine;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

use super::{SERVICE, SessionParams, X509Identity};
use crate::auth::Error;
use crate::model::Region;

/// SigV4 URI encoding: RFC 3986 unreserved characters stay.
const SIGV4_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::rolesanywhere::{DEFAULT_DURATION_SECS, PrivateKey};

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
}
