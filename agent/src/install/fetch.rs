//! Reading artifacts from a directory or an HTTP(S) mirror into a staging file while hashing.
//!
//! HTTP: every attempt has a connect timeout, a timeout until the response headers and an idle
//! timeout between body chunks (a large binary on a slow link is fine; a stalled one is not).
//! Connection errors, timeouts, 408, 429 and 5xx are retried with exponential backoff; 404 and
//! 410 are not (the mirror does not have the file: bad input); other statuses are not either.
//! A body larger than the cap is refused as soon as the cap is passed.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::Error;

/// Connect timeout of one HTTP attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time from request to response headers in one attempt.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest pause between two body chunks.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts per file.
pub const ATTEMPTS: u32 = 4;
/// First backoff; doubled after each failure.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Largest backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// Copy buffer size for directory sources.
const BUFFER_BYTES: usize = 64 * 1024;

/// Timeouts and retries of HTTP fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Request to response headers.
    pub response_timeout: Duration,
    /// Longest pause between body chunks.
    pub idle_timeout: Duration,
    /// Attempts per file.
    pub attempts: u32,
    /// First backoff.
    pub initial_backoff: Duration,
    /// Largest backoff.
    pub max_backoff: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            connect_timeout: CONNECT_TIMEOUT,
            response_timeout: RESPONSE_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            attempts: ATTEMPTS,
            initial_backoff: INITIAL_BACKOFF,
            max_backoff: MAX_BACKOFF,
        }
    }
}

impl Policy {
    /// The backoff after the `failures`-th failure (1-based), capped.
    pub fn backoff(&self, failures: u32) -> Duration {
        self.initial_backoff
            .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
            .min(self.max_backoff)
    }
}

/// Where artifacts come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A local directory (or mounted media).
    Dir(PathBuf),
    /// An HTTP(S) mirror; the base URL ends with `/`.
    Url(url::Url),
}

impl Source {
    /// Parses `--from`: `http://` or `https://` URLs are mirrors, `file://` URLs and anything
    /// else are directories. A value naming the manifest itself stands for its directory.
    pub fn parse(given: &str) -> Result<Source, Error> {
        let bad = |reason: String| Error::BadSource {
            given: given.to_owned(),
            reason,
        };
        if given.starts_with("http://") || given.starts_with("https://") {
            let mut url = url::Url::parse(given).map_err(|e| {
                bad(format!(
                    "not a URL ({e}); use e.g. https://mirror.example.com/eks/1.33/"
                ))
            })?;
            if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
                return Err(bad(
                    "a mirror URL takes no query, fragment or credentials; use the base URL of the directory holding manifest.json".into(),
                ));
            }
            let path = url.path().to_owned();
            if path.ends_with(&format!("/{}", super::artifacts::MANIFEST_NAME)) {
                let base = &path[..path.len() - super::artifacts::MANIFEST_NAME.len()];
                url.set_path(base);
            } else if !path.ends_with('/') {
                url.set_path(&format!("{path}/"));
            }
            return Ok(Source::Url(url));
        }
        let path = match given.strip_prefix("file://") {
            Some(p) => PathBuf::from(p),
            None if given.contains("://") => {
                return Err(bad(
                    "only http://, https:// and file:// URLs or a directory path are supported"
                        .into(),
                ));
            }
            None => PathBuf::from(given),
        };
        if path.as_os_str().is_empty() {
            return Err(bad(
                "empty path; name the directory holding manifest.json".into()
            ));
        }
        let dir = if path
            .file_name()
            .is_some_and(|n| n == super::artifacts::MANIFEST_NAME)
        {
            path.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            path
        };
        Ok(Source::Dir(dir))
    }

    /// The full location of a mirror-relative file, for messages.
    pub fn locate(&self, file: &str) -> String {
        match self {
            Source::Dir(d) => d.join(file).display().to_string(),
            Source::Url(u) => u.join(file).map(|u| u.to_string()).unwrap_or_default(),
        }
    }
}

/// What a fetch produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// Number of bytes.
    pub size: u64,
}

/// Reads files from a [`Source`].
#[derive(Debug, Clone)]
pub struct Fetcher {
    source: Source,
    client: Option<reqwest::Client>,
    policy: Policy,
}

/// A sink that hashes, counts and enforces a cap.
struct Sink<'a> {
    file: &'a mut File,
    hasher: Sha256,
    size: u64,
    cap: u64,
}

impl Sink<'_> {
    /// Takes a chunk; `Ok(false)` once the cap is passed (the chunk is not written).
    fn take(&mut self, chunk: &[u8]) -> std::io::Result<bool> {
        self.size += chunk.len() as u64;
        if self.size > self.cap {
            return Ok(false);
        }
        self.hasher.update(chunk);
        self.file.write_all(chunk)?;
        Ok(true)
    }
}

