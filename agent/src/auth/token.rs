//! The kubelet's token: a presigned STS `GetCallerIdentity` URL, bound to the cluster by the
//! signed `x-k8s-aws-id` header, encoded as `k8s-aws-v1.` + base64url (no padding), and the
//! `ExecCredential` that carries it. Signing is aws-sigv4's query-parameter (presign) mode.
//!
//! Everything here is pure except [`TokenCache`], which reads and writes one small file.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::Error;
use crate::model::Region;

/// What every token starts with.
pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";
/// The signed header that binds the token to one cluster.
pub const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";
/// Lifetime of the presigned URL (`X-Amz-Expires`), as aws-iam-authenticator uses.
pub const PRESIGN_EXPIRES_SECS: u64 = 60;
/// How long the kubelet may use a token: the authenticator accepts it for 15 minutes after
/// signing; we tell the kubelet 14 so it refreshes a minute early.
pub const TOKEN_LIFETIME_SECS: u64 = 14 * 60;
/// A cached token is reused until this long before its expiration.
pub const CACHE_REUSE_MARGIN_SECS: u64 = 60;
/// The STS API version the token's request names.
pub const STS_API_VERSION: &str = "2011-06-15";
/// The `ExecCredential` API version used when the kubelet does not say.
pub const DEFAULT_EXEC_API_VERSION: &str = "client.authentication.k8s.io/v1beta1";
/// The `ExecCredential` API versions this plugin speaks.
pub const SUPPORTED_EXEC_API_VERSIONS: &[&str] = &[
    "client.authentication.k8s.io/v1",
    "client.authentication.k8s.io/v1beta1",
];
/// Longest cluster id accepted (EKS cluster names are at most 100 characters).
pub const MAX_CLUSTER_ID_LEN: usize = 100;

/// RFC 3986 unreserved characters stay; everything else is percent-encoded (SigV4 encoding).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The cluster a token is for: its name, or its id for local clusters on Outposts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClusterId(String);

impl ClusterId {
    /// Parses a cluster id: 1 to 100 characters of letters, digits, `-`, `_` and `.`.
    pub fn parse(value: &str, source_name: &str) -> Result<ClusterId, Error> {
        let ok = !value.is_empty()
            && value.len() <= MAX_CLUSTER_ID_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(ClusterId(value.to_owned()))
        } else {
            Err(Error::InvalidInput {
                source_name: source_name.to_owned(),
                field: "cluster id",
                reason: format!(
                    "{value:?} is not a cluster name or id: use 1 to {MAX_CLUSTER_ID_LEN} letters, digits, '-', '_' or '.'"
                ),
            })
        }
    }

    /// The cluster id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A signed token and when the kubelet must replace it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// `k8s-aws-v1.` + base64url of the presigned URL.
    pub token: String,
    /// The time of signing plus [`TOKEN_LIFETIME_SECS`].
    pub expiration: SystemTime,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a bearer credential (and may carry a session token): never printed.
        f.debug_struct("Token")
            .field("token", &"** redacted **")
            .field("expiration", &self.expiration)
            .finish()
    }
}

/// The presigned `GetCallerIdentity` URL for `cluster` in `region`, signed at `now`.
pub fn presign_url(
    credentials: &Credentials,
    region: &Region,
    cluster: &ClusterId,
    now: SystemTime,
) -> Result<String, Error> {
    let host = region.sts_host();
    let base = format!("https://{host}/?Action=GetCallerIdentity&Version={STS_API_VERSION}");
    let sign_err = |e: Box<dyn std::error::Error + Send + Sync>| Error::Sign {
        host: host.clone(),
        source: e,
    };

    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(PRESIGN_EXPIRES_SECS));
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region.as_str())
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| sign_err(Box::new(e)))?
        .into();
    let request = SignableRequest::new(
        "GET",
        base.as_str(),
        [(CLUSTER_ID_HEADER, cluster.as_str())].into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| sign_err(Box::new(e)))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| sign_err(Box::new(e)))?
        .into_parts();

    let mut query: Vec<(Cow<'_, str>, Cow<'_, str>)> = vec![
        ("Action".into(), "GetCallerIdentity".into()),
        ("Version".into(), STS_API_VERSION.into()),
    ];
    let mut signature = None;
    for (k, v) in instructions.params() {
        if *k == "X-Amz-Signature" {
            signature = Some(v.clone());
        } else {
            query.push((Cow::Borrowed(*k), v.clone()));
        }
    }
    // Same layout as the Go SDK's presigner (and so aws-iam-authenticator): the signed
    // parameters sorted by name, then the signature last.
    query.sort();
    query.extend(signature.map(|s| (Cow::Borrowed("X-Amz-Signature"), s)));
    let encoded: Vec<String> = query
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, QUERY_VALUE),
                utf8_percent_encode(v, QUERY_VALUE)
            )
        })
        .collect();
    Ok(format!("https://{host}/?{}", encoded.join("&")))
}

