//! The end-to-end harness: a minimal Debian made by debootstrap and cached between runs, an
//! overlay copy of it per test, the packages built by `scripts/package.sh`, and a container
//! booted with `systemd-nspawn -b` in a network namespace of the test's own, driven with
//! `nsenter`. The test's emulators (IMDS, moto) listen on the host's 127.0.0.1; socat pairs
//! bridge them into the container's 127.0.0.1 through a unix socket, so no traffic leaves
//! the loopback interfaces.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Debian release of the container.
pub const SUITE: &str = "bookworm";
/// debootstrap variant.
pub const VARIANT: &str = "minbase";
/// The Debian mirror (a package registry, the only non-loopback traffic of the test).
pub const MIRROR: &str = "http://deb.debian.org/debian";
/// Packages added to minbase: an init, D-Bus for the agent's systemd jobs, the runtime, and
/// the package's other dependency (TLS roots for the AWS APIs).
pub const PACKAGES: [&str; 6] = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "containerd",
    "runc",
    "ca-certificates",
];
/// Overrides the rootfs cache directory (default `<target>/e2e-cache`).
pub const CACHE_ENV: &str = "EKS_AGENT_E2E_CACHE";
/// Bound on debootstrap (cold cache).
const DEBOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Bound on building the packages (includes installing cargo-deb on a fresh machine).
const PACKAGE_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// Bound on the container reaching the end of its boot.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// Bound on one command run inside the container.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on the container's orderly shutdown after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Poll interval for processes and sockets.
const POLL: Duration = Duration::from_millis(50);

/// The host tools of a booted container: the image, the boot, its network namespace and the
/// forwards into it.
pub const NSPAWN_TOOLS: [&str; 7] = [
    "systemd-nspawn",
    "debootstrap",
    "nsenter",
    "unshare",
    "socat",
    "ip",
    "mount",
];

/// Host tools a test needs, looked up on PATH and in the sbin directories.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Whether the test process is root (effective UID 0, read from /proc).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Why the test cannot run here (not root, or a tool is missing), or None.
pub fn skip_reason(needs_root: bool, tools: &[&str]) -> Option<String> {
    if needs_root && !is_root() {
        return Some("needs root (systemd-nspawn, mount, debootstrap)".into());
    }
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| which(t).is_none())
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "missing host tools: {} (scripts/test.sh installs them as root)",
            missing.join(", ")
        )
    })
}

/// Runs `cmd` to completion within `bound`, killing it past that. Output is captured.
pub fn run_bounded(cmd: &mut Command, bound: Duration) -> Result<Output, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut v);
        v
    });
    let deadline = Instant::now() + bound;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} did not finish within {bound:?}"));
            }
            Err(e) => return Err(format!("waiting for {what}: {e}")),
        }
    };
    Ok(Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    })
}

