//! Setting the instance-store disks up: the plan's [`DiskStep`]s, each a fixed program with
//! fixed arguments (no shell), bounded in time, and idempotent:
//!
//! - `mdadm --create`/`--assemble` run only as planned (a running array is never touched; an
//!   array whose members carry superblocks is assembled, never re-created);
//! - `mkfs.xfs` runs only on a device `blkid -p` finds blank right before it;
//! - a mount or bind mount already in place (mountinfo) is left alone;
//! - a state directory is moved onto the array only when the array has no copy of it yet:
//!   copied to `<dir>.partial` (`cp -a --one-file-system`), renamed into place, then removed
//!   from the root volume (unless mounts sit below it). Its service is stopped first if it runs.
//!
//! What was done (or the error that stopped it) is recorded in
//! [`LOCAL_STORAGE_RECORD`] for `status`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Error, Result};
use crate::facts::command::{self, Ran};
use crate::model::disks::{MountEntry, parse_export, parse_mountinfo};
use crate::model::paths::LOCAL_STORAGE_RECORD;
use crate::render::local_storage::{DiskStep, StoragePlan};

/// Bound on `mdadm --create`/`--assemble`.
pub const MDADM_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on `mkfs.xfs` (seconds even on large arrays with `-K`).
pub const MKFS_TIMEOUT: Duration = Duration::from_secs(600);
/// Bound on a mount, a probe, `udevadm settle`.
pub const MOUNT_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on copying a state directory onto the array.
pub const MOVE_TIMEOUT: Duration = Duration::from_secs(1800);
/// Bound on stopping a service before its directory moves.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(90);

/// What `init` did with the disks at this boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// `RAID0`, `RAID10`, `Mount`.
    pub strategy: String,
    /// The layout in one line.
    pub summary: String,
    /// The warning (no disks), if any.
    #[serde(default)]
    pub warning: Option<String>,
    /// Steps carried out (or found done).
    #[serde(default)]
    pub done: Vec<String>,
    /// The error that stopped the setup, if one did.
    #[serde(default)]
    pub error: Option<String>,
    /// The mount points the layout needs (`status` checks they are mounted).
    #[serde(default)]
    pub mounts: Vec<PathBuf>,
}

/// Reads the record under `root` (`None`: init has not set the disks up at this boot).
pub fn read_record(root: &Path) -> Option<std::result::Result<Record, String>> {
    let path = root.join(LOCAL_STORAGE_RECORD.trim_start_matches('/'));
    let text = std::fs::read(&path).ok()?;
    Some(serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display())))
}

fn failed(argv: &[String], detail: String) -> Error {
    Error::Disk {
        command: argv.join(" "),
        detail,
    }
}

async fn run(argv: &[String], bound: Duration) -> Result<Ran> {
    let ran = command::run(argv, bound)
        .await
        .map_err(|e| failed(argv, crate::model::text::error_chain(&e)))?;
    if ran.success() {
        Ok(ran)
    } else {
        let code = ran
            .code
            .map_or("a signal".to_owned(), |c| format!("exit {c}"));
        Err(failed(argv, format!("{code}: {}", ran.tail())))
    }
}

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

fn mounts() -> Vec<MountEntry> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse_mountinfo(&t))
        .unwrap_or_default()
}

fn mounted_at(target: &Path) -> bool {
    mounts().iter().any(|m| m.target == target)
}

/// Waits for udev to create the links of new devices (bounded).
async fn settle() {
    let a = argv(&[
        "udevadm",
        "settle",
        &format!("--timeout={}", MOUNT_TIMEOUT.as_secs()),
    ]);
    if let Err(e) = run(&a, MOUNT_TIMEOUT + Duration::from_secs(5)).await {
        tracing::warn!(error = %crate::model::text::error_chain(&e), "udevadm settle did not finish");
    }
}

fn mkdir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|source| Error::CreateDir {
        path: path.to_path_buf(),
        source,
    })
}