/// One failed HTTP attempt: retry or not.
enum Attempt {
    Retry(String),
    Fatal(Error),
}

impl Fetcher {
    /// A fetcher for `source`; `ca_bundle` adds PEM roots for HTTPS mirrors with a private CA.
    pub fn new(source: Source, policy: Policy, ca_bundle: Option<&Path>) -> Result<Fetcher, Error> {
        let client = match &source {
            Source::Dir(_) => None,
            Source::Url(url) => {
                if url.scheme() == "http" {
                    tracing::warn!(url = %url, "plain-HTTP mirror: the manifest is not authenticated; prefer https");
                }
                Some(http_client(&policy, ca_bundle)?)
            }
        };
        Ok(Fetcher {
            source,
            client,
            policy,
        })
    }

    /// The source.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Copies the mirror-relative `file` to `dest` (created or truncated), at most `cap`
    /// bytes, and returns its hash and size.
    pub async fn fetch_to(&self, file: &str, cap: u64, dest: &Path) -> Result<Fetched, Error> {
        match (&self.source, &self.client) {
            (Source::Url(base), Some(client)) => {
                let url = base.join(file).map_err(|e| Error::BadSource {
                    given: base.to_string(),
                    reason: format!("cannot join {file:?}: {e}"),
                })?;
                self.fetch_url(client, &url, cap, dest).await
            }
            (Source::Dir(dir), _) => copy_file(&dir.join(file), cap, dest),
            (Source::Url(_), None) => Err(Error::BadSource {
                given: self.source.locate(file),
                reason: "no HTTP client".into(),
            }),
        }
    }

    /// Reads a small file (the manifest) whole.
    pub async fn fetch_small(
        &self,
        file: &str,
        cap: u64,
        staging: &Path,
    ) -> Result<Vec<u8>, Error> {
        let dest = staging.join(".small");
        self.fetch_to(file, cap, &dest).await?;
        let bytes = std::fs::read(&dest).map_err(|source| Error::Io {
            what: "staged file",
            path: dest.clone(),
            source,
        })?;
        let _ = std::fs::remove_file(&dest);
        Ok(bytes)
    }

