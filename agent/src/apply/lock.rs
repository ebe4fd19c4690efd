//! The host lock: `init`, `install`, `upgrade` and `uninstall` each change the host and the
//! agent's record of it (`files.json`), so only one of them runs at a time. The lock is an
//! advisory `flock(2)` on [`LOCK_FILE`] under the root, held for the whole command and
//! released when the process ends (also when it is killed: the kernel drops the lock with the
//! last descriptor). The holder writes its PID and command into the file so that a command
//! that cannot get the lock can say who has it. A second command waits up to its bound
//! (`--lock-wait`, [`DEFAULT_LOCK_WAIT`]) and then fails with [`super::Error::LockBusy`].
//! Dry runs change nothing and take no lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Error, Result, Root};

/// The lock file, under the root. `/run` is cleared at boot, so a lock never outlives one.
pub const LOCK_FILE: &str = "/run/eks-node-agent/host.lock";
/// How long a command waits for another to release the lock by default.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(120);
/// How often a waiting command tries again.
const RETRY_EVERY: Duration = Duration::from_millis(100);
/// The most bytes of the holder's description read back.
const MAX_HOLDER_BYTES: u64 = 512;

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
    let mut file = OpenOptions::new()
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
                let holder = holder(&mut file);
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
    let me = format!("pid {} ({command})\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(me.as_bytes()))
        .map_err(lock_err)?;
    Ok(HostLock {
        path: path.to_owned(),
        _file: file,
    })
}

/// What the holder wrote about itself, or `an unknown process`.
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let read = file
        .rewind()
        .and_then(|()| file.take(MAX_HOLDER_BYTES).read_to_string(&mut text));
    match read {
        Ok(_) if !text.trim().is_empty() => text.trim().to_owned(),
        _ => "an unknown process".to_owned(),
    }
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
        assert!(text.contains("(init)"), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(seen.contains("(init)"), "{seen}");
        drop(first);
        let second = HostLock::acquire(&root, "install", Duration::ZERO, |_| {}).unwrap();
        assert_eq!(
            std::fs::read_to_string(second.path()).unwrap(),
            format!("pid {} (install)\n", std::process::id())
        );
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
