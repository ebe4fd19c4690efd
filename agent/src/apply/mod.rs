//! Apply a [`Plan`] to the host: the only module that changes anything.
//!
//! - files: atomic, idempotent writes under a [`Root`] ([`file`]);
//! - sysctls: written through /proc/sys only when the value differs ([`sysctl`]);
//! - services: systemd over D-Bus, daemon-reload and restarts only when inputs changed,
//!   each job awaited, sockets awaited before the next service ([`systemd`]);
//! - record: every file written is recorded (with a backup of what it replaced) in
//!   /var/lib/eks-node-agent/files.json before it is written, so `uninstall` can undo exactly
//!   the agent's changes ([`manifest`]);
//! - dry run: a unified diff of every file against the disk, sysctls and service actions
//!   ([`diff`]); writes nothing.
//!
//! Under a non-host root (`--root DIR`) sysctls and services are skipped unless a procfs root
//! or a bus address was given explicitly (tests do that).

pub mod actions;
pub mod diff;
pub mod disks;
pub mod file;
pub mod lock;
pub mod manifest;
pub mod phases;
pub mod state;
pub mod sysctl;
pub mod systemd;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::render::{FileSpec, Plan};

pub use file::Outcome;
pub use systemd::{JOB_TIMEOUT, SOCKET_WAIT_TIMEOUT};

