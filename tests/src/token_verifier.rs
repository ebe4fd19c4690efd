//! The server side of a `k8s-aws-v1.` token, for tests: the checks aws-iam-authenticator
//! applies before it forwards a token to STS, then the signature, recomputed by botocore (the
//! reference SigV4 implementation, run from the test venv) for the same credentials and time.
//!
//! Rules (as the authenticator's `Verify` applies them): the `k8s-aws-v1.` prefix;
//! base64url without padding; an `https` URL whose host is a regional STS host of a known
//! partition; path `/`; only the presign query keys; no key twice; `Action=GetCallerIdentity`;
//! `x-k8s-aws-id` among the signed headers; `X-Amz-Expires` at most 900; `X-Amz-Date` at most
//! 15 minutes old (and not in the future).

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use time::OffsetDateTime;

/// Prefix of every token.
pub const PREFIX: &str = "k8s-aws-v1.";
/// Longest presign lifetime the authenticator accepts, in seconds.
pub const MAX_EXPIRES_SECS: i64 = 900;
/// Oldest signing time accepted, in seconds before now.
pub const MAX_AGE_SECS: i64 = 15 * 60;
/// Allowed clock skew into the future, in seconds.
pub const MAX_FUTURE_SKEW_SECS: i64 = 5 * 60;

/// Partition DNS suffixes with the region prefixes that belong to them.
const PARTITIONS: &[(&str, &[&str])] = &[
    ("amazonaws.com.cn", &["cn-"]),
    ("c2s.ic.gov", &["us-iso-"]),
    ("sc2s.sgov.gov", &["us-isob-"]),
    ("cloud.adc-e.uk", &["eu-isoe-"]),
    ("csp.hci.ic.gov", &["us-isof-"]),
    ("amazonaws.eu", &["eusc-"]),
    (
        "amazonaws.com",
        &[
            "us-", "eu-", "ap-", "sa-", "ca-", "me-", "af-", "il-", "mx-",
        ],
    ),
];

/// The query keys a presigned GetCallerIdentity URL may carry (compared case-insensitively).
const ALLOWED_KEYS: &[&str] = &[
    "action",
    "version",
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-security-token",
    "x-amz-signature",
    "x-amz-signedheaders",
];

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Does not start with `k8s-aws-v1.`.
    Prefix,
    /// Not base64url without padding.
    Encoding(String),
    /// Not a URL.
    Url(String),
    /// Not https.
    Scheme(String),
    /// Not a regional STS host of a known partition.
    Host(String),
    /// Path other than `/`.
    Path(String),
    /// A query key outside the allowed set.
    QueryKey(String),
    /// A query key given twice.
    DuplicateKey(String),
    /// A required parameter is missing or malformed.
    Param(String),
    /// `Action` is not `GetCallerIdentity`.
    Action(String),
    /// `x-k8s-aws-id` is not signed.
    SignedHeaders(String),
    /// `X-Amz-Expires` over the limit.
    Expires(i64),
    /// `X-Amz-Date` too old or in the future.
    Date(String),
    /// Region in the credential scope differs from the host's.
    Scope(String),
    /// The signature differs from botocore's.
    Signature {
        /// In the token.
        got: String,
        /// botocore's.
        want: String,
    },
}

/// A token that passed the structural checks.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The decoded URL.
    pub url: url::Url,
    /// The STS host.
    pub host: String,
    /// The region of the host.
    pub region: String,
    /// From the credential scope.
    pub access_key_id: String,
    /// `X-Amz-Date`.
    pub amz_date: String,
    /// `X-Amz-Expires`.
    pub expires: i64,
    /// `X-Amz-Security-Token`, if any.
    pub session_token: Option<String>,
    /// `X-Amz-Signature`.
    pub signature: String,
}