    async fn fetch_url(
        &self,
        client: &reqwest::Client,
        url: &url::Url,
        cap: u64,
        dest: &Path,
    ) -> Result<Fetched, Error> {
        let mut failures = 0;
        loop {
            match self.attempt(client, url, cap, dest).await {
                Ok(f) => return Ok(f),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(reason)) => {
                    failures += 1;
                    if failures >= self.policy.attempts {
                        return Err(Error::Download {
                            url: url.to_string(),
                            attempts: failures,
                            reason,
                        });
                    }
                    let wait = self.policy.backoff(failures);
                    tracing::warn!(url = %url, attempt = failures, reason = %reason, backoff_ms = wait.as_millis() as u64, "download failed; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn attempt(
        &self,
        client: &reqwest::Client,
        url: &url::Url,
        cap: u64,
        dest: &Path,
    ) -> Result<Fetched, Attempt> {
        let io_err = |source| {
            Attempt::Fatal(Error::Io {
                what: "staging file",
                path: dest.to_path_buf(),
                source,
            })
        };
        let sent =
            tokio::time::timeout(self.policy.response_timeout, client.get(url.clone()).send())
                .await;
        let mut resp = match sent {
            Err(_) => {
                return Err(Attempt::Retry(format!(
                    "no response within {} s",
                    self.policy.response_timeout.as_secs_f32()
                )));
            }
            Ok(Err(e)) => return Err(Attempt::Retry(error_chain(&e))),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
            return Err(Attempt::Fatal(Error::NotFound {
                location: url.to_string(),
                reason: format!("HTTP {status}"),
            }));
        }
        if status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
        {
            return Err(Attempt::Retry(format!("HTTP {status}")));
        }
        if !status.is_success() {
            return Err(Attempt::Fatal(Error::Download {
                url: url.to_string(),
                attempts: 1,
                reason: format!("HTTP {status} (not retried)"),
            }));
        }
        if let Some(len) = resp.content_length()
            && len > cap
        {
            return Err(Attempt::Fatal(Error::TooLarge {
                location: url.to_string(),
                cap,
            }));
        }
        let mut file = File::create(dest).map_err(io_err)?;
        let mut sink = Sink {
            file: &mut file,
            hasher: Sha256::new(),
            size: 0,
            cap,
        };
        loop {
            let chunk = match tokio::time::timeout(self.policy.idle_timeout, resp.chunk()).await {
                Err(_) => {
                    return Err(Attempt::Retry(format!(
                        "the body stalled for {} s",
                        self.policy.idle_timeout.as_secs_f32()
                    )));
                }
                Ok(Err(e)) => return Err(Attempt::Retry(error_chain(&e))),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(c))) => c,
            };
            if !sink.take(&chunk).map_err(io_err)? {
                return Err(Attempt::Fatal(Error::TooLarge {
                    location: url.to_string(),
                    cap,
                }));
            }
        }
        let (sha256, size) = (hex::encode(sink.hasher.finalize()), sink.size);
        file.sync_all().map_err(io_err)?;
        Ok(Fetched { sha256, size })
    }
}

/// Copies a local file to `dest` while hashing, at most `cap` bytes.
fn copy_file(path: &Path, cap: u64, dest: &Path) -> Result<Fetched, Error> {
    let mut input = File::open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound {
                location: path.display().to_string(),
                reason: "no such file".into(),
            }
        } else {
            Error::Io {
                what: "artifact",
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    let io_err = |what, p: &Path| {
        let p = p.to_path_buf();
        move |source| Error::Io {
            what,
            path: p,
            source,
        }
    };
    let mut file = File::create(dest).map_err(io_err("staging file", dest))?;
    let mut sink = Sink {
        file: &mut file,
        hasher: Sha256::new(),
        size: 0,
        cap,
    };
    let mut buf = vec![0u8; BUFFER_BYTES];
    loop {
        let n = input.read(&mut buf).map_err(io_err("artifact", path))?;
        if n == 0 {
            break;
        }
        if !sink.take(&buf[..n]).map_err(io_err("staging file", dest))? {
            return Err(Error::TooLarge {
                location: path.display().to_string(),
                cap,
            });
        }
    }
    let (sha256, size) = (hex::encode(sink.hasher.finalize()), sink.size);
    file.sync_all().map_err(io_err("staging file", dest))?;
    Ok(Fetched { sha256, size })
}

/// An error and its causes on one line (reqwest's Display alone hides the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

/// The HTTP client: rustls with the system roots (plus `ca_bundle`), bounded connects.
fn http_client(policy: &Policy, ca_bundle: Option<&Path>) -> Result<reqwest::Client, Error> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_bundle {
        let bad = |reason: String| Error::BadSource {
            given: format!("--ca-bundle {}", path.display()),
            reason,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(format!("cannot read PEM certificates: {e}")))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(format!("cannot read PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in the file".into()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::BadSource {
            given: "TLS".into(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(policy.connect_timeout)
        .build()
        .map_err(|e| Error::BadSource {
            given: "HTTP client".into(),
            reason: error_chain(&e),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn sources_parse() {
        let url = |s: &str| match Source::parse(s).unwrap() {
            Source::Url(u) => u.to_string(),
            Source::Dir(d) => panic!("dir {d:?}"),
        };
        assert_eq!(
            url("https://m.example.com/eks/1.33"),
            "https://m.example.com/eks/1.33/"
        );
        assert_eq!(
            url("https://m.example.com/eks/"),
            "https://m.example.com/eks/"
        );
        assert_eq!(
            url("http://127.0.0.1:8080/a/manifest.json"),
            "http://127.0.0.1:8080/a/"
        );
        assert_eq!(
            Source::parse("/mnt/eks").unwrap(),
            Source::Dir("/mnt/eks".into())
        );
        assert_eq!(
            Source::parse("file:///mnt/eks/manifest.json").unwrap(),
            Source::Dir("/mnt/eks".into())
        );
        for bad in ["ftp://x/", "https://u:p@x/", "https://x/?a=b", ""] {
            let err = Source::parse(bad).unwrap_err();
            assert!(err.to_string().contains("--from"), "{err}");
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = Policy::default();
        assert_eq!(p.backoff(1), INITIAL_BACKOFF);
        assert_eq!(p.backoff(2), INITIAL_BACKOFF * 2);
        assert_eq!(p.backoff(30), MAX_BACKOFF);
    }

    #[test]
    fn directory_copy_hashes_and_caps() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("a");
        std::fs::write(&src, b"test").unwrap();
        let got = copy_file(&src, 4, &tmp.path().join("b")).unwrap();
        assert_eq!(
            got.sha256,
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert_eq!(got.size, 4);
        let err = copy_file(&src, 3, &tmp.path().join("b")).unwrap_err();
        assert!(matches!(err, Error::TooLarge { cap: 3, .. }), "{err}");
        let err = copy_file(&tmp.path().join("missing"), 3, &tmp.path().join("b")).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
    }
}
