//! The host lock: `init`, `install`, `upgrade` and `uninstall` each change the host and the
//! agent's record of it (`files.json`), so only one of them runs at a time. The lock is an
//! advisory `flock(2)` on [`LOCK_FILE`] under the root, held for the whole command and
//! released when the process ends (also when it is killed: the kernel drops the lock with the
//! last descriptor). The file is never written, so taking the lock changes nothing a second
//! run could see; a command that cannot get the lock names the holder from the kernel's
//! table of locks (`/proc/locks`: the PID holding a FLOCK on the file's inode) and that
//! process's command line. A second command waits up to its bound (`--lock-wait`,
//! [`DEFAULT_LOCK_WAIT`]) and then fails with [`super::Error::LockBusy`]. Dry runs change
//! nothing and take no lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Error, Result, Root};

/// The lock file, under the root. `/run` is cleared at boot, so a lock never outlives one.
pub const LOCK_FILE: &str = "/run/eks-node-agent/host.lock";
/// How long a command waits for another to release the lock by default.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(120);
/// How often a waiting command tries again.
const RETRY_EVERY: Duration = Duration::from_millis(100);
/// The most characters of the holder's command line shown.
const MAX_HOLDER_CHARS: usize = 200;
/// The kernel's table of file locks.
const PROC_LOCKS: &str = "/proc/locks";

/// The lock, held until dropped.
#[derive(Debug)]
pub struct HostLock {
    path: PathBuf,
    _file: File,
}

impl HostLock {
    /// Takes the lock of `root` for `command` (e.g. `init`), waiting up to `wait` for the
    /// current holder; `on_wait` is called once with the holder's description when the lock
    /// is busy.
    pub fn acquire(
        root: &Root,
        command: &str,
        wait: Duration,
        on_wait: impl FnOnce(&str),
    ) -> Result<HostLock> {
        let path = root.path(Path::new(LOCK_FILE))?;
        acquire_at(&path, command, wait, on_wait)
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn acquire_at(
    path: &Path,
    command: &str,
    wait: Duration,
    on_wait: impl FnOnce(&str),
) -> Result<HostLock> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
    }
    let lock_err = |source| Error::Lock {
        path: path.to_owned(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(lock_err)?;
    let started = Instant::now();
    let mut on_wait = Some(on_wait);
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                let holder = holder(&file);
                if let Some(f) = on_wait.take() {
                    f(&holder);
                }
                if started.elapsed() >= wait {
                    return Err(Error::LockBusy {
                        path: path.to_owned(),
                        holder,
                        waited_secs: wait.as_secs(),
                    });
                }
                std::thread::sleep(RETRY_EVERY.min(wait.saturating_sub(started.elapsed())));
            }
            Err(TryLockError::Error(source)) => return Err(lock_err(source)),
        }
    }
    tracing::debug!(path = %path.display(), command, "host lock taken");
    Ok(HostLock {
        path: path.to_owned(),
        _file: file,
    })
}

/// The process holding a FLOCK on `file`, from `/proc/locks`: `pid N (command line)`, or
/// `an unknown process`.
fn holder(file: &File) -> String {
    let Ok(inode) = file.metadata().map(|m| m.ino()) else {
        return "an unknown process".to_owned();
    };
    let table = std::fs::read_to_string(PROC_LOCKS).unwrap_or_default();
    match holder_pid(&table, inode) {
        Some(pid) => {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| {
                    String::from_utf8_lossy(&b)
                        .split('\0')
                        .filter(|a| !a.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            let shown: String = cmdline.chars().take(MAX_HOLDER_CHARS).collect();
            format!("pid {pid} ({shown})")
        }
        None => "an unknown process".to_owned(),
    }
}

/// The PID of the FLOCK on `inode` in `/proc/locks` text
/// (`1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234 0 EOF`).
fn holder_pid(table: &str, inode: u64) -> Option<u32> {
    table.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // A waiter's line starts with "->": only the holder counts.
        if f.len() < 6 || f[1] != "FLOCK" {
            return None;
        }
        let ino: u64 = f[5].rsplit(':').next()?.parse().ok()?;
        (ino == inode).then(|| f[4].parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_then_fails_naming_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::at(dir.path());
        let first = HostLock::acquire(&root, "init", Duration::ZERO, |_| {}).unwrap();
        let mut seen = String::new();
        let started = Instant::now();
        let err = HostLock::acquire(&root, "install", Duration::from_millis(300), |h| {
            seen = h.to_owned()
        })
        .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(300));
        let text = err.to_string();
        let me = format!("pid {} (", std::process::id());
        assert!(text.contains(&me), "{text}");
        assert!(seen.starts_with(&me), "{seen}");
        drop(first);
        let second = HostLock::acquire(&root, "install", Duration::ZERO, |_| {}).unwrap();
        assert_eq!(
            std::fs::read(second.path()).unwrap(),
            b"",
            "the lock file is never written"
        );
    }

    #[test]
    fn the_holder_is_read_from_the_kernels_lock_table() {
        let table = "1: POSIX  ADVISORY  WRITE 99 fd:01:555 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4242 fd:01:1234 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 4343 fd:01:1234 0 EOF\n";
        assert_eq!(holder_pid(table, 1234), Some(4242));
        assert_eq!(holder_pid(table, 555), None);
        assert_eq!(holder_pid(table, 7), None);
    }

    #[test]
    fn a_waiter_gets_the_lock_when_the_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::at(dir.path());
        let first = HostLock::acquire(&root, "init", Duration::ZERO, |_| {}).unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(first);
        });
        let mut waited = false;
        HostLock::acquire(&root, "uninstall", Duration::from_secs(10), |_| {
            waited = true
        })
        .unwrap();
        assert!(waited);
        releaser.join().unwrap();
    }
}
