//! The bundle: each source captured with a time limit and a size cap, redacted
//! ([`crate::model::redact`]), and written into a gzip-compressed tar with a `manifest.json`
//! that lists every source, the file it became, its size, whether it was cut and any error.
//! A source that fails is recorded and the bundle goes on.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::AsyncReadExt;

use crate::model::redact::redact;

/// Most bytes kept of one source (logs keep their newest bytes, other sources their first).
pub const MAX_SOURCE_BYTES: usize = 32 * 1024 * 1024;
/// Most bytes of all sources together, before compression: the bundle is never larger.
pub const MAX_BUNDLE_BYTES: usize = 256 * 1024 * 1024;
/// How long one source may take.
pub const SOURCE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the whole collection may take; sources left then are recorded as skipped.
pub const BUNDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Most bytes of a command's stderr kept for its error.
const MAX_STDERR_BYTES: usize = 2048;
/// Read buffer.
const CHUNK: usize = 64 * 1024;

/// Where a file of the bundle comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A command's stdout.
    Command(Vec<String>),
    /// A journalctl query, newest first in JSON (`--reverse -o json`): read until the cap,
    /// so a large journal costs no more than its newest part, then written oldest first as
    /// text lines.
    Journal(Vec<String>),
    /// A file on the host (under the root).
    File(PathBuf),
    /// Text the collector made itself (the redacted NodeConfig, the IMDS identity...), or
    /// why it could not.
    Made(String, Result<String, String>),
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::Command(argv) | Source::Journal(argv) => argv.join(" "),
            Source::File(path) => format!("file {}", path.display()),
            Source::Made(what, _) => what.clone(),
        }
    }
}

/// One file of the bundle.
#[derive(Debug, Clone)]
pub struct Item {
    /// Its path in the bundle.
    pub path: String,
    /// Where it comes from.
    pub source: Source,
    /// Logs keep their newest bytes when cut; everything else its first.
    pub keep_tail: bool,
}

/// A source's line in the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The file in the bundle (absent when nothing was captured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The command, file or call it came from.
    pub source: String,
    /// Bytes in the bundle.
    pub bytes: usize,
    /// Cut at a cap (the manifest says which).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<String>,
    /// What went wrong, if anything (the captured part is kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long it took.
    pub millis: u128,
}

/// What a capture gave.
struct Captured {
    bytes: Vec<u8>,
    truncated: Option<String>,
    error: Option<String>,
}

/// Keeps at most `cap` bytes of what is pushed: the first ones, or the last ones.
struct Capped {
    buf: Vec<u8>,
    cap: usize,
    tail: bool,
    dropped: usize,
}

