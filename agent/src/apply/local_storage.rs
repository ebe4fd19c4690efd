//! Setting up instance-store disks (the plan's local storage step), as nodeadm does: a RAID0 or
//! RAID10 array of every NVMe instance-store disk (`mdadm`), formatted XFS when it has no
//! filesystem yet and mounted at `<mountPath>/0`, with the state directories (containerd's,
//! the pod logs, the SOCI snapshotter's, the kubelet's) copied onto it and bind-mounted back;
//! or each disk formatted and mounted by itself at `<mountPath>/1`, `/2`, ...
//!
//! Every program is run with fixed arguments (no shell) and a time bound. Each step looks
//! before it acts, so a second run changes nothing: an assembled array is reused, a formatted
//! disk is not formatted again, a mount point that is mounted is left alone, a directory already
//! moved onto the array is not copied again. Mounts are made with mount(2) in the agent's own
//! mount namespace (the host's when systemd runs it); `init` runs this step every boot before it
//! writes its files and before containerd and the kubelet start, so the files land on the
//! array and the mounts come back after a reboot.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::mount::MsFlags;

use super::{Error, Result};
use crate::model::{LocalStorage, LocalStorageKind};

/// How long `mdadm --create` may take (it returns before the initial sync).
const MDADM_TIMEOUT: Duration = Duration::from_secs(120);
/// How long formatting one device may take (`-K`: no discard, so it is quick even on TBs).
const MKFS_TIMEOUT: Duration = Duration::from_secs(600);
/// How long probing a device for a filesystem may take.
const BLKID_TIMEOUT: Duration = Duration::from_secs(30);
/// How long copying a state directory onto the array may take.
const COPY_TIMEOUT: Duration = Duration::from_secs(1800);
/// The array the agent creates (nodeadm's name).
pub const MD_DEVICE: &str = "/dev/md/kubernetes";
/// The filesystem of local storage.
const FS_TYPE: &str = "xfs";

fn failed(step: &'static str, target: impl std::fmt::Display, detail: impl Into<String>) -> Error {
    Error::LocalStorage {
        step,
        target: target.to_string(),
        detail: detail.into(),
    }
}

/// Runs `program args...` to completion within `bound`; its stdout, or an error with its
/// stderr.
async fn run(
    step: &'static str,
    target: &str,
    program: &str,
    args: &[&str],
    bound: Duration,
) -> Result<std::process::Output> {
    tracing::info!(program, ?args, "local storage");
    let out = tokio::time::timeout(
        bound,
        tokio::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| {
        failed(
            step,
            target,
            format!("{program} did not finish within {bound:?}"),
        )
    })?
    .map_err(|e| failed(step, target, format!("cannot run {program}: {e}")))?;
    Ok(out)
}

/// Whether `device` holds a filesystem (`blkid -p`: 0 found, 2 nothing found).
async fn has_filesystem(device: &str) -> Result<bool> {
    let out = run(
        "probe",
        device,
        "blkid",
        &["-p", "-o", "value", "-s", "TYPE", device],
        BLKID_TIMEOUT,
    )
    .await?;
    match out.status.code() {
        Some(0) => Ok(true),
        Some(2) => Ok(false),
        _ => Err(failed(
            "probe",
            device,
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        )),
    }
}