/// Signs a token for `cluster` in `region` at `now`.
pub fn sign_token(
    credentials: &Credentials,
    region: &Region,
    cluster: &ClusterId,
    now: SystemTime,
) -> Result<Token, Error> {
    let url = presign_url(credentials, region, cluster, now)?;
    Ok(Token {
        token: format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url)
        ),
        expiration: now + Duration::from_secs(TOKEN_LIFETIME_SECS),
    })
}

/// The `ExecCredential` API version to answer with, from the kubelet's `KUBERNETES_EXEC_INFO`
/// (a JSON `ExecCredential` whose `apiVersion` we echo); unset or empty means the default.
pub fn exec_api_version(exec_info: Option<&str>) -> Result<String, Error> {
    let Some(info) = exec_info.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(DEFAULT_EXEC_API_VERSION.to_owned());
    };
    #[derive(Deserialize)]
    struct Info {
        #[serde(rename = "apiVersion", default)]
        api_version: String,
    }
    let parsed: Info = serde_json::from_str(info).map_err(|e| Error::InvalidInput {
        source_name: "KUBERNETES_EXEC_INFO".into(),
        field: "ExecCredential JSON",
        reason: format!("not valid JSON ({e}); unset it or let the kubelet set it"),
    })?;
    if parsed.api_version.is_empty() {
        return Ok(DEFAULT_EXEC_API_VERSION.to_owned());
    }
    if SUPPORTED_EXEC_API_VERSIONS.contains(&parsed.api_version.as_str()) {
        Ok(parsed.api_version)
    } else {
        Err(Error::InvalidInput {
            source_name: "KUBERNETES_EXEC_INFO".into(),
            field: "apiVersion",
            reason: format!(
                "{:?} is not supported; use one of {} in the kubeconfig's exec.apiVersion",
                parsed.api_version,
                SUPPORTED_EXEC_API_VERSIONS.join(", ")
            ),
        })
    }
}

/// The `ExecCredential` object printed for the kubelet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecCredential {
    /// Always `ExecCredential`.
    pub kind: String,
    /// The API version the kubelet asked for.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// Empty.
    pub spec: serde_json::Map<String, serde_json::Value>,
    /// The token and its expiration.
    pub status: ExecCredentialStatus,
}

/// `ExecCredential.status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecCredentialStatus {
    /// RFC 3339 UTC.
    #[serde(rename = "expirationTimestamp")]
    pub expiration_timestamp: String,
    /// The bearer token.
    pub token: String,
}

impl ExecCredential {
    /// Wraps a token.
    pub fn new(api_version: &str, token: &Token) -> ExecCredential {
        ExecCredential {
            kind: "ExecCredential".into(),
            api_version: api_version.to_owned(),
            spec: serde_json::Map::new(),
            status: ExecCredentialStatus {
                expiration_timestamp: crate::model::text::rfc3339(token.expiration),
                token: token.token.clone(),
            },
        }
    }
}

/// What identifies a cached token: the same cluster, region, role and credential source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    /// The cluster.
    pub cluster: ClusterId,
    /// The STS region.
    pub region: Region,
    /// The role assumed first, if any.
    pub role_arn: Option<String>,
    /// The credential source (profile name or `default`); never a secret.
    pub source: String,
}