impl Capped {
    fn new(cap: usize, tail: bool) -> Capped {
        Capped {
            buf: Vec::new(),
            cap,
            tail,
            dropped: 0,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        if self.tail {
            self.buf.extend_from_slice(chunk);
            if self.buf.len() > self.cap * 2 {
                let cut = self.buf.len() - self.cap;
                self.dropped += cut;
                self.buf.drain(..cut);
            }
        } else {
            let room = self.cap.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            self.dropped += chunk.len().saturating_sub(room);
        }
    }

    fn finish(mut self) -> (Vec<u8>, usize) {
        if self.tail && self.buf.len() > self.cap {
            let cut = self.buf.len() - self.cap;
            self.dropped += cut;
            self.buf.drain(..cut);
        }
        (self.buf, self.dropped)
    }

    fn full(&self) -> bool {
        !self.tail && self.buf.len() >= self.cap
    }
}

fn cut_note(dropped: usize, cap: usize, tail: bool) -> Option<String> {
    (dropped > 0).then(|| {
        format!(
            "{dropped} bytes left out: {} {cap} bytes kept",
            if tail { "the last" } else { "the first" }
        )
    })
}

/// Runs `argv` with `limit`, keeping its stdout within `cap`.
async fn run_command(argv: &[String], cap: usize, tail: bool, limit: Duration) -> Captured {
    let Some((program, args)) = argv.split_first() else {
        return Captured {
            bytes: Vec::new(),
            truncated: None,
            error: Some("empty command".into()),
        };
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .env("LC_ALL", "C")
        .env("SYSTEMD_PAGER", "")
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Captured {
                bytes: Vec::new(),
                truncated: None,
                error: Some(format!("{program} is not installed")),
            };
        }
        Err(e) => {
            return Captured {
                bytes: Vec::new(),
                truncated: None,
                error: Some(format!("cannot run {program}: {e}")),
            };
        }
    };
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut out = Capped::new(cap, tail);
    let mut err = Capped::new(MAX_STDERR_BYTES, false);
    let read = async {
        let mut buf = vec![0u8; CHUNK];
        let mut ebuf = vec![0u8; 4096];
        let (mut out_open, mut err_open) = (stdout.is_some(), stderr.is_some());
        while out_open || err_open {
            tokio::select! {
                n = async { match stdout.as_mut() { Some(s) => s.read(&mut buf).await, None => Ok(0) } }, if out_open => {
                    match n {
                        Ok(0) | Err(_) => out_open = false,
                        Ok(n) => {
                            out.push(&buf[..n]);
                            // Enough of the head: stop reading (stderr too: it stays open
                            // while the command waits to write the rest, which is dropped).
                            if out.full() {
                                out.dropped += 1;
                                out_open = false;
                                err_open = false;
                            }
                        }
                    }
                }
                n = async { match stderr.as_mut() { Some(s) => s.read(&mut ebuf).await, None => Ok(0) } }, if err_open => {
                    match n {
                        Ok(0) | Err(_) => err_open = false,
                        Ok(n) => err.push(&ebuf[..n]),
                    }
                }
            }
        }
    };
    let timed_out = tokio::time::timeout(limit, read).await.is_err();
    let stopped_early = !tail && out.dropped > 0;
    let status = if timed_out || stopped_early {
        let _ = child.kill().await;
        None
    } else {
        match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
            Ok(Ok(s)) => Some(s),
            _ => {
                let _ = child.kill().await;
                None
            }
        }
    };
    let (bytes, dropped) = out.finish();
    let (stderr_text, _) = err.finish();
    let stderr_text = String::from_utf8_lossy(&stderr_text).trim().to_owned();
    let error = if timed_out {
        Some(format!(
            "did not finish within {limit:?}; the output so far is kept"
        ))
    } else {
        match status {
            Some(s) if s.success() => None,
            Some(s) => Some(format!(
                "exited with {s}{}",
                if stderr_text.is_empty() {
                    String::new()
                } else {
                    format!(": {stderr_text}")
                }
            )),
            None if dropped > 0 => None,
            None => Some("did not exit after its output ended".into()),
        }
    };
    Captured {
        bytes,
        truncated: cut_note(dropped, cap, tail),
        error,
    }
}

/// Journal entries as `journalctl -o json --reverse` prints them (one JSON object a line,
/// newest first; the last line may be cut) as text lines, oldest first:
/// `2025-01-02T03:04:05.678901Z host ident[pid]: message`.
pub fn journal_text(json_lines: &[u8]) -> String {
    let text = String::from_utf8_lossy(json_lines);
    let mut lines: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|e| {
            let field = |k: &str| -> String {
                match &e[k] {
                    serde_json::Value::String(s) => s.clone(),
                    // Non-UTF-8 fields come as arrays of bytes.
                    serde_json::Value::Array(bytes) => String::from_utf8_lossy(
                        &bytes
                            .iter()
                            .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                            .collect::<Vec<u8>>(),
                    )
                    .into_owned(),
                    serde_json::Value::Number(n) => n.to_string(),
                    _ => String::new(),
                }
            };
            let micros: i128 = field("__REALTIME_TIMESTAMP").parse().unwrap_or(0);
            let when = time::OffsetDateTime::from_unix_timestamp_nanos(micros * 1000)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_default();
            let ident = match field("SYSLOG_IDENTIFIER") {
                i if i.is_empty() => field("_COMM"),
                i => i,
            };
            let pid = field("_PID");
            format!(
                "{when} {} {ident}{}: {}",
                field("_HOSTNAME"),
                if pid.is_empty() {
                    String::new()
                } else {
                    format!("[{pid}]")
                },
                field("MESSAGE")
            )
        })
        .collect();
    lines.reverse();
    let mut out = lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// Reads `path` within `cap` (its last bytes for a log).
