//! A real Docker daemon (Debian's docker.io) on a private socket and private state
//! directories, without iptables or a bridge, for the ECS host's Docker check. Stopped (and
//! its directories removed) on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's dockerd.
pub const DOCKERD: &str = "/usr/sbin/dockerd";

/// A running dockerd.
#[derive(Debug)]
pub struct Dockerd {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Dockerd {
    /// Starts dockerd and waits (bounded) for its socket; `None` (with the reason) when
    /// dockerd is not installed or does not come up here.
    pub fn start() -> Result<Dockerd, String> {
        if !Path::new(DOCKERD).exists() {
            return Err(format!(
                "{DOCKERD} is not installed (Debian package docker.io)"
            ));
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let socket = dir.path().join("docker.sock");
        let log =
            std::fs::File::create(dir.path().join("dockerd.log")).map_err(|e| e.to_string())?;
        let child = Command::new(DOCKERD)
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("dockerd.pid"))
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot start {DOCKERD}: {e}"))?;
        let mut d = Dockerd {
            child,
            socket,
            _dir: dir,
        };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if std::os::unix::net::UnixStream::connect(&d.socket).is_ok() {
                return Ok(d);
            }
            if let Ok(Some(status)) = d.child.try_wait() {
                let log =
                    std::fs::read_to_string(d._dir.path().join("dockerd.log")).unwrap_or_default();
                return Err(format!("dockerd exited ({status}): {log}"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err("dockerd did not open its socket within 60s".into())
    }

    /// Its API socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SIGTERM lets it stop its containerd; then wait, bounded, and kill.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