/// Errors while applying a plan. Every variant names the file, key or unit involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A plan path that is not absolute or climbs out of the root: a bug in the renderer.
    #[error("plan path {path} must be absolute and contain no `..` (renderer bug)")]
    BadPlanPath {
        /// The offending path from the plan.
        path: PathBuf,
    },
    /// Reading the current state of a file failed.
    #[error("cannot read {path}")]
    Read {
        /// The file (under the root).
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// Creating a parent directory failed.
    #[error("cannot create directory {path}")]
    CreateDir {
        /// The directory (under the root).
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// One step of an atomic write failed; the target keeps its old content.
    #[error("cannot write {path} ({step}); the file keeps its previous content")]
    Write {
        /// The target file (under the root).
        path: PathBuf,
        /// The step that failed: create temp, write, chmod, fsync, rename, fsync dir.
        step: &'static str,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// A sysctl key that is not a plain dotted name.
    #[error(
        "sysctl key {key:?} is not a valid name (expected dotted words like net.ipv4.ip_forward)"
    )]
    BadSysctlKey {
        /// The key from the plan.
        key: String,
    },
    /// The sysctl does not exist in this kernel.
    #[error(
        "sysctl {key}: {path} does not exist; is the kernel module loaded (e.g. br_netfilter for net.bridge.*)?"
    )]
    SysctlMissing {
        /// The key.
        key: String,
        /// Its /proc/sys path.
        path: PathBuf,
    },
    /// Reading or writing a sysctl failed.
    #[error("sysctl {key}: cannot {step} {path}")]
    Sysctl {
        /// The key.
        key: String,
        /// Its /proc/sys path.
        path: PathBuf,
        /// `read` or `write`.
        step: &'static str,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// Connecting to the D-Bus system bus failed or timed out.
    #[error("cannot connect to systemd over D-Bus at {address}")]
    Connect {
        /// The bus address (`system bus` for the default).
        address: String,
        /// The D-Bus error (boxed: it is large).
        #[source]
        source: Box<zbus::Error>,
    },
    /// A D-Bus call to systemd failed.
    #[error("systemd {method} for {unit} failed")]
    Dbus {
        /// The Manager method, e.g. `RestartUnit`.
        method: &'static str,
        /// The unit (or `manager` for Reload/Subscribe).
        unit: String,
        /// The D-Bus error (boxed: it is large).
        #[source]
        source: Box<zbus::Error>,
    },
    /// A systemd job finished with a result other than `done`.
    #[error("{unit}: {method} job finished with result \"{result}\"; see `journalctl -u {unit}`")]
    JobFailed {
        /// The unit.
        unit: String,
        /// `StartUnit` or `RestartUnit`.
        method: &'static str,
        /// systemd's job result: failed, timeout, dependency, canceled, skipped...
        result: String,
    },
    /// A systemd job did not finish in time.
    #[error("{unit}: {method} job did not finish within {secs} s; see `systemctl status {unit}`")]
    JobTimeout {
        /// The unit.
        unit: String,
        /// `StartUnit` or `RestartUnit`.
        method: &'static str,
        /// The bound that passed.
        secs: u64,
    },
    /// A service started but its socket never accepted a connection.
    #[error("{unit} is started but {path} did not accept a connection within {secs} s")]
    SocketTimeout {
        /// The unit.
        unit: String,
        /// The socket (under the root).
        path: PathBuf,
        /// The bound that passed.
        secs: u64,
        /// The last connect error.
        #[source]
        source: std::io::Error,
    },
    /// The record of the agent's files is not valid JSON of the expected shape.
    #[error(
        "{path} (the record of the files eks-node-agent wrote) is corrupt; restore it from a backup or remove the agent's files by hand"
    )]
    ManifestCorrupt {
        /// The record.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The record was written by another version of the agent.
    #[error(
        "{path} has format version {found}, this agent reads version {}; use the eks-node-agent that wrote it",
        manifest::FORMAT_VERSION
    )]
    ManifestVersion {
        /// The record.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// Files the agent wrote were changed by someone else since; uninstall changed nothing.
    #[error(
        "uninstall changed nothing: {} file(s) were changed after eks-node-agent wrote them: {}; \
         keep a copy of what you need, then run `eks-node-agent uninstall --force` to remove or restore them anyway",
        paths.len(),
        paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    ModifiedSinceWritten {
        /// The files.
        paths: Vec<PathBuf>,
    },
    /// The backup of a file the agent replaced is missing or damaged.
    #[error(
        "the backup {backup} of {path} is missing or does not match the record; uninstall changed nothing. \
         Restore {path} by hand, then run `eks-node-agent uninstall --force`"
    )]
    BackupMissing {
        /// The file the backup is for.
        path: PathBuf,
        /// The backup.
        backup: PathBuf,
    },
    /// Removing a file or directory failed.
    #[error("cannot remove {path}")]
    Remove {
        /// The path (under the root).
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// Registering the SSM hybrid activation failed.
    #[error("cannot register the host with SSM")]
    Register {
        /// Why.
        #[source]
        source: crate::auth::Error,
    },
    /// Turning off a swap file failed.
    #[error(
        "cannot turn off swap file {path}; turn the swap off by hand, or set failSwapOn: false in spec.kubelet.config"
    )]
    SwapOff {
        /// The swap file.
        path: String,
        /// What happened: swapoff could not start, timed out, or failed.
        #[source]
        source: std::io::Error,
    },
    /// A step of the instance-store setup failed (or was refused); the disks are left as
    /// they were after the last step that succeeded.
    #[error(
        "local storage: `{command}` failed: {detail}. The node is not started on a half-built layout (see `eks-node-agent status`)"
    )]
    Disk {
        /// The command line (it names the device).
        command: String,
        /// Its exit status and last lines of output, or why it was not run.
        detail: String,
    },
    /// Pointing a symbolic link at its target failed.
    #[error("cannot link {link} to {target}: {detail}")]
    Symlink {
        /// The link.
        link: PathBuf,
        /// Its target.
        target: String,
        /// What went wrong.
        detail: String,
    },
    /// The host lock file cannot be opened, locked or written.
    #[error("cannot take the host lock {path}")]
    Lock {
        /// The lock file (under the root).
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// Another command held the host lock for longer than this one could wait.
    #[error(
        "another eks-node-agent command holds the host lock {path} ({holder}) and did not release it within {waited_secs} s; wait for it to finish (or raise --lock-wait) and run this command again"
    )]
    LockBusy {
        /// The lock file (under the root).
        path: PathBuf,
        /// What the holder wrote: its PID and command.
        holder: String,
        /// How long this command waited.
        waited_secs: u64,
    },
    /// A failure injected by the crash-safety test hook.
    #[error("injected failure after {files} file(s) (test hook)")]
    Injected {
        /// How many files were written before it.
        files: usize,
    },
}