fn read_file(path: &Path, cap: usize, tail: bool) -> Captured {
    use std::io::{Read, Seek, SeekFrom};
    let fail = |e: std::io::Error| Captured {
        bytes: Vec::new(),
        truncated: None,
        error: Some(format!("cannot read {}: {e}", path.display())),
    };
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let cap64 = u64::try_from(cap).unwrap_or(u64::MAX);
    let mut skipped = 0u64;
    if tail
        && len > cap64
        && let Ok(at) = f.seek(SeekFrom::Start(len - cap64))
    {
        skipped = at;
    }
    let mut bytes = Vec::new();
    // /proc files report length 0: read up to the cap, then see whether more follows.
    if let Err(e) = Read::by_ref(&mut f).take(cap64).read_to_end(&mut bytes) {
        return fail(e);
    }
    let mut more = [0u8; 1];
    let dropped = usize::try_from(skipped).unwrap_or(usize::MAX)
        + if !tail && matches!(f.read(&mut more), Ok(1)) {
            usize::try_from(len.saturating_sub(cap64))
                .unwrap_or(usize::MAX)
                .max(1)
        } else {
            0
        };
    Captured {
        bytes,
        truncated: cut_note(dropped, cap, tail),
        error: None,
    }
}

/// Collects every item into a tar.gz at `output` (written to a temporary file beside it, then
/// renamed); `progress` hears each item as it starts. Returns the manifest entries.
pub async fn write(
    output: &Path,
    items: Vec<Item>,
    header: serde_json::Value,
    progress: &dyn Fn(usize, usize, &str),
) -> std::io::Result<Vec<Entry>> {
    let dir = output.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".eks-node-agent-bundle")
        .tempfile_in(dir)?;
    let gz = flate2::write::GzEncoder::new(tmp.reopen()?, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let top = output
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".tar.gz").or_else(|| n.strip_suffix(".tgz")))
        .unwrap_or("eks-node-agent-bundle")
        .to_owned();
    let started = Instant::now();
    let mut total = 0usize;
    let mut entries = Vec::new();
    let count = items.len();
    for (i, item) in items.into_iter().enumerate() {
        progress(i + 1, count, &item.path);
        let t = Instant::now();
        let room = MAX_BUNDLE_BYTES.saturating_sub(total);
        let source = item.source.describe();
        let captured = if started.elapsed() >= BUNDLE_TIMEOUT {
            Captured {
                bytes: Vec::new(),
                truncated: None,
                error: Some(format!(
                    "skipped: the bundle's time budget ({BUNDLE_TIMEOUT:?}) is spent"
                )),
            }
        } else if room == 0 {
            Captured {
                bytes: Vec::new(),
                truncated: None,
                error: Some(format!(
                    "skipped: the bundle reached its size cap ({MAX_BUNDLE_BYTES} bytes)"
                )),
            }
        } else {
            let cap = MAX_SOURCE_BYTES.min(room);
            let limit = SOURCE_TIMEOUT.min(BUNDLE_TIMEOUT.saturating_sub(started.elapsed()));
            match item.source {
                Source::Command(argv) => run_command(&argv, cap, item.keep_tail, limit).await,
                Source::Journal(argv) => {
                    let mut c = run_command(&argv, cap, false, limit).await;
                    c.bytes = journal_text(&c.bytes).into_bytes();
                    if c.truncated.is_some() {
                        c.truncated = Some(format!(
                            "older entries left out: the newest {cap} bytes of entries kept"
                        ));
                    }
                    c
                }
                Source::File(path) => {
                    let tail = item.keep_tail;
                    tokio::task::spawn_blocking(move || read_file(&path, cap, tail))
                        .await
                        .unwrap_or_else(|e| Captured {
                            bytes: Vec::new(),
                            truncated: None,
                            error: Some(format!("the reader failed: {e}")),
                        })
                }
                Source::Made(_, made) => {
                    let (text, error) = match made {
                        Ok(t) => (t, None),
                        Err(e) => (String::new(), Some(e)),
                    };
                    let mut c = Capped::new(cap, false);
                    c.push(text.as_bytes());
                    let (bytes, dropped) = c.finish();
                    Captured {
                        bytes,
                        truncated: cut_note(dropped, cap, false),
                        error,
                    }
                }
            }
        };
        let text = String::from_utf8_lossy(&captured.bytes);
        let clean = redact(&text);
        let body = clean.as_bytes();
        let file = if body.is_empty() && captured.error.is_some() {
            None
        } else {
            append(&mut tar, &format!("{top}/{}", item.path), body)?;
            total += body.len();
            Some(item.path.clone())
        };
        entries.push(Entry {
            file,
            source,
            bytes: body.len(),
            truncated: captured.truncated,
            error: captured.error.map(|e| redact(&e).into_owned()),
            millis: t.elapsed().as_millis(),
        });
    }
    let manifest = serde_json::json!({
        "bundle": header,
        "caps": {
            "source_bytes": MAX_SOURCE_BYTES,
            "bundle_bytes": MAX_BUNDLE_BYTES,
            "source_timeout_secs": SOURCE_TIMEOUT.as_secs(),
            "bundle_timeout_secs": BUNDLE_TIMEOUT.as_secs(),
        },
        "files": entries,
    });
    let text = serde_json::to_string_pretty(&manifest).unwrap_or_default();
    append(&mut tar, &format!("{top}/manifest.json"), text.as_bytes())?;
    let gz = tar.into_inner()?;
    let mut file = gz.finish()?;
    file.flush()?;
    file.sync_all()?;
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )?;
    tmp.persist(output).map_err(|e| e.error)?;
    Ok(entries)
}