/// Applies the authenticator's rules at `now`.
pub fn check(token: &str, now: OffsetDateTime) -> Result<Checked, Rejection> {
    let b64 = token.strip_prefix(PREFIX).ok_or(Rejection::Prefix)?;
    if b64.contains('=') {
        return Err(Rejection::Encoding("padding".into()));
    }
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|e| Rejection::Encoding(e.to_string()))?;
    let text = String::from_utf8(raw).map_err(|e| Rejection::Encoding(e.to_string()))?;
    let url = url::Url::parse(&text).map_err(|e| Rejection::Url(e.to_string()))?;
    if url.scheme() != "https" {
        return Err(Rejection::Scheme(url.scheme().into()));
    }
    let host = url.host_str().unwrap_or_default().to_owned();
    if url.port().is_some() {
        return Err(Rejection::Host(format!("{host} with a port")));
    }
    let region = sts_region(&host).ok_or_else(|| Rejection::Host(host.clone()))?;
    if url.path() != "/" {
        return Err(Rejection::Path(url.path().into()));
    }
    let mut seen = std::collections::BTreeMap::new();
    for (k, v) in url.query_pairs() {
        let lower = k.to_ascii_lowercase();
        if !ALLOWED_KEYS.contains(&lower.as_str()) {
            return Err(Rejection::QueryKey(k.into_owned()));
        }
        if seen.insert(lower, v.into_owned()).is_some() {
            return Err(Rejection::DuplicateKey(k.into_owned()));
        }
    }
    let get = |k: &str| {
        seen.get(k)
            .cloned()
            .ok_or_else(|| Rejection::Param(format!("{k} missing")))
    };
    let action = get("action")?;
    if action != "GetCallerIdentity" {
        return Err(Rejection::Action(action));
    }
    let signed = get("x-amz-signedheaders")?;
    if !signed
        .split(';')
        .any(|h| h.eq_ignore_ascii_case("x-k8s-aws-id"))
    {
        return Err(Rejection::SignedHeaders(signed));
    }
    let expires: i64 = get("x-amz-expires")?
        .parse()
        .map_err(|_| Rejection::Param("X-Amz-Expires not a number".into()))?;
    if !(1..=MAX_EXPIRES_SECS).contains(&expires) {
        return Err(Rejection::Expires(expires));
    }
    let amz_date = get("x-amz-date")?;
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let signed_at = time::PrimitiveDateTime::parse(&amz_date, &fmt)
        .map_err(|_| Rejection::Date(format!("{amz_date} is not YYYYMMDDTHHMMSSZ")))?
        .assume_utc();
    let age = (now - signed_at).whole_seconds();
    if !(-MAX_FUTURE_SKEW_SECS..=MAX_AGE_SECS).contains(&age) {
        return Err(Rejection::Date(format!("{amz_date} is {age} s old")));
    }
    let credential = get("x-amz-credential")?;
    let parts: Vec<&str> = credential.split('/').collect();
    if parts.len() != 5 || parts[2] != region || parts[3] != "sts" || parts[4] != "aws4_request" {
        return Err(Rejection::Scope(credential));
    }
    if get("x-amz-algorithm")? != "AWS4-HMAC-SHA256" {
        return Err(Rejection::Param("X-Amz-Algorithm".into()));
    }
    Ok(Checked {
        host: host.clone(),
        region: region.to_owned(),
        access_key_id: parts[0].to_owned(),
        amz_date,
        expires,
        session_token: seen.get("x-amz-security-token").cloned(),
        signature: get("x-amz-signature")?,
        url,
    })
}

/// The region of a regional STS host of a known partition (`sts.<region>.<suffix>`).
pub fn sts_region(host: &str) -> Option<&str> {
    let rest = host.strip_prefix("sts.")?;
    for (suffix, prefixes) in PARTITIONS {
        if let Some(region) = rest.strip_suffix(suffix).and_then(|r| r.strip_suffix('.')) {
            let well_formed = region.split('-').count() >= 3
                && region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && region
                    .rsplit('-')
                    .next()
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if well_formed && prefixes.iter().any(|p| region.starts_with(p)) {
                return Some(region);
            }
            return None;
        }
    }
    None
}

/// Secret half of the credentials the token was signed with, for the signature check.
#[derive(Debug, Clone)]
pub struct SigningSecret {
    /// Secret access key.
    pub secret_access_key: String,
}

/// Recomputes the signature with botocore for the token's own access key, session token,
/// region, date and lifetime, plus `secret` and `cluster_id`, and compares.
pub fn check_signature(
    checked: &Checked,
    secret: &SigningSecret,
    cluster_id: &str,
) -> Result<(), Rejection> {
    let spec = serde_json::json!({
        "access_key": checked.access_key_id,
        "secret_key": secret.secret_access_key,
        "session_token": checked.session_token,
        "region": checked.region,
        "host": checked.host,
        "cluster_id": cluster_id,
        "amz_date": checked.amz_date,
        "expires": checked.expires,
    });
    let script = crate::repo_root().join("tests/python/presign_sts.py");
    let mut child = Command::new(crate::venv_bin("python"))
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the botocore presigner");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(spec.to_string().as_bytes())
        .expect("write to the botocore presigner");
    let out = child.wait_with_output().expect("botocore presigner output");
    assert!(
        out.status.success(),
        "botocore presigner failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("botocore presigner JSON");
    let want = answer["signature"].as_str().expect("signature").to_owned();
    if want == checked.signature {
        Ok(())
    } else {
        Err(Rejection::Signature {
            got: checked.signature.clone(),
            want,
        })
    }
}

/// All checks: the rules at `now`, then the signature.
pub fn verify(
    token: &str,
    cluster_id: &str,
    secret: &SigningSecret,
    now: OffsetDateTime,
) -> Result<Checked, Rejection> {
    let checked = check(token, now)?;
    check_signature(&checked, secret, cluster_id)?;
    Ok(checked)
}

/// Encodes a URL as a token (for building negative cases).
pub fn encode(url: &str) -> String {
    format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url)
    )
}

/// Decodes a token's URL (panics on a malformed token: for building negative cases).
pub fn decode(token: &str) -> String {
    let b64 = token.strip_prefix(PREFIX).expect("token prefix");
    String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .expect("base64url"),
    )
    .expect("utf-8")
}