/// Formats `device` as XFS unless it holds a filesystem; `extra` are mkfs.xfs's options.
async fn format(device: &str, extra: &[&str], done: &mut Vec<String>) -> Result<()> {
    if has_filesystem(device).await? {
        return Ok(());
    }
    let mut args: Vec<&str> = extra.to_vec();
    args.push(device);
    let out = run("format", device, "mkfs.xfs", &args, MKFS_TIMEOUT).await?;
    if !out.status.success() {
        return Err(failed(
            "format",
            device,
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    done.push(format!("mkfs.xfs {device}"));
    Ok(())
}

/// The mount table of this process's mount namespace.
fn mounts() -> Result<Vec<crate::report::host::filesystem::Mount>> {
    let text = std::fs::read_to_string("/proc/self/mounts")
        .map_err(|e| failed("read", "/proc/self/mounts", e.to_string()))?;
    Ok(crate::report::host::filesystem::parse_mounts(&text))
}

fn is_mount_point(dir: &Path) -> Result<bool> {
    let dir = dir.display().to_string();
    Ok(mounts()?.iter().any(|m| m.mountpoint == dir))
}

/// Whether `device` (or what it links to) is mounted anywhere.
fn is_mounted(device: &str) -> Result<bool> {
    let real = std::fs::canonicalize(device).unwrap_or_else(|_| PathBuf::from(device));
    Ok(mounts()?
        .iter()
        .any(|m| m.device == device || std::fs::canonicalize(&m.device).is_ok_and(|d| d == real)))
}

fn mkdir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| failed("create", dir.display(), e.to_string()))
}

fn mount(source: &str, target: &Path, fstype: Option<&str>, flags: MsFlags) -> Result<()> {
    nix::mount::mount(Some(source), target, fstype, flags, None::<&str>).map_err(|e| {
        failed(
            if flags.contains(MsFlags::MS_BIND) {
                "bind-mount"
            } else {
                "mount"
            },
            format!("{source} at {}", target.display()),
            e.to_string(),
        )
    })
}

/// Sets up `spec` with directories under `root` (`/` on a host); `units` stops and starts the
/// services that use a directory while it moves (none in a test). Returns what it did.
pub async fn setup(
    root: &Path,
    spec: &LocalStorage,
    units: Option<&super::systemd::Systemd>,
) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let under = |p: &str| root.join(p.trim_start_matches('/'));
    match spec.kind {
        LocalStorageKind::Mount => {
            for (i, disk) in spec.disks.iter().enumerate() {
                format(disk, &["-l", "su=8b"], &mut done).await?;
                if is_mounted(disk)? {
                    continue;
                }
                let point = under(&format!("{}/{}", spec.mount_dir, i + 1));
                mkdir(&point)?;
                mount(disk, &point, Some(FS_TYPE), MsFlags::MS_NOATIME)?;
                done.push(format!("mounted {disk} at {}", point.display()));
            }
        }
        LocalStorageKind::Raid0 | LocalStorageKind::Raid10 => {
            let device = match &spec.existing_array {
                Some(array) => array.clone(),
                None => {
                    let level = if spec.kind == LocalStorageKind::Raid10 {
                        "--level=10"
                    } else {
                        "--level=0"
                    };
                    let count = format!("--raid-devices={}", spec.disks.len());
                    let name = format!("--name={}", crate::facts::host::MD_ARRAY_NAME);
                    let mut args = vec![
                        "--create",
                        "--force",
                        "--run",
                        "--verbose",
                        MD_DEVICE,
                        level,
                        &name,
                        &count,
                    ];
                    args.extend(spec.disks.iter().map(String::as_str));
                    let out = run(
                        "create the RAID array",
                        MD_DEVICE,
                        "mdadm",
                        &args,
                        MDADM_TIMEOUT,
                    )
                    .await?;
                    if !out.status.success() {
                        return Err(failed(
                            "create the RAID array",
                            MD_DEVICE,
                            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                        ));
                    }
                    done.push(format!("created {MD_DEVICE} of {}", spec.disks.join(" ")));
                    MD_DEVICE.to_owned()
                }
            };
            // The stripe unit of the array (512k) is above XFS's largest log stripe unit:
            // nodeadm sets 32k (8 blocks); instance stores come trimmed, so no discard (-K).
            format(&device, &["-K", "-l", "su=8b"], &mut done).await?;
            let array_dir = under(&format!("{}/0", spec.mount_dir));
            mkdir(&array_dir)?;
            if !is_mount_point(&array_dir)? {
                mount(&device, &array_dir, Some(FS_TYPE), MsFlags::MS_NOATIME)?;
                done.push(format!("mounted {device} at {}", array_dir.display()));
            }
            for bind in &spec.bind_mounts {
                let dir = under(&bind.path);
                if dir.exists() && is_mount_point(&dir)? {
                    continue;
                }
                let name = Path::new(&bind.path)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let on_array = array_dir.join(&name);
                let was_running = match units {
                    Some(s) => matches!(
                        s.active_state(&bind.unit).await?.as_str(),
                        "active" | "activating" | "reloading"
                    ),
                    None => false,
                };
                if was_running && let Some(s) = units {
                    s.stop(&bind.unit).await?;
                }
                mkdir(&dir)?;
                // The directory moves once: after that the array's copy is the directory (a
                // reboot keeps the array), and copying the root volume's older one over it again
                // would roll it back.
                let moved = std::fs::read_dir(&on_array).is_ok_and(|mut d| d.next().is_some());
                mkdir(&on_array)?;
                if !moved {
                    let from = format!("{}/.", dir.display());
                    let to = format!("{}/", on_array.display());
                    let out =
                        run("copy", &bind.path, "cp", &["-a", &from, &to], COPY_TIMEOUT).await?;
                    if !out.status.success() {
                        return Err(failed(
                            "copy",
                            format!("{} to {}", dir.display(), on_array.display()),
                            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                        ));
                    }
                }
                mount(
                    &on_array.display().to_string(),
                    &dir,
                    None,
                    MsFlags::MS_BIND,
                )?;
                done.push(format!(
                    "moved {} onto {}",
                    dir.display(),
                    on_array.display()
                ));
                if was_running && let Some(s) = units {
                    s.start(&bind.unit).await?;
                }
            }
        }
    }
    Ok(done)
}