/// Like [`run_bounded`], but a non-zero exit is an error carrying both streams.
pub fn run_ok(cmd: &mut Command, bound: Duration) -> Result<Output, String> {
    let what = format!("{cmd:?}");
    let out = run_bounded(cmd, bound)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{what} failed with {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The cargo target directory the test binaries live in (`<target>/debug/deps/..`).
pub fn target_dir(agent_bin: &Path) -> PathBuf {
    agent_bin
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| crate::repo_root().join("target"))
}

/// Cache key of the rootfs: what debootstrap was asked for.
pub fn rootfs_key() -> String {
    let spec = format!("{SUITE}\n{VARIANT}\n{MIRROR}\n{}\n", PACKAGES.join(","));
    hex::encode(Sha256::digest(spec.as_bytes()))[..16].to_string()
}

/// The cached pristine rootfs, made with debootstrap on first use. Concurrent callers in this
/// process wait for the one that builds it; a partial build is never used (the directory is
/// renamed into place only when debootstrap succeeded).
pub fn cached_rootfs(target: &Path) -> Result<PathBuf, String> {
    static ROOTFS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    ROOTFS
        .get_or_init(|| {
            let cache = std::env::var_os(CACHE_ENV)
                .map(PathBuf::from)
                .unwrap_or_else(|| target.join("e2e-cache"));
            let dir = cache.join(format!("debian-{SUITE}-{VARIANT}-{}", rootfs_key()));
            let rootfs = dir.join("rootfs");
            if rootfs.join("usr/lib/systemd/systemd").exists() {
                return Ok(rootfs);
            }
            let partial = dir.join("rootfs.partial");
            let _ = std::fs::remove_dir_all(&partial);
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let started = Instant::now();
            run_ok(
                Command::new(which("debootstrap").ok_or("debootstrap is missing")?)
                    .arg(format!("--variant={VARIANT}"))
                    .arg(format!("--include={}", PACKAGES.join(",")))
                    .arg(SUITE)
                    .arg(&partial)
                    .arg(MIRROR),
                DEBOOTSTRAP_TIMEOUT,
            )?;
            // Leave nothing in the image that would talk to the outside at boot, and keep it
            // small: apt's lists and cached packages are not needed inside.
            let _ = std::fs::remove_dir_all(partial.join("var/cache/apt/archives"));
            for timer in ["apt-daily.timer", "apt-daily-upgrade.timer"] {
                let _ = std::os::unix::fs::symlink(
                    "/dev/null",
                    partial.join("etc/systemd/system").join(timer),
                );
            }
            std::fs::rename(&partial, &rootfs).map_err(|e| format!("{}: {e}", rootfs.display()))?;
            eprintln!(
                "e2e: debootstrap of {SUITE}/{VARIANT} + {} took {:.1}s (cached in {})",
                PACKAGES.join(","),
                started.elapsed().as_secs_f64(),
                rootfs.display()
            );
            Ok(rootfs)
        })
        .clone()
}

/// A stand-in for the kubelet binary in a container or VM (Debian has no kubelet package):
/// answers `--version` as the kubelet does (init keys the kubelet's settings on it), else
/// records the arguments systemd gave it from /etc/eks/kubelet/environment and idles like a
/// service would.
pub const KUBELET_STAND_IN: &str = "#!/bin/sh\n# e2e stand-in: the version, or record argv and idle\n\
if [ \"$1\" = --version ]; then echo 'Kubernetes v1.33.5-eks-e2e'; exit 0; fi\n\
printf '%s\\n' \"$@\" > /run/kubelet-e2e.argv\nexec sleep infinity\n";

/// The .deb and .rpm of the binary the tests built (dev profile; release for a binary in
/// `target/release`), made once per process by `scripts/package.sh --profile P --no-build` (which installs cargo-deb and
/// cargo-generate-rpm if they are missing).
#[derive(Debug, Clone)]
pub struct Packages {
    /// The .deb.
    pub deb: PathBuf,
    /// The .rpm.
    pub rpm: PathBuf,
}

/// Builds [`Packages`] (once per process).
pub fn packages(agent_bin: &Path) -> Result<Packages, String> {
    static PACKAGES_BUILT: OnceLock<Result<Packages, String>> = OnceLock::new();
    PACKAGES_BUILT
        .get_or_init(|| {
            let target = target_dir(agent_bin);
            // The profile of the binary given (the tests' dev build, or bench-all's release).
            let profile = if agent_bin.parent().is_some_and(|d| d.ends_with("release")) {
                "release"
            } else {
                "dev"
            };
            let out_dir = target.join("e2e-packages");
            let started = Instant::now();
            let out = run_ok(
                Command::new(crate::repo_root().join("scripts/package.sh"))
                    .args(["--profile", profile, "--no-build", "--out"])
                    .arg(&out_dir)
                    .env("CARGO_TARGET_DIR", &target)
                    .current_dir(crate::repo_root()),
                PACKAGE_TIMEOUT,
            )?;
            eprintln!(
                "e2e: packages built in {:.1}s",
                started.elapsed().as_secs_f64()
            );
            let listed = String::from_utf8_lossy(&out.stdout).to_string();
            let find = |ext: &str| {
                listed
                    .lines()
                    .map(PathBuf::from)
                    .find(|p| p.extension().is_some_and(|e| e == ext) && p.exists())
                    .ok_or_else(|| format!("package.sh printed no .{ext}:\n{listed}"))
            };
            Ok(Packages {
                deb: find("deb")?,
                rpm: find("rpm")?,
            })
        })
        .clone()
}

/// `bench-all` of the tests crate, in the profile of `agent_bin`, built once per process
/// (cargo builds only the agent's binaries for its integration tests). Tests install it on
/// the hosts they boot under the name `amazon-ssm-agent` (`crate::ssm_agent`).
pub fn bench_all(agent_bin: &Path) -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target = target_dir(agent_bin);
            let release = agent_bin.parent().is_some_and(|d| d.ends_with("release"));
            let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
            cmd.args([
                "build",
                "--locked",
                "-p",
                "eks-node-agent-tests",
                "--bin",
                "bench-all",
            ])
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(crate::repo_root());
            if release {
                cmd.arg("--release");
            }
            run_ok(&mut cmd, PACKAGE_TIMEOUT)?;
            let bin = target
                .join(if release { "release" } else { "debug" })
                .join("bench-all");
            bin.is_file()
                .then_some(bin.clone())
                .ok_or_else(|| format!("cargo built no {}", bin.display()))
        })
        .clone()
}

