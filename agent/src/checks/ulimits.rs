//! `status`'s `ulimits` check: the resource limits the running kubelet and containerd got
//! (`/proc/<pid>/limits`, as `nodeadm debug` looks at them). Containers inherit containerd's
//! limits, and the kubelet watches many files: an open-files soft limit under
//! [`MIN_OPEN_FILES`] or a process limit under [`MIN_PROCESSES`] is a warning (the units
//! EKS ships set `LimitNOFILE=infinity` or 1048576). A daemon that does not run is skipped.

use std::path::{Path, PathBuf};

use super::Outcome;
use super::status::{ok, warn};

/// The least open-files soft limit that is not a warning.
pub const MIN_OPEN_FILES: u64 = 65_536;
/// The least processes soft limit that is not a warning.
pub const MIN_PROCESSES: u64 = 4_096;
/// The daemons looked at (their `comm`).
pub const DAEMONS: [&str; 2] = ["kubelet", "containerd"];

/// The soft limits of one process: open files and processes (`None`: unlimited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Its PID.
    pub pid: u32,
    /// `Max open files`.
    pub open_files: Option<u64>,
    /// `Max processes`.
    pub processes: Option<u64>,
}

/// One soft limit from `/proc/<pid>/limits` text (`unlimited` is `None`); `Err` when the line
/// is missing or does not parse.
fn soft_limit(text: &str, name: &str) -> Result<Option<u64>, String> {
    let line = text
        .lines()
        .find(|l| l.starts_with(name))
        .ok_or_else(|| format!("no {name:?} line"))?;
    let soft = line[name.len()..]
        .split_whitespace()
        .next()
        .ok_or_else(|| format!("{name:?} has no value"))?;
    if soft == "unlimited" {
        return Ok(None);
    }
    soft.parse()
        .map(Some)
        .map_err(|_| format!("{name:?} soft limit {soft:?} is not a number"))
}

/// Parses `/proc/<pid>/limits`.
pub fn parse(pid: u32, text: &str) -> Result<Limits, String> {
    Ok(Limits {
        pid,
        open_files: soft_limit(text, "Max open files")?,
        processes: soft_limit(text, "Max processes")?,
    })
}

/// The first process of each of `names` (by `comm`) under `proc_root`: its PID and its
/// directory (`None` for a name no process has).
pub fn processes_named<'a>(
    proc_root: &Path,
    names: &[&'a str],
) -> Vec<(&'a str, Option<(u32, PathBuf)>)> {
    let mut found: Vec<(&'a str, Option<(u32, PathBuf)>)> =
        names.iter().map(|d| (*d, None)).collect();
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return found;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(e.path().join("comm")) else {
            continue;
        };
        if let Some(slot) = found
            .iter_mut()
            .find(|(d, s)| *d == comm.trim() && s.is_none())
        {
            slot.1 = Some((pid, e.path()));
        }
    }
    found
}

/// The limits of each running daemon of [`DAEMONS`], found by `comm` under `proc_root`
/// (`None` for one that does not run).
pub fn read(proc_root: &Path) -> Vec<(&'static str, Option<Result<Limits, String>>)> {
    processes_named(proc_root, &DAEMONS)
        .into_iter()
        .map(|(daemon, process)| {
            (
                daemon,
                process.map(|(pid, dir)| {
                    std::fs::read_to_string(dir.join("limits"))
                        .map_err(|err| format!("/proc/{pid}/limits: {err}"))
                        .and_then(|t| parse(pid, &t))
                }),
            )
        })
        .collect()
}

fn shown(v: Option<u64>) -> String {
    v.map_or_else(|| "unlimited".to_owned(), |n| n.to_string())
}

/// The check over what [`read`] found.
pub fn check(found: &[(&'static str, Option<Result<Limits, String>>)]) -> Outcome {
    let mut seen = Vec::new();
    let mut low = Vec::new();
    for (daemon, limits) in found {
        match limits {
            None => seen.push(format!("{daemon}: not running")),
            Some(Err(e)) => seen.push(format!("{daemon}: {e}")),
            Some(Ok(l)) => {
                seen.push(format!(
                    "{daemon} (pid {}): open files {}, processes {}",
                    l.pid,
                    shown(l.open_files),
                    shown(l.processes)
                ));
                if l.open_files.is_some_and(|n| n < MIN_OPEN_FILES) {
                    low.push(format!(
                        "{daemon} open files {} < {MIN_OPEN_FILES}",
                        shown(l.open_files)
                    ));
                }
                if l.processes.is_some_and(|n| n < MIN_PROCESSES) {
                    low.push(format!(
                        "{daemon} processes {} < {MIN_PROCESSES}",
                        shown(l.processes)
                    ));
                }
            }
        }
    }
    let evidence = seen.join("; ");
    if low.is_empty() {
        ok(evidence)
    } else {
        warn(
            "LowResourceLimits",
            format!("{evidence}: {}", low.join(", ")),
            "raise the unit's limits with a drop-in: [Service] LimitNOFILE=1048576 and LimitNPROC=infinity in /etc/systemd/system/<unit>.service.d/, then systemctl daemon-reload and restart it",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    const LIMITS: &str = "Limit                     Soft Limit           Hard Limit           Units     \n\
Max cpu time              unlimited            unlimited            seconds   \n\
Max processes             NPROC                NPROC                processes \n\
Max open files            NOFILE               1048576              files     \n";

    fn limits(nproc: &str, nofile: &str) -> String {
        LIMITS.replace("NPROC", nproc).replace("NOFILE", nofile)
    }

    #[test]
    fn low_limits_warn_and_unlimited_passes() {
        let good = parse(7, &limits("unlimited", "1048576")).unwrap();
        assert_eq!(good.open_files, Some(1_048_576));
        assert_eq!(good.processes, None);
        let low = parse(8, &limits("1024", "1024")).unwrap();
        let o = check(&[("kubelet", Some(Ok(good))), ("containerd", None)]);
        assert_eq!(o.status, Status::Ok, "{o:?}");
        assert!(o.evidence.contains("containerd: not running"), "{o:?}");
        let o = check(&[("kubelet", None), ("containerd", Some(Ok(low)))]);
        assert_eq!(o.status, Status::Warn, "{o:?}");
        assert!(
            o.evidence.contains("containerd open files 1024 < 65536"),
            "{o:?}"
        );
        assert!(parse(9, "garbage").is_err());
    }
}
