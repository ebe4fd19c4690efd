//! Running and observing processes: wall time and peak RSS through GNU time, RSS and CPU time
//! of a live process from /proc, child processes killed on drop, and HTTP scrapes.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// GNU time (Debian package `time`): reports the child's peak RSS (`%M`, KiB) from wait4(2).
pub const GNU_TIME: &str = "/usr/bin/time";
/// How long a scrape may take before the benchmark gives up.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often readiness is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// One timed child process.
#[derive(Debug)]
pub struct Timed {
    /// Wall time around the child (GNU time's own fork/exec included, the same for every row).
    pub wall_ms: f64,
    /// Peak RSS of the child, KiB.
    pub max_rss_kib: f64,
    pub output: Output,
}

/// Runs `program args` under GNU time with `env` (the parent's environment is cleared).
pub fn timed(program: &Path, args: &[String], env: &[(String, String)]) -> Result<Timed> {
    let report = tempfile::NamedTempFile::new().context("temp file for GNU time")?;
    let mut cmd = Command::new(GNU_TIME);
    cmd.arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(report.path())
        .arg(program)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    let t = Instant::now();
    let output = cmd
        .output()
        .with_context(|| format!("{GNU_TIME} (Debian package `time`) {}", program.display()))?;
    let wall_ms = t.elapsed().as_secs_f64() * 1e3;
    let text = std::fs::read_to_string(report.path()).context("GNU time's report")?;
    // GNU time writes "Command exited with non-zero status N" before the format on failure.
    let max_rss_kib = text
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .next_back()
        .with_context(|| format!("no %M in GNU time's report: {text:?}"))?;
    Ok(Timed {
        wall_ms,
        max_rss_kib,
        output,
    })
}

/// Fails with the child's stderr tail unless it exited 0.
pub fn check(what: &str, t: &Timed) -> Result<()> {
    if !t.output.status.success() {
        let err = String::from_utf8_lossy(&t.output.stderr);
        let tail: String = err
            .chars()
            .rev()
            .take(600)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        bail!("{what} failed ({}): {tail}", t.output.status);
    }
    Ok(())
}

/// A child process killed (and reaped) on drop.
#[derive(Debug)]
pub struct Guard(pub Child);

impl Guard {
    pub fn spawn(cmd: &mut Command) -> Result<Guard> {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("spawn {:?}", cmd.get_program()))?;
        Ok(Guard(child))
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A field of /proc/PID/status, in its unit (KiB for Vm*).
pub fn status_kib(pid: u32, field: &str) -> Result<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("{field} in /proc/{pid}/status"))
}

/// Resident set size, KiB.
pub fn rss_kib(pid: u32) -> Result<f64> {
    status_kib(pid, "VmRSS")
}

/// User + system CPU time of a process (all its threads, live and exited), in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at field 3; utime and
    // stime are fields 14 and 15.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/PID/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11).and_then(|v| v.parse().ok()).context("utime")?;
    let stime: u64 = f.get(12).and_then(|v| v.parse().ok()).context("stime")?;
    Ok(utime + stime)
}

/// Clock ticks per second (`getconf CLK_TCK`).
pub fn clk_tck() -> Result<f64> {
    let out = Command::new("getconf").arg("CLK_TCK").output()?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("getconf CLK_TCK")
}

/// `GET path` over HTTP/1.0 on 127.0.0.1:port (a new connection, as Prometheus does after an
/// idle interval); the status code and body.
pub fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(SCRAPE_TIMEOUT))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let code = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("HTTP status line")?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((code, body))
}

/// One `/metrics` scrape that must answer 200.
pub fn scrape(port: u16) -> Result<String> {
    let (code, body) = http_get(port, "/metrics")?;
    if code != 200 {
        bail!("/metrics on port {port} answered {code}");
    }
    Ok(body)
}

/// Polls `ready` until it holds or `limit` passes.
pub fn wait_for(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + limit;
    while !ready() {
        if Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    Ok(())
}

/// First line of `program args` output (stdout, else stderr), for version strings.
pub fn first_line(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> String {
    match Command::new(program.as_ref()).args(args).output() {
        Ok(o) => {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        }
        Err(e) => format!("unavailable ({e})"),
    }
}

/// The path of a sibling binary of this one (the bench helpers are built together).
pub fn sibling(name: &str) -> Result<PathBuf> {
    Ok(std::env::current_exe()?.with_file_name(name))
}