fn append<W: Write>(tar: &mut tar::Builder<W>, path: &str, body: &[u8]) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(body.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, path, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_keeps_the_head_or_the_tail() {
        let mut head = Capped::new(4, false);
        head.push(b"abc");
        head.push(b"defg");
        assert_eq!(head.finish(), (b"abcd".to_vec(), 3));
        let mut tail = Capped::new(4, true);
        for chunk in [b"abc".as_slice(), b"defg", b"hij"] {
            tail.push(chunk);
        }
        assert_eq!(tail.finish(), (b"ghij".to_vec(), 6));
    }

    #[test]
    fn journal_json_becomes_text_oldest_first_and_a_cut_line_is_dropped() {
        let json = concat!(
            r#"{"__REALTIME_TIMESTAMP":"1700000001000000","_HOSTNAME":"h","SYSLOG_IDENTIFIER":"kubelet","_PID":"7","MESSAGE":"second"}"#,
            "\n",
            r#"{"__REALTIME_TIMESTAMP":"1700000000000000","_HOSTNAME":"h","SYSLOG_IDENTIFIER":"kernel","MESSAGE":[104,105]}"#,
            "\n",
            r#"{"__REALTIME_TIMESTAMP":"16999"#
        );
        assert_eq!(
            journal_text(json.as_bytes()),
            "2023-11-14T22:13:20Z h kernel: hi\n2023-11-14T22:13:21Z h kubelet[7]: second\n"
        );
    }

    #[test]
    fn a_file_is_read_within_its_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, b"0123456789").unwrap();
        let c = read_file(&path, 4, true);
        assert_eq!(c.bytes, b"6789");
        assert!(c.truncated.unwrap().contains("6 bytes left out"));
        let c = read_file(&path, 4, false);
        assert_eq!(c.bytes, b"0123");
        let c = read_file(&dir.path().join("missing"), 4, false);
        assert!(c.error.unwrap().contains("cannot read"));
    }
}