impl CacheKey {
    /// The cache file name: a digest of the key, so names leak nothing and never collide.
    pub fn file_name(&self) -> String {
        let mut h = sha2::Sha256::new();
        for part in [
            self.cluster.as_str(),
            self.region.as_str(),
            self.role_arn.as_deref().unwrap_or(""),
            self.source.as_str(),
        ] {
            h.update(part.len().to_le_bytes());
            h.update(part.as_bytes());
        }
        format!("token-{}.json", &hex::encode(h.finalize())[..32])
    }
}

#[derive(Serialize, Deserialize)]
struct CachedToken {
    token: String,
    expiration: String,
}

/// Tokens kept on disk (mode 0600, written atomically by the caller) and reused until
/// [`CACHE_REUSE_MARGIN_SECS`] before they expire.
#[derive(Debug, Clone)]
pub struct TokenCache {
    dir: PathBuf,
}

/// Where the agent keeps state; tokens go in `token-cache/` below it.
pub const DEFAULT_STATE_DIR: &str = crate::model::paths::AGENT_STATE_DIR;
/// The cache directory below the state directory.
pub const CACHE_SUBDIR: &str = "token-cache";

impl TokenCache {
    /// A cache in `dir` (created on first store, mode 0700).
    pub fn at(dir: impl Into<PathBuf>) -> TokenCache {
        TokenCache { dir: dir.into() }
    }

