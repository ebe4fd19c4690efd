//! Reading artifacts from a directory or an HTTP(S) mirror into a staging file while hashing.
//!
//! HTTP: every attempt has a connect timeout, a timeout until the response headers and an idle
//! timeout between body chunks (a large binary on a slow link is fine; a stalled one is not).
//! Failures are retried under the agent's retry policy ([`crate::net::retry`]: connection
//! errors, timeouts, 408, 429 and 5xx but 501, with capped backoff); 404 and 410 are not (the
//! mirror does not have the file: bad input); other statuses are not either. A body larger
//! than the cap is refused as soon as the cap is passed.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::Error;
use crate::model::text::error_chain;
use crate::net::retry::{NoAnswer, UNBOUNDED, is_retryable_error, is_retryable_status};
use crate::net::{Attempt, ClientBuilder, Proxy, RetryPolicy, Trust};

/// Connect timeout of one HTTP attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time from request to response headers in one attempt.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest pause between two body chunks.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How one file is fetched again: 4 attempts, backoff from 500 ms doubling to 8 s. Neither an
/// attempt nor the whole is bounded in time: the response and idle timeouts bound a download
/// by its progress, so a large file on a slow link still arrives.
pub const RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 4,
    initial_backoff: Duration::from_millis(500),
    max_backoff: Duration::from_secs(8),
    attempt_timeout: UNBOUNDED,
    total_deadline: UNBOUNDED,
};
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
    /// Attempts and backoff per file.
    pub retry: RetryPolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            connect_timeout: CONNECT_TIMEOUT,
            response_timeout: RESPONSE_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            retry: RETRY,
        }
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
        // Shown masked and bounded: a URL may carry a password, which is refused, never echoed.
        let bad = |reason: String| Error::BadSource {
            given: crate::model::text::shorten(given).into_owned(),
            reason,
        };
        if given.starts_with("http://") || given.starts_with("https://") {
            let mut url = url::Url::parse(given).map_err(|e| {
                bad(format!(
                    "not a URL ({e}); use e.g. https://mirror.example.com/eks/1.33/"
                ))
            })?;
            if url.query().is_some()
                || url.fragment().is_some()
                || !url.username().is_empty()
                || url.password().is_some()
            {
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
        let (result, _) = self
            .policy
            .retry
            .run(
                |n| async move {
                    match self.attempt(client, url, cap, dest, n).await {
                        Ok(fetched) => Attempt::Done(fetched),
                        Err(Failed::Retry(e)) => {
                            tracing::warn!(url = %url, attempt = n, error = %error_chain(&e), "download failed");
                            Attempt::Retry(e)
                        }
                        Err(Failed::Final(e)) => Attempt::Fail(e),
                    }
                },
                |n, bound| download_failed(url, n, "no answer", Some(NoAnswer::TimedOut(bound))),
            )
            .await;
        result
    }

    /// The `n`-th attempt at `url`.
    async fn attempt(
        &self,
        client: &reqwest::Client,
        url: &url::Url,
        cap: u64,
        dest: &Path,
        n: u32,
    ) -> Result<Fetched, Failed> {
        let io_err = |source| {
            Failed::Final(Error::Io {
                what: "staging file",
                path: dest.to_path_buf(),
                source,
            })
        };
        let retry = |reason: &str, source: Option<NoAnswer>| {
            Failed::Retry(download_failed(url, n, reason, source))
        };
        let sent =
            tokio::time::timeout(self.policy.response_timeout, client.get(url.clone()).send())
                .await;
        let mut resp = match sent {
            Err(_) => {
                let waited = self.policy.response_timeout.as_secs_f32();
                return Err(retry(&format!("no response within {waited} s"), None));
            }
            Ok(Err(e)) if is_retryable_error(&e) => {
                return Err(retry("no answer", Some(NoAnswer::Http(e))));
            }
            Ok(Err(e)) => {
                let failed = download_failed(url, n, "no answer", Some(NoAnswer::Http(e)));
                return Err(Failed::Final(failed));
            }
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
            return Err(Failed::Final(Error::NotFound {
                location: url.to_string(),
                reason: format!("HTTP {status}"),
            }));
        }
        if is_retryable_status(status.as_u16()) {
            return Err(retry(&format!("HTTP {status}"), None));
        }
        if !status.is_success() {
            let reason = format!("HTTP {status} (not retried)");
            return Err(Failed::Final(download_failed(url, n, &reason, None)));
        }
        if let Some(len) = resp.content_length()
            && len > cap
        {
            return Err(Failed::Final(Error::TooLarge {
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
                    let idle = self.policy.idle_timeout.as_secs_f32();
                    return Err(retry(&format!("the body stalled for {idle} s"), None));
                }
                Ok(Err(e)) => return Err(retry("the body broke off", Some(NoAnswer::Http(e)))),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(c))) => c,
            };
            if !sink.take(&chunk).map_err(io_err)? {
                return Err(Failed::Final(Error::TooLarge {
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

/// A failed attempt: worth another or not.
enum Failed {
    Retry(Error),
    Final(Error),
}

/// The error of a download that failed at its `attempts`-th attempt.
fn download_failed(url: &url::Url, attempts: u32, reason: &str, source: Option<NoAnswer>) -> Error {
    Error::Download {
        url: url.to_string(),
        attempts,
        reason: reason.to_owned(),
        source,
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

/// The HTTP client: the system's CAs plus those of `ca_bundle` (a mirror's private CA), the
/// environment's proxy, bounded connects.
fn http_client(policy: &Policy, ca_bundle: Option<&Path>) -> Result<reqwest::Client, Error> {
    let trust = match ca_bundle {
        Some(path) => Trust::SystemAnd(path.to_owned()),
        None => Trust::System,
    };
    ClientBuilder::new()
        .trust(trust)
        .proxy(Proxy::FromEnvironment)
        .connect_timeout(policy.connect_timeout)
        .build()
        .map_err(|source| Error::Client {
            purpose: "the mirror",
            source,
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