impl crate::exit::Classify for Error {
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            Error::Register { source } => source.exit_code(),
            _ => crate::exit::Code::Failure,
        }
    }
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The directory the plan's absolute paths are placed under: `/` on the host, a temp or
/// staging directory otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    dir: PathBuf,
}

impl Root {
    /// The host itself.
    pub fn host() -> Self {
        Root {
            dir: PathBuf::from("/"),
        }
    }

    /// Another directory standing for `/`.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Root { dir: dir.into() }
    }

    /// Whether this is the host's `/`.
    pub fn is_host(&self) -> bool {
        self.dir == Path::new("/")
    }

    /// The directory standing for `/`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Maps an absolute plan path under the root; rejects relative paths and `..`.
    pub fn path(&self, plan_path: &Path) -> Result<PathBuf> {
        let bad = || Error::BadPlanPath {
            path: plan_path.to_path_buf(),
        };
        let mut out = self.dir.clone();
        let mut components = plan_path.components();
        if components.next() != Some(Component::RootDir) {
            return Err(bad());
        }
        let mut any = false;
        for c in components {
            match c {
                Component::Normal(part) => {
                    out.push(part);
                    any = true;
                }
                Component::CurDir => {}
                _ => return Err(bad()),
            }
        }
        if !any {
            return Err(bad());
        }
        Ok(out)
    }
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    /// The plan path (host path, not the root-mapped one).
    pub path: PathBuf,
    /// Created, updated, or unchanged.
    pub outcome: Outcome,
}

/// A sysctl that was (or would be) changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SysctlChange {
    /// The dotted key.
    pub key: String,
    /// The value before.
    pub from: String,
    /// The value now.
    pub to: String,
}

/// Something that was not done, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// What: `sysctls`, `services`.
    pub what: String,
    /// Why, e.g. `--root is not /`.
    pub reason: String,
}

/// What an apply changed. Serializable to JSON; `Display` prints a short summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Every plan file and what happened to it.
    pub files: Vec<FileChange>,
    /// Sysctls whose value was changed.
    pub sysctls_changed: Vec<SysctlChange>,
    /// Sysctls already at the wanted value.
    pub sysctls_unchanged: Vec<String>,
    /// Whether a daemon-reload is needed (a unit file changed) or was done.
    pub daemon_reload: bool,
    /// Units that must restart because an input changed (planned after files, done after services).
    pub units_to_restart: Vec<String>,
    /// Units restarted.
    pub units_restarted: Vec<String>,
    /// Units started because they were not running.
    pub units_started: Vec<String>,
    /// Units left alone: active and inputs unchanged.
    pub units_unchanged: Vec<String>,
    /// Host actions carried out (registration, swapoff).
    pub actions: Vec<String>,
    /// Phases not carried out, with the reason.
    pub skipped: Vec<Skipped>,
}

impl Report {
    /// Paths of files that were created or updated.
    pub fn files_changed(&self) -> impl Iterator<Item = &Path> {
        self.files
            .iter()
            .filter(|f| f.outcome != Outcome::Unchanged)
            .map(|f| f.path.as_path())
    }

    /// Whether anything on the host changed (or a restart is pending).
    pub fn changed(&self) -> bool {
        self.files_changed().next().is_some()
            || !self.sysctls_changed.is_empty()
            || self.daemon_reload
            || !self.units_to_restart.is_empty()
            || !self.units_restarted.is_empty()
            || !self.units_started.is_empty()
            || !self.actions.is_empty()
    }