/// The process name of a service's daemon (to tell whether it runs without D-Bus at boot).
fn daemon_of(service: &str) -> &str {
    match service {
        "soci-snapshotter.service" => "soci-snapshotter-grpc",
        other => other.trim_end_matches(".service"),
    }
}

fn process_running(name: &str) -> bool {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return false;
    };
    rd.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .any(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == name))
}

/// Moves `target`'s data to `source` (on the array) unless `source` exists.
async fn move_data(
    source: &Path,
    target: &Path,
    service: &str,
    bus: Option<&str>,
    done: &mut Vec<String>,
) -> Result<()> {
    if source.exists() {
        done.push(format!("{} is on the array already", source.display()));
        return Ok(());
    }
    mkdir(target)?;
    if process_running(daemon_of(service)) {
        let systemd = super::systemd::Systemd::connect(bus).await?;
        if systemd.stop_if_active(service, STOP_TIMEOUT).await? {
            done.push(format!("stopped {service} to move {}", target.display()));
        }
    }
    let partial = source.with_extension("partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|source| Error::Remove {
            path: partial.clone(),
            source,
        })?;
    }
    let cp = vec![
        "cp".to_owned(),
        "-a".into(),
        "--one-file-system".into(),
        "--no-target-directory".into(),
        target.display().to_string(),
        partial.display().to_string(),
    ];
    run(&cp, MOVE_TIMEOUT).await?;
    std::fs::rename(&partial, source).map_err(|e| Error::Write {
        path: source.to_path_buf(),
        step: "rename",
        source: e,
    })?;
    // The copy is complete: free the root volume, unless something is mounted below the
    // directory (pod volumes of a running kubelet): then the originals stay, hidden.
    let nested = mounts()
        .iter()
        .any(|m| m.target.starts_with(target) && m.target != target);
    if nested {
        tracing::warn!(dir = %target.display(), "mounts below it: the originals stay on the root volume, hidden by the bind mount");
    } else if let Ok(rd) = std::fs::read_dir(target) {
        for e in rd.flatten() {
            let p = e.path();
            let r = if e.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            r.map_err(|source| Error::Remove { path: p, source })?;
        }
    }
    done.push(format!(
        "moved {} onto the array ({})",
        target.display(),
        source.display()
    ));
    Ok(())
}

async fn step(s: &DiskStep, bus: Option<&str>, done: &mut Vec<String>) -> Result<()> {
    let a = s.argv();
    match s {
        DiskStep::CreateArray { .. } | DiskStep::AssembleArray { .. } => {
            run(&a, MDADM_TIMEOUT).await?;
            settle().await;
            done.push(a.join(" "));
        }
        DiskStep::Format { device, .. } => {
            let d = device.display().to_string();
            let probe = command::run(&argv(&["blkid", "-p", "-o", "export", &d]), MOUNT_TIMEOUT)
                .await
                .map_err(|e| failed(&a, crate::model::text::error_chain(&e)))?;
            match probe.code {
                Some(2) => {
                    run(&a, MKFS_TIMEOUT).await?;
                    settle().await;
                    done.push(a.join(" "));
                }
                Some(0) => {
                    let kv = parse_export(&probe.stdout);
                    match kv.get("TYPE").map(String::as_str) {
                        Some("xfs") => done.push(format!("{d} holds XFS already: not formatted")),
                        other => {
                            return Err(failed(
                                &a,
                                format!(
                                    "not run: {d} holds {} (refusing to overwrite it)",
                                    other.unwrap_or("a signature")
                                ),
                            ));
                        }
                    }
                }
                _ => {
                    return Err(failed(
                        &a,
                        format!("not run: blkid cannot read {d}: {}", probe.tail()),
                    ));
                }
            }
        }
        DiskStep::Mount { what, at, device } => {
            if mounted_at(at) {
                done.push(format!("{} is mounted already", at.display()));
                return Ok(());
            }
            if !what.exists() {
                settle().await;
            }
            if !what.exists() {
                return Err(failed(
                    &a,
                    format!(
                        "not run: udev did not create {} for {}",
                        what.display(),
                        device.display()
                    ),
                ));
            }
            mkdir(at)?;
            run(&a, MOUNT_TIMEOUT).await?;
            done.push(a.join(" "));
        }
        DiskStep::Bind {
            source,
            target,
            service,
        } => {
            if mounted_at(target) {
                done.push(format!("{} is bind-mounted already", target.display()));
                return Ok(());
            }
            move_data(source, target, service, bus, done).await?;
            mkdir(source)?;
            run(&a, MOUNT_TIMEOUT).await?;
            done.push(a.join(" "));
        }
    }
    Ok(())
}

