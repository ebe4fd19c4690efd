//! Running a fixed program with fixed arguments (no shell), bounded in time, its output
//! captured and bounded in size: the one way discovery probes the disks and apply sets them up.

use std::path::Path;
use std::time::Duration;

/// Output kept from each stream; the rest is dropped.
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;

/// What a program printed and how it ended.
#[derive(Debug, Clone)]
pub struct Ran {
    /// The exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Standard output (bounded).
    pub stdout: String,
    /// Standard error (bounded).
    pub stderr: String,
}

impl Ran {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The last lines of stderr (or stdout when stderr is empty), for an error message.
    pub fn tail(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(4)..].join(" / ")
    }
}

/// Why a program could not be run to its end.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// It could not start (missing, not executable).
    #[error("cannot start {program}")]
    Start {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It ran past its bound and was killed.
    #[error("{program} did not finish within {secs} s and was killed")]
    Timeout {
        /// The program.
        program: String,
        /// The bound.
        secs: u64,
    },
}

fn bounded(bytes: Vec<u8>) -> String {
    let end = bytes.len().min(MAX_OUTPUT_BYTES);
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Runs `argv[0]` with the rest as arguments, stdin closed, within `bound`.
pub async fn run(argv: &[String], bound: Duration) -> Result<Ran, Error> {
    let program = argv.first().cloned().unwrap_or_default();
    let child = tokio::process::Command::new(Path::new(&program))
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(bound, child).await {
        Err(_) => Err(Error::Timeout {
            program,
            secs: bound.as_secs(),
        }),
        Ok(Err(source)) => Err(Error::Start { program, source }),
        Ok(Ok(out)) => Ok(Ran {
            code: out.status.code(),
            stdout: bounded(out.stdout),
            stderr: bounded(out.stderr),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_bounded_and_reports_missing_programs() {
        let ran = run(
            &[
                "sh".into(),
                "-c".into(),
                "echo out; echo err >&2; exit 3".into(),
            ],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(ran.code, Some(3));
        assert_eq!(ran.stdout, "out\n");
        assert_eq!(ran.tail(), "err");
        let slow = run(&["sleep".into(), "5".into()], Duration::from_millis(100)).await;
        assert!(matches!(slow, Err(Error::Timeout { .. })), "{slow:?}");
        let missing = run(&["/nonexistent/program".into()], Duration::from_secs(1)).await;
        assert!(matches!(missing, Err(Error::Start { .. })), "{missing:?}");
    }
}