    /// The cache under the agent's default state directory.
    pub fn host() -> TokenCache {
        TokenCache::at(Path::new(DEFAULT_STATE_DIR).join(CACHE_SUBDIR))
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A cached token for `key` still good at `now` plus the margin; `None` when there is none,
    /// it is stale, or the file is unreadable (a bad cache is never an error, only a miss).
    pub fn load(&self, key: &CacheKey, now: SystemTime) -> Option<Token> {
        let path = self.dir.join(key.file_name());
        let bytes = std::fs::read(&path).ok()?;
        let cached: CachedToken = serde_json::from_slice(&bytes).ok()?;
        let expiration = crate::model::text::parse_rfc3339(&cached.expiration)?;
        let fresh = expiration
            .duration_since(now)
            .is_ok_and(|left| left > Duration::from_secs(CACHE_REUSE_MARGIN_SECS));
        (fresh && cached.token.starts_with(TOKEN_PREFIX)).then_some(Token {
            token: cached.token,
            expiration,
        })
    }

    /// Where the token for `key` is kept, and the bytes to keep there. The caller writes them
    /// (0600, in a 0700 directory) with the agent's one atomic write,
    /// `apply::file::write_secret`.
    pub fn entry(&self, key: &CacheKey, token: &Token) -> (PathBuf, Vec<u8>) {
        let body = serde_json::to_vec(&CachedToken {
            token: token.token.clone(),
            expiration: crate::model::text::rfc3339(token.expiration),
        })
        .unwrap_or_default();
        (self.dir.join(key.file_name()), body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector_time() -> SystemTime {
        SystemTime::from(time::macros::datetime!(2023-04-28 00:00:00 UTC))
    }

    fn vector_creds() -> Credentials {
        Credentials::new(
            "ASIAR2TG44V6AS3ZZE7C",
            "4KD5cntGcVmLWRdF5wvNRuzNL5Qxmp6OKVY6Fz/Q",
            None,
            None,
            "test",
        )
    }

    fn decode(token: &str) -> String {
        let b64 = token.strip_prefix(TOKEN_PREFIX).unwrap();
        String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(b64)
                .unwrap(),
        )
        .unwrap()
    }

    /// The vector published with aws-iam-authenticator reproduces byte for byte.
    #[test]
    fn aws_iam_authenticator_vector() {
        let region = Region::parse("us-west-2", "test").unwrap();
        let cluster = ClusterId::parse("test-cluster", "test").unwrap();
        let token = sign_token(&vector_creds(), &region, &cluster, vector_time()).unwrap();
        let url = decode(&token.token);
        assert_eq!(
            url,
            "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15\
             &X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=ASIAR2TG44V6AS3ZZE7C%2F20230428%2Fus-west-2%2Fsts%2Faws4_request\
             &X-Amz-Date=20230428T000000Z&X-Amz-Expires=60\
             &X-Amz-SignedHeaders=host%3Bx-k8s-aws-id\
             &X-Amz-Signature=e211dba77aba9dc44b0b6be38b8eaad092599c5157f6314444c5b9d85747f5ce"
        );
        let cred = ExecCredential::new(DEFAULT_EXEC_API_VERSION, &token);
        assert_eq!(cred.status.expiration_timestamp, "2023-04-28T00:14:00Z");
        assert!(!token.token.contains('='), "no padding");
    }

    #[test]
    fn session_token_goes_in_the_query_and_is_signed() {
        let creds = Credentials::new(
            "AKID",
            "SECRET",
            Some("SESSION/TOKEN+=".into()),
            None,
            "test",
        );
        let region = Region::parse("cn-north-1", "test").unwrap();
        let cluster = ClusterId::parse("c", "test").unwrap();
        let url = presign_url(&creds, &region, &cluster, vector_time()).unwrap();
        assert!(
            url.starts_with("https://sts.cn-north-1.amazonaws.com.cn/?"),
            "{url}"
        );
        assert!(
            url.contains("&X-Amz-Security-Token=SESSION%2FTOKEN%2B%3D&"),
            "{url}"
        );
        let without = presign_url(
            &Credentials::new("AKID", "SECRET", Some("OTHER".into()), None, "test"),
            &region,
            &cluster,
            vector_time(),
        )
        .unwrap();
        let sig = |u: &str| u.split("X-Amz-Signature=").nth(1).unwrap()[..64].to_owned();
        assert_ne!(
            sig(&url),
            sig(&without),
            "the session token is part of the signature"
        );
    }

    #[test]
    fn exec_api_version_is_echoed_or_defaulted() {
        assert_eq!(exec_api_version(None).unwrap(), DEFAULT_EXEC_API_VERSION);
        assert_eq!(
            exec_api_version(Some("")).unwrap(),
            DEFAULT_EXEC_API_VERSION
        );
        let v1 = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#;
        assert_eq!(
            exec_api_version(Some(v1)).unwrap(),
            "client.authentication.k8s.io/v1"
        );
        let alpha = r#"{"apiVersion":"client.authentication.k8s.io/v1alpha1"}"#;
        let err = exec_api_version(Some(alpha)).unwrap_err();
        assert!(err.to_string().contains("KUBERNETES_EXEC_INFO"), "{err}");
        assert!(exec_api_version(Some("{not json")).is_err());
    }

    #[test]
    fn cluster_ids_are_checked() {
        assert!(ClusterId::parse("my-cluster_1.x", "--cluster-id").is_ok());
        for bad in ["", "a b", "x\ny", &"a".repeat(101)] {
            assert!(ClusterId::parse(bad, "--cluster-id").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cache_reuses_until_a_minute_before_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::at(dir.path().join("cache"));
        let key = CacheKey {
            cluster: ClusterId::parse("c", "t").unwrap(),
            region: Region::parse("us-west-2", "t").unwrap(),
            role_arn: None,
            source: "default".into(),
        };
        let now = vector_time();
        let token = Token {
            token: format!("{TOKEN_PREFIX}abc"),
            expiration: now + Duration::from_secs(TOKEN_LIFETIME_SECS),
        };
        assert!(cache.load(&key, now).is_none());
        // The CLI writes the entry with apply::file::write_secret (0600; tested there).
        let (path, bytes) = cache.entry(&key, &token);
        assert_eq!(path, cache.dir().join(key.file_name()));
        std::fs::create_dir_all(cache.dir()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(cache.load(&key, now), Some(token.clone()));
        assert_eq!(
            cache.load(&key, now + Duration::from_secs(12 * 60 + 59)),
            Some(token.clone())
        );
        assert_eq!(cache.load(&key, now + Duration::from_secs(13 * 60)), None);
        let other = CacheKey {
            role_arn: Some("arn:aws:iam::1:role/x".into()),
            ..key.clone()
        };
        assert_eq!(cache.load(&other, now), None);
        std::fs::write(&path, b"garbage").unwrap();
        assert_eq!(cache.load(&key, now), None);
    }
}