/// Carries the steps out in order, on the host; records the outcome under `/`.
pub async fn apply(plan: &StoragePlan, bus: Option<&str>) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let mut outcome = Ok(());
    for s in &plan.steps {
        tracing::info!(step = %s.describe(), "local storage");
        if let Err(e) = step(s, bus, &mut done).await {
            outcome = Err(e);
            break;
        }
    }
    let record = Record {
        strategy: plan.layout.strategy().as_str().to_owned(),
        summary: plan.summary.clone(),
        warning: plan.warning.clone(),
        done: done.clone(),
        error: outcome
            .as_ref()
            .err()
            .map(|e| crate::model::text::error_chain(e)),
        mounts: mount_points(plan),
    };
    if let Err(e) = write_record(Path::new(LOCAL_STORAGE_RECORD), &record) {
        tracing::warn!(error = %crate::model::text::error_chain(&e), "local storage record not written");
    }
    outcome.map(|()| done)
}

/// Records that the layout was refused before any step ran (the error names the disks).
pub fn record_refusal(strategy: &str, error: &str) {
    let record = Record {
        strategy: strategy.to_owned(),
        summary: format!("{strategy}: refused"),
        warning: None,
        done: Vec::new(),
        error: Some(error.to_owned()),
        mounts: Vec::new(),
    };
    if let Err(e) = write_record(Path::new(LOCAL_STORAGE_RECORD), &record) {
        tracing::warn!(error = %crate::model::text::error_chain(&e), "local storage record not written");
    }
}

/// The mount points of the layout.
pub fn mount_points(plan: &StoragePlan) -> Vec<PathBuf> {
    use crate::model::disks::StorageLayout;
    match &plan.layout {
        StorageLayout::NoDisks { .. } => Vec::new(),
        StorageLayout::Array { array, .. } => std::iter::once(array.mount_point.clone())
            .chain(array.binds.iter().map(|b| b.target.clone()))
            .collect(),
        StorageLayout::Mounts { disks, .. } => {
            disks.iter().map(|d| d.mount_point.clone()).collect()
        }
    }
}

/// Writes the record atomically.
pub fn write_record(path: &Path, record: &Record) -> Result<()> {
    let text = serde_json::to_vec_pretty(record).unwrap_or_default();
    super::file::write_atomic(path, &text, 0o644).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_daemons_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(read_record(tmp.path()).is_none());
        let path = tmp
            .path()
            .join(LOCAL_STORAGE_RECORD.trim_start_matches('/'));
        let r = Record {
            strategy: "RAID0".into(),
            summary: "s".into(),
            warning: None,
            done: vec!["x".into()],
            error: Some("mkfs.xfs failed".into()),
            mounts: vec!["/mnt/k8s-disks/0".into()],
        };
        write_record(&path, &r).unwrap();
        assert_eq!(read_record(tmp.path()).unwrap().unwrap(), r);
        assert_eq!(daemon_of("containerd.service"), "containerd");
        assert_eq!(
            daemon_of("soci-snapshotter.service"),
            "soci-snapshotter-grpc"
        );
    }

    #[tokio::test]
    async fn a_failing_command_is_named_with_its_output() {
        let err = run(
            &argv(&["sh", "-c", "echo 'mkfs.xfs: /dev/x too small' >&2; exit 1"]),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("`sh -c"), "{err}");
        assert!(err.contains("exit 1: mkfs.xfs: /dev/x too small"), "{err}");
    }
}