/// An overlay mount of the cached rootfs: writes go to a scratch upper layer, the cache
/// stays pristine. Unmounted on drop.
#[derive(Debug)]
pub struct Overlay {
    merged: PathBuf,
    upper: PathBuf,
    _scratch: tempfile::TempDir,
}

impl Overlay {
    /// Mounts `lower` read-only under a fresh scratch directory next to `scratch_parent`.
    pub fn mount(lower: &Path, scratch_parent: &Path) -> Result<Overlay, String> {
        std::fs::create_dir_all(scratch_parent).map_err(|e| e.to_string())?;
        let scratch = tempfile::Builder::new()
            .prefix("e2e-root-")
            .tempdir_in(scratch_parent)
            .map_err(|e| e.to_string())?;
        let (upper, work, merged) = (
            scratch.path().join("upper"),
            scratch.path().join("work"),
            scratch.path().join("merged"),
        );
        for d in [&upper, &work, &merged] {
            std::fs::create_dir(d).map_err(|e| e.to_string())?;
        }
        run_ok(
            Command::new("mount")
                .args(["-t", "overlay", "overlay", "-o"])
                .arg(format!(
                    "lowerdir={},upperdir={},workdir={}",
                    lower.display(),
                    upper.display(),
                    work.display()
                ))
                .arg(&merged),
            EXEC_TIMEOUT,
        )?;
        Ok(Overlay {
            merged,
            upper,
            _scratch: scratch,
        })
    }

    /// The container's root as the host sees it.
    pub fn root(&self) -> &Path {
        &self.merged
    }

    /// The overlay's upper layer: everything written since the cached image.
    pub fn upper(&self) -> &Path {
        &self.upper
    }

    /// `path` (absolute inside the container) as a host path.
    pub fn path(&self, path: &str) -> PathBuf {
        self.merged.join(path.trim_start_matches('/'))
    }

    /// Writes a file inside the container's root (creating parents) with `mode`.
    pub fn write(&self, path: &str, contents: &[u8], mode: u32) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        let p = self.path(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&p, contents).map_err(|e| format!("{}: {e}", p.display()))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("{}: {e}", p.display()))
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.merged)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.merged).status();
        }
    }
}

/// Kills (SIGKILL) and reaps a child on drop.
#[derive(Debug)]
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A network namespace with only `lo` (up), held open by a `sleep` child; the container
/// joins it, so its 127.0.0.1 is its own and it has no route anywhere else.
#[derive(Debug)]
pub struct NetNs {
    holder: Reaped,
}

impl NetNs {
    /// Creates the namespace and brings `lo` up.
    pub fn new() -> Result<NetNs, String> {
        let child = Command::new("unshare")
            .args(["--net", "sleep", "infinity"])
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("unshare: {e}"))?;
        let ns = NetNs {
            holder: Reaped(child),
        };
        // unshare execs sleep once the namespace exists: wait until its netns differs.
        let deadline = Instant::now() + EXEC_TIMEOUT;
        let own = std::fs::read_link("/proc/self/ns/net").map_err(|e| e.to_string())?;
        while std::fs::read_link(ns.path()).map_err(|e| e.to_string())? == own {
            if Instant::now() > deadline {
                return Err("unshare --net did not create a namespace".into());
            }
            std::thread::sleep(POLL);
        }
        run_ok(
            Command::new("nsenter")
                .arg(format!("--net={}", ns.path().display()))
                .args(["ip", "link", "set", "lo", "up"]),
            EXEC_TIMEOUT,
        )?;
        Ok(ns)
    }

    /// `/proc/PID/ns/net` of the holder.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.holder.0.id()))
    }
}

/// Makes `target` (on the host's loopback) answer on `127.0.0.1:port` inside `netns`: a socat
/// inside the namespace accepts there and connects to a unix socket, a socat on the host
/// accepts on that socket and connects to `target`.
#[derive(Debug)]
pub struct Forward {
    _inner: Reaped,
    _host: Reaped,
}