    /// Folds another phase's report into this one.
    pub fn merge(&mut self, other: Report) {
        self.files.extend(other.files);
        self.sysctls_changed.extend(other.sysctls_changed);
        self.sysctls_unchanged.extend(other.sysctls_unchanged);
        self.daemon_reload |= other.daemon_reload;
        for u in other.units_to_restart {
            if !self.units_to_restart.contains(&u) {
                self.units_to_restart.push(u);
            }
        }
        self.units_restarted.extend(other.units_restarted);
        self.units_started.extend(other.units_started);
        self.units_unchanged.extend(other.units_unchanged);
        self.actions.extend(other.actions);
        self.skipped.extend(other.skipped);
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.files {
            let word = match c.outcome {
                Outcome::Created => "created",
                Outcome::Updated => "updated",
                Outcome::Unchanged => "unchanged",
            };
            writeln!(f, "file {word:9} {}", c.path.display())?;
        }
        for s in &self.sysctls_changed {
            writeln!(f, "sysctl {} = {} (was {})", s.key, s.to, s.from)?;
        }
        for k in &self.sysctls_unchanged {
            writeln!(f, "sysctl {k} unchanged")?;
        }
        if self.daemon_reload {
            writeln!(f, "systemd daemon-reload")?;
        }
        let lists = [
            ("restart needed", &self.units_to_restart),
            ("restarted", &self.units_restarted),
            ("started", &self.units_started),
            ("unchanged", &self.units_unchanged),
        ];
        for (word, units) in lists {
            for u in units {
                writeln!(f, "unit {word}: {u}")?;
            }
        }
        for a in &self.actions {
            writeln!(f, "action {a}")?;
        }
        for s in &self.skipped {
            writeln!(f, "skipped {}: {}", s.what, s.reason)?;
        }
        if !self.changed() {
            writeln!(f, "nothing changed")?;
        }
        Ok(())
    }
}

/// The service actions implied by a set of changed files: pure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceActions {
    /// A unit file or drop-in changed: daemon-reload first.
    pub daemon_reload: bool,
    /// Units whose inputs changed, in plan order of the files.
    pub restart: Vec<String>,
}

/// Derives the service actions from the plan's files and the set of changed plan paths.
pub fn service_actions<'a>(
    files: &[FileSpec],
    changed: impl IntoIterator<Item = &'a Path>,
) -> ServiceActions {
    let changed: BTreeSet<&Path> = changed.into_iter().collect();
    let mut actions = ServiceActions::default();
    for spec in files.iter().filter(|f| changed.contains(f.path.as_path())) {
        actions.daemon_reload |= spec.is_systemd_unit();
        for unit in &spec.affects {
            if !actions.restart.contains(unit) {
                actions.restart.push(unit.clone());
            }
        }
    }
    actions
}

/// A verified file waiting in a staging directory, and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedFile {
    /// The staged copy (outside the root).
    pub source: PathBuf,
    /// Its SHA-256 (hex), checked again while it is copied.
    pub sha256: String,
    /// The host path it installs to.
    pub path: PathBuf,
    /// Its mode there.
    pub mode: u32,
}

/// A test hook: fail after this many files were written (crash-safety tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailAfter(pub usize);

/// Applies plans under a root. Every path, bus address and bound is a parameter with a
/// production default.
#[derive(Debug, Clone)]
pub struct Applier {
    root: Root,
    proc_root: Option<PathBuf>,
    bus_address: Option<String>,
    job_timeout: Duration,
    socket_timeout: Duration,
    fail_after: Option<FailAfter>,
}

impl Applier {
    /// An applier for the given root with production defaults: /proc/sys and the system bus
    /// (both used only when the root is the host).
    pub fn new(root: Root) -> Self {
        Applier {
            root,
            proc_root: None,
            bus_address: None,
            job_timeout: JOB_TIMEOUT,
            socket_timeout: SOCKET_WAIT_TIMEOUT,
            fail_after: None,
        }
    }

    /// Uses `dir` as the directory standing for `/` when resolving /proc/sys paths, and applies
    /// sysctls even under a non-host root.
    pub fn with_proc_root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.proc_root = Some(dir.into());
        self
    }

    /// Talks to systemd on this D-Bus address (e.g. `unix:path=/run/x/bus`) instead of the
    /// system bus, and runs services even under a non-host root.
    pub fn with_bus_address(mut self, address: impl Into<String>) -> Self {
        self.bus_address = Some(address.into());
        self
    }

    /// Bounds each systemd job (default [`JOB_TIMEOUT`]).
    pub fn with_job_timeout(mut self, timeout: Duration) -> Self {
        self.job_timeout = timeout;
        self
    }

    /// Bounds each socket wait (default [`SOCKET_WAIT_TIMEOUT`]).
    pub fn with_socket_timeout(mut self, timeout: Duration) -> Self {
        self.socket_timeout = timeout;
        self
    }

    /// Test hook: stop with [`Error::Injected`] after this many files were processed.
    pub fn with_fail_after(mut self, fail: FailAfter) -> Self {
        self.fail_after = Some(fail);
        self
    }

    /// The root.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// Writes every file of the plan atomically; unchanged files are not touched. The report
    /// lists each file and the daemon-reload/restarts this implies. Blocking.
    pub fn apply_files(&self, plan: &Plan) -> Result<Report> {
        let mut report = Report::default();
        let shas: Vec<String> = plan
            .files
            .iter()
            .map(|f| file::sha256_hex(&f.contents))
            .collect();
        // Write-ahead: every file is in the record before the first one is written.
        let mut tracker = manifest::Tracker::load(&self.root)?;
        for (spec, sha) in plan.files.iter().zip(&shas) {
            tracker.intend(&spec.path, sha)?;
        }
        tracker.save()?;
        for (i, (spec, sha)) in plan.files.iter().zip(&shas).enumerate() {
            if let Some(FailAfter(n)) = self.fail_after
                && i == n
            {
                return Err(Error::Injected { files: n });
            }
            let target = self.root.path(&spec.path)?;
            let outcome = file::write_atomic(&target, &spec.contents, spec.mode)?;
            tracker.confirm(&spec.path, sha);
            // Contents are never logged, secret or not: only path, mode and outcome.
            if outcome == Outcome::Unchanged {
                tracing::debug!(path = %spec.path.display(), "file unchanged");
            } else {
                tracing::info!(path = %spec.path.display(), mode = format_args!("{:04o}", spec.mode),
                    outcome = ?outcome, "file written");
            }
            report.files.push(FileChange {
                path: spec.path.clone(),
                outcome,
            });
        }
        tracker.save()?;
        let actions = service_actions(&plan.files, report.files_changed());
        report.daemon_reload = actions.daemon_reload;
        report.units_to_restart = actions.restart;
        Ok(report)
    }

    /// Installs verified files (binaries from `install`), each atomically and only when its
    /// SHA-256 or mode differs, recording each in the agent's file record first. Blocking.
    pub fn install_files(&self, files: &[StagedFile]) -> Result<Report> {
        let mut report = Report::default();
        let mut tracker = manifest::Tracker::load(&self.root)?;
        for f in files {
            tracker.intend(&f.path, &f.sha256)?;
        }
        tracker.save()?;
        for f in files {
            let target = self.root.path(&f.path)?;
            let outcome = file::install_from(&target, &f.source, &f.sha256, f.mode)?;
            tracker.confirm(&f.path, &f.sha256);
            if outcome == Outcome::Unchanged {
                tracing::debug!(path = %f.path.display(), "file unchanged");
            } else {
                tracing::info!(path = %f.path.display(), mode = format_args!("{:04o}", f.mode),
                    sha256 = %f.sha256, outcome = ?outcome, "file installed");
            }
            report.files.push(FileChange {
                path: f.path.clone(),
                outcome,
            });
        }
        tracker.save()?;
        Ok(report)
    }

    /// The directory standing for `/` for /proc/sys paths, or `None` when sysctls are skipped.
    fn sysctl_root(&self) -> Option<PathBuf> {
        match (&self.proc_root, self.root.is_host()) {
            (Some(dir), _) => Some(dir.clone()),
            (None, true) => Some(PathBuf::from("/")),
            (None, false) => None,
        }
    }

    /// Sets the plan's sysctls that differ from the running kernel. Skipped (and reported so)
    /// under a non-host root without an explicit procfs root. Blocking.
    pub fn apply_sysctls(&self, plan: &Plan) -> Result<Report> {
        let mut report = Report::default();
        if plan.sysctls.is_empty() {
            return Ok(report);
        }
        let Some(proc_root) = self.sysctl_root() else {
            report.skipped.push(Skipped {
                what: "sysctls".into(),
                reason: format!("root is {}, not /", self.root.dir().display()),
            });
            return Ok(report);
        };
        for s in &plan.sysctls {
            match sysctl::apply(&proc_root, s)? {
                Some(from) => report.sysctls_changed.push(SysctlChange {
                    key: s.key.clone(),
                    from,
                    to: s.value.clone(),
                }),
                None => report.sysctls_unchanged.push(s.key.clone()),
            }
        }
        Ok(report)
    }

    /// Sets the instance-store disks up (the plan's storage steps), before any file is
    /// written. Skipped (and reported so) under a non-host root: no real block device is
    /// touched. Async (tokio).
    pub async fn apply_storage(&self, plan: &Plan) -> Result<Report> {
        let mut report = Report::default();
        let Some(storage) = &plan.storage else {
            return Ok(report);
        };
        if let Some(w) = &storage.warning {
            tracing::warn!("{w}");
        }
        if storage.steps.is_empty() && storage.warning.is_none() {
            tracing::info!(layout = %storage.summary, "local storage is set up already");
        }
        if !self.root.is_host() {
            if !storage.steps.is_empty() {
                report.skipped.push(Skipped {
                    what: "local storage".into(),
                    reason: format!(
                        "root is {}, not /: no block device is touched",
                        self.root.dir().display()
                    ),
                });
            }
            return Ok(report);
        }
        let done = disks::apply(storage, self.bus_address.as_deref()).await?;
        report
            .actions
            .extend(done.into_iter().map(|d| format!("local storage: {d}")));
        Ok(report)
    }

    /// Carries out the plan's host actions in order (registration, swapoff, links). Skipped
    /// (and reported so) under a non-host root. Async (tokio).
    pub async fn apply_actions(&self, plan: &Plan) -> Result<Report> {
        let mut report = Report::default();
        if plan.actions.is_empty() {
            return Ok(report);
        }
        if !self.root.is_host() {
            report.skipped.push(Skipped {
                what: "host actions".into(),
                reason: format!("root is {}, not /", self.root.dir().display()),
            });
            return Ok(report);
        }
        for action in &plan.actions {
            report.actions.push(actions::run(action).await?);
        }
        Ok(report)
    }

    /// Brings up the plan's services in order through systemd's D-Bus API: daemon-reload when
    /// `files` says a unit file changed, RestartUnit for units whose inputs changed, StartUnit
    /// for the others that are not active; each job is awaited, then the service's socket.
    /// Skipped under a non-host root without an explicit bus address. Async (tokio).
    pub async fn run_services(&self, plan: &Plan, files: &Report) -> Result<Report> {
        let mut report = Report::default();
        if plan.services.is_empty() && !files.daemon_reload && files.units_to_restart.is_empty() {
            return Ok(report);
        }
        if self.bus_address.is_none() && !self.root.is_host() {
            report.skipped.push(Skipped {
                what: "services".into(),
                reason: format!("root is {}, not /", self.root.dir().display()),
            });
            return Ok(report);
        }
        let actions = ServiceActions {
            daemon_reload: files.daemon_reload,
            restart: files.units_to_restart.clone(),
        };
        let systemd = systemd::Systemd::connect(self.bus_address.as_deref()).await?;
        systemd
            .bring_up(
                &self.root,
                &plan.services,
                &actions,
                systemd::Bounds {
                    job: self.job_timeout,
                    socket: self.socket_timeout,
                },
                &mut report,
            )
            .await?;
        Ok(report)
    }

    /// The dry run of a plan of host actions only (the registration before discovery), under
    /// `heading`; empty when there is nothing to do.
    pub fn dry_run_actions(&self, plan: &Plan, heading: &str) -> String {
        if plan.actions.is_empty() {
            return String::new();
        }
        let skipped =
            (!self.root.is_host()).then(|| format!("root is {}, not /", self.root.dir().display()));
        let mut out = format!("# {heading}\n");
        diff::render_actions(&mut out, plan, skipped.as_deref());
        out.push('\n');
        out
    }

    /// The dry run: every file with path, mode and a unified diff against the disk, the sysctls
    /// (current -> wanted) and the service actions. Reads, never writes.
    pub fn dry_run(&self, plan: &Plan) -> Result<String> {
        diff::dry_run(&self.root, self.sysctl_root().as_deref(), plan)
    }
}