impl Forward {
    /// Starts both halves and waits until the socket exists.
    pub fn start(
        netns: &NetNs,
        port: u16,
        target: SocketAddr,
        sock: &Path,
    ) -> Result<Forward, String> {
        let _ = std::fs::remove_file(sock);
        let spawn = |cmd: &mut Command| {
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map(Reaped)
                .map_err(|e| format!("socat: {e}"))
        };
        let host = spawn(
            Command::new("socat")
                .arg(format!("UNIX-LISTEN:{},fork", sock.display()))
                .arg(format!("TCP:{target}")),
        )?;
        let deadline = Instant::now() + EXEC_TIMEOUT;
        while !sock.exists() {
            if Instant::now() > deadline {
                return Err(format!("socat did not create {}", sock.display()));
            }
            std::thread::sleep(POLL);
        }
        let inner = spawn(
            Command::new("nsenter")
                .arg(format!("--net={}", netns.path().display()))
                .arg("socat")
                .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
                .arg(format!("UNIX-CONNECT:{}", sock.display())),
        )?;
        // Wait until the inner listener accepts (a connect from inside the namespace).
        let probe = format!("exec 3<>/dev/tcp/127.0.0.1/{port}");
        loop {
            let ok = Command::new("nsenter")
                .arg(format!("--net={}", netns.path().display()))
                .args(["bash", "-c", &probe])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("socat in the namespace does not listen on {port}"));
            }
            std::thread::sleep(POLL);
        }
        Ok(Forward {
            _inner: inner,
            _host: host,
        })
    }
}

/// A container booted with `systemd-nspawn -b`. Shut down (SIGTERM: an orderly poweroff of
/// the container; SIGKILL past [`STOP_TIMEOUT`]) on drop.
#[derive(Debug)]
pub struct Container {
    nspawn: Option<Child>,
    leader: u32,
    log: PathBuf,
}

impl Container {
    /// Boots `root` in `netns` and waits for the container's PID 1 to exist.
    pub fn boot(root: &Path, netns: &NetNs, name: &str, log: &Path) -> Result<Container, String> {
        let log_file = std::fs::File::create(log).map_err(|e| e.to_string())?;
        let err_file = log_file.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new("systemd-nspawn")
            .arg("--directory")
            .arg(root)
            .args(["--boot", "--register=no", "--keep-unit", "--console=pipe"])
            .arg(format!("--machine={name}"))
            .arg(format!(
                "--network-namespace-path={}",
                netns.path().display()
            ))
            // With a namespace path, --private-network makes nspawn mount /proc/sys/net
            // writable (it is per namespace), so init can set its net.* sysctls there.
            .arg("--private-network")
            .args(["--resolv-conf=off", "--timezone=off", "--link-journal=no"])
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file)
            .spawn()
            .map_err(|e| format!("systemd-nspawn: {e}"))?;
        let pid = child.id();
        let mut c = Container {
            nspawn: Some(child),
            leader: 0,
            log: log.to_path_buf(),
        };
        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            if let Some(leader) = children(pid)
                .into_iter()
                .find(|p| comm(*p).as_deref() == Some("systemd"))
            {
                c.leader = leader;
                return Ok(c);
            }
            if let Some(n) = c.nspawn.as_mut()
                && let Ok(Some(status)) = n.try_wait()
            {
                return Err(format!(
                    "systemd-nspawn exited with {status}:\n{}",
                    c.log_text()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no container init after {BOOT_TIMEOUT:?}:\n{}",
                    c.log_text()
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// nspawn's own output (the container's console).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `args` inside every namespace of the container, with `env` added.
    pub fn exec(&self, args: &[&str], env: &[(&str, &str)]) -> Result<Output, String> {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.leader.to_string(), "-a", "--", "env", "-i"]);
        cmd.arg("PATH=/usr/sbin:/usr/bin:/sbin:/bin");
        for (k, v) in env {
            cmd.arg(format!("{k}={v}"));
        }
        cmd.args(args);
        run_bounded(&mut cmd, EXEC_TIMEOUT)
    }

    /// [`Container::exec`] that must succeed; returns stdout.
    pub fn sh(&self, script: &str) -> Result<String, String> {
        let out = self.exec(&["sh", "-c", script], &[])?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).to_string())
        } else {
            Err(format!(
                "inside the container, `{script}` failed with {}\nstdout:\n{}\nstderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Waits until the container's boot finished (`running` or `degraded`), returning the state.
    /// Right after PID 1 appears its bus is not up yet (`offline`): retried until the deadline.
    pub fn wait_booted(&self) -> Result<String, String> {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            let out = run_bounded(
                Command::new("nsenter")
                    .args(["-t", &self.leader.to_string(), "-a", "--"])
                    .args(["systemctl", "is-system-running", "--wait"]),
                BOOT_TIMEOUT,
            )?;
            let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !matches!(state.as_str(), "offline" | "" | "initializing" | "starting")
                || Instant::now() > deadline
            {
                return Ok(state);
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let Some(mut child) = self.nspawn.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(POLL);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Child PIDs of `pid` (all its threads).
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Appends a line to stderr without interleaving (tests run in parallel).
pub fn note(msg: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{msg}");
}