/// [`Applier::apply_files`] with production defaults.
pub fn apply_files(root: &Root, plan: &Plan) -> Result<Report> {
    Applier::new(root.clone()).apply_files(plan)
}

/// [`Applier::apply_sysctls`] with production defaults.
pub fn apply_sysctls(root: &Root, plan: &Plan) -> Result<Report> {
    Applier::new(root.clone()).apply_sysctls(plan)
}

/// [`Applier::run_services`] with production defaults.
pub async fn run_services(root: &Root, plan: &Plan, files: &Report) -> Result<Report> {
    Applier::new(root.clone()).run_services(plan, files).await
}

/// [`Applier::dry_run`] with production defaults.
pub fn dry_run(root: &Root, plan: &Plan) -> Result<String> {
    Applier::new(root.clone()).dry_run(plan)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn root_maps_absolute_paths_and_rejects_escapes() {
        let root = Root::at("/tmp/r");
        assert_eq!(
            root.path(Path::new("/etc/kubernetes/kubelet/config.json"))
                .unwrap(),
            Path::new("/tmp/r/etc/kubernetes/kubelet/config.json")
        );
        assert_eq!(
            Root::host().path(Path::new("/etc/x")).unwrap(),
            Path::new("/etc/x")
        );
        for bad in ["etc/x", "/etc/../x", "/", "../x"] {
            assert!(
                matches!(root.path(Path::new(bad)), Err(Error::BadPlanPath { .. })),
                "{bad}"
            );
        }
        assert!(Root::host().is_host());
        assert!(!root.is_host());
    }

    #[test]
    fn service_actions_follow_changed_files() {
        let files = vec![
            FileSpec::new("/etc/containerd/config.toml", "a", &["containerd.service"]),
            FileSpec::new(
                "/etc/kubernetes/kubelet/config.json",
                "b",
                &["kubelet.service"],
            ),
            FileSpec::new(
                "/etc/systemd/system/kubelet.service.d/10-env.conf",
                "c",
                &["kubelet.service"],
            ),
        ];
        let none = service_actions(&files, []);
        assert_eq!(none, ServiceActions::default());

        let kubelet = service_actions(&files, [Path::new("/etc/kubernetes/kubelet/config.json")]);
        assert!(!kubelet.daemon_reload);
        assert_eq!(kubelet.restart, ["kubelet.service"]);

        let unit = service_actions(
            &files,
            [
                Path::new("/etc/systemd/system/kubelet.service.d/10-env.conf"),
                Path::new("/etc/kubernetes/kubelet/config.json"),
            ],
        );
        assert!(unit.daemon_reload);
        assert_eq!(unit.restart, ["kubelet.service"]);
    }

    #[test]
    fn report_summary_and_json() {
        let mut r = Report::default();
        assert!(!r.changed());
        assert!(r.to_string().contains("nothing changed"));
        r.files.push(FileChange {
            path: "/etc/a".into(),
            outcome: Outcome::Created,
        });
        r.skipped.push(Skipped {
            what: "sysctls".into(),
            reason: "root is /tmp/x, not /".into(),
        });
        assert!(r.changed());
        let text = r.to_string();
        assert!(text.contains("file created   /etc/a"), "{text}");
        assert!(text.contains("skipped sysctls"), "{text}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["files"][0]["outcome"], "created");
    }
}
