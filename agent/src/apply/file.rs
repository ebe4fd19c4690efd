//! Atomic, idempotent file writes.
//!
//! A file whose bytes and mode already match is not touched (same inode, same mtime).
//! Otherwise the new content goes to a temp file in the same directory (created 0600, then
//! fchmod to the wanted mode, so the umask never matters), is fsynced, renamed over the target,
//! and the directory is fsynced. A reader (or a crash) sees the old file or the new one, never
//! a partial one. Temp files a killed process left behind are removed the next time the same
//! file is applied (written or found current).

use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Error, Result};

/// Mode of directories the writer creates.
pub const DIR_MODE: u32 = 0o755;

/// Marker in the names of temp files, so stale ones can be recognised and removed.
const TEMP_MARKER: &str = ".eks-node-agent-tmp.";

/// Permission bits compared and set (including setuid/setgid/sticky).
const MODE_MASK: u32 = 0o7777;

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The file did not exist.
    Created,
    /// The file existed with other bytes or another mode.
    Updated,
    /// The file already had these bytes and this mode; nothing was written.
    Unchanged,
}

/// What is on disk at a path: the bytes and mode, or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// The file's bytes.
    pub contents: Vec<u8>,
    /// Its permission bits.
    pub mode: u32,
}

/// Reads the current regular file at `path` (`None` if absent or not a regular file).
pub fn read_current(path: &Path) -> Result<Option<Current>> {
    let read_err = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    if !meta.is_file() {
        return Ok(None);
    }
    let contents = fs::read(path).map_err(read_err)?;
    Ok(Some(Current {
        contents,
        mode: meta.permissions().mode() & MODE_MASK,
    }))
}

/// Whether the file at `path` already has exactly these bytes and this mode. Compares the
/// size before reading the bytes.
fn is_current(path: &Path, contents: &[u8], mode: u32) -> Result<bool> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(Error::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if !meta.is_file()
        || meta.permissions().mode() & MODE_MASK != mode
        || meta.len() != contents.len() as u64
    {
        return Ok(false);
    }
    Ok(read_current(path)?.is_some_and(|c| c.contents == contents))
}

/// Writes `contents` with `mode` to `target` atomically, unless it is already so.
pub fn write_atomic(target: &Path, contents: &[u8], mode: u32) -> Result<Outcome> {
    let (dir, name) = split(target)?;
    // Even when the file is current: an earlier run may have died after its rename.
    remove_stale_temps(&dir, &name);
    if is_current(target, contents, mode)? {
        return Ok(Outcome::Unchanged);
    }
    replace(target, &dir, &name, mode, |file| {
        file.write_all(contents).map_err(step("write", target))
    })
}

/// [`write_atomic`] for a secret: mode 0600, and a missing parent directory is created 0700
/// (a cache of credentials, say).
pub fn write_secret(target: &Path, contents: &[u8]) -> Result<Outcome> {
    if let Some(dir) = target.parent()
        && !dir.is_dir()
    {
        DirBuilder::new()
            .recursive(true)
            .mode(SECRET_DIR_MODE)
            .create(dir)
            .map_err(|source| Error::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
    }
    write_atomic(target, contents, SECRET_MODE)
}

/// Mode of secret files.
pub const SECRET_MODE: u32 = 0o600;
/// Mode of the directory [`write_secret`] creates.
pub const SECRET_DIR_MODE: u32 = 0o700;

/// An IO error of one step of a write of `target`, as [`Error::Write`].
fn step<'a>(step: &'static str, target: &'a Path) -> impl Fn(std::io::Error) -> Error + 'a {
    move |source| Error::Write {
        path: target.to_path_buf(),
        step,
        source,
    }
}

/// The one atomic replacement under both writers: `fill` writes a fresh temp file (0600) next
/// to `target`; then chmod to `mode`, fsync, rename over `target`, fsync the directory. On any
/// failure the temp file is removed and `target` keeps its content.
fn replace(
    target: &Path,
    dir: &Path,
    name: &OsString,
    mode: u32,
    fill: impl FnOnce(&mut File) -> Result<()>,
) -> Result<Outcome> {
    let existed = fs::symlink_metadata(target).is_ok();
    create_dirs(dir)?;
    let temp = temp_path(dir, name);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(step("create temp file", target))?;
        fill(&mut file)?;
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(step("chmod", target))?;
        file.sync_all().map_err(step("fsync", target))?;
        drop(file);
        fs::rename(&temp, target).map_err(step("rename", target))
    })();
    if let Err(e) = result {
        // Best effort: the target is untouched; do not leave the temp file around.
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    sync_dir(dir).map_err(step("fsync directory", target))?;
    Ok(if existed {
        Outcome::Updated
    } else {
        Outcome::Created
    })
}

/// Size of the copy buffer of [`install_from`].
const COPY_BUFFER_BYTES: usize = 64 * 1024;

/// Hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Hex SHA-256 and length of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; COPY_BUFFER_BYTES];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), len))
}

/// Installs the (already verified) file `source` at `target` with `mode`, atomically, unless
/// `target` already has this SHA-256 and mode: the streaming twin of [`write_atomic`] for
/// binaries too large to hold in memory. The copy is hashed again while it is written; a
/// source that changed since it was verified is refused and the target keeps its content.
pub fn install_from(target: &Path, source: &Path, sha256: &str, mode: u32) -> Result<Outcome> {
    let (dir, name) = split(target)?;
    remove_stale_temps(&dir, &name);
    let current = match fs::symlink_metadata(target) {
        Ok(m) if m.is_file() && m.permissions().mode() & MODE_MASK == mode => {
            let (sha, _) = sha256_file(target).map_err(|source| Error::Read {
                path: target.to_path_buf(),
                source,
            })?;
            sha == sha256
        }
        _ => false,
    };
    if current {
        return Ok(Outcome::Unchanged);
    }
    replace(target, &dir, &name, mode, |file| {
        let mut input = File::open(source).map_err(step("open staged file", target))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; COPY_BUFFER_BYTES];
        loop {
            let n = input
                .read(&mut buf)
                .map_err(step("read staged file", target))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).map_err(step("write", target))?;
        }
        if hex::encode(hasher.finalize()) != sha256 {
            return Err(Error::Write {
                path: target.to_path_buf(),
                step: "verify staged file",
                source: std::io::Error::other(format!(
                    "{} changed after it was verified",
                    source.display()
                )),
            });
        }
        Ok(())
    })
}

/// The directory and file name of a target.
fn split(target: &Path) -> Result<(PathBuf, OsString)> {
    match (target.parent(), target.file_name()) {
        (Some(dir), Some(name)) => Ok((dir.to_path_buf(), name.to_os_string())),
        _ => Err(Error::BadPlanPath {
            path: target.to_path_buf(),
        }),
    }
}

/// A fresh temp path next to the target: `.NAME.eks-node-agent-tmp.PID.N`.
fn temp_path(dir: &Path, name: &OsString) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut temp = OsString::from(".");
    temp.push(name);
    temp.push(format!("{TEMP_MARKER}{}.{n}", std::process::id()));
    dir.join(temp)
}

/// Whether a directory entry is a temp file of this writer (for any target).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(TEMP_MARKER)
}

/// Removes temp files of `name` that an interrupted earlier run left in `dir`.
pub(super) fn remove_stale_temps(dir: &Path, name: &OsString) {
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(TEMP_MARKER);
    let Some(prefix) = prefix.to_str() else {
        return;
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(prefix))
        {
            tracing::debug!(path = %entry.path().display(), "removing stale temp file");
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Creates `dir` and its missing ancestors with mode 0755 (set explicitly, not via the
/// umask), fsyncing each new directory's parent.
pub(super) fn create_dirs(dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.as_os_str().is_empty() || d.is_dir() {
            break;
        }
        missing.push(d);
        cur = d.parent();
    }
    for d in missing.into_iter().rev() {
        let err = |source| Error::CreateDir {
            path: d.to_path_buf(),
            source,
        };
        match DirBuilder::new().mode(DIR_MODE).create(d) {
            Ok(()) => {
                fs::set_permissions(d, Permissions::from_mode(DIR_MODE)).map_err(err)?;
                if let Some(parent) = d.parent() {
                    sync_dir(parent).map_err(err)?;
                }
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(())
}

/// fsyncs a directory so a rename or a new entry in it is durable.
pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn secrets_are_0600_in_a_0700_directory() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("cache/entry");
        assert_eq!(
            write_secret(&target, b"k8s-aws-v1.x").unwrap(),
            Outcome::Created
        );
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&target), 0o600);
        assert_eq!(mode(target.parent().unwrap()), 0o700);
        assert_eq!(
            write_secret(&target, b"k8s-aws-v1.x").unwrap(),
            Outcome::Unchanged
        );
    }

    fn stat(p: &Path) -> (u64, i64, i64, u32) {
        let m = fs::metadata(p).unwrap();
        (m.ino(), m.mtime(), m.mtime_nsec(), m.mode() & MODE_MASK)
    }

    #[test]
    fn creates_parents_with_explicit_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("etc/kubernetes/pki/ca.crt");
        assert_eq!(
            write_atomic(&target, b"pem", 0o600).unwrap(),
            Outcome::Created
        );
        assert_eq!(fs::read(&target).unwrap(), b"pem");
        assert_eq!(stat(&target).3, 0o600);
        for d in ["etc", "etc/kubernetes", "etc/kubernetes/pki"] {
            assert_eq!(stat(&tmp.path().join(d)).3, DIR_MODE, "{d}");
        }
        // A mode wider than any umask allows is still set exactly.
        let wide = tmp.path().join("wide");
        write_atomic(&wide, b"x", 0o777).unwrap();
        assert_eq!(stat(&wide).3, 0o777);
    }

    #[test]
    fn identical_file_is_not_rewritten() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("a/config.json");
        write_atomic(&target, b"{}\n", 0o644).unwrap();
        let before = stat(&target);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(
            write_atomic(&target, b"{}\n", 0o644).unwrap(),
            Outcome::Unchanged
        );
        assert_eq!(stat(&target), before);
    }

    #[test]
    fn changed_bytes_or_mode_replace_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("kubeconfig");
        write_atomic(&target, b"one", 0o644).unwrap();
        let ino = stat(&target).0;
        assert_eq!(
            write_atomic(&target, b"two", 0o644).unwrap(),
            Outcome::Updated
        );
        assert_eq!(fs::read(&target).unwrap(), b"two");
        assert_ne!(
            stat(&target).0,
            ino,
            "a new inode: renamed, not rewritten in place"
        );
        // Same bytes, tighter mode: still updated.
        assert_eq!(
            write_atomic(&target, b"two", 0o600).unwrap(),
            Outcome::Updated
        );
        assert_eq!(stat(&target).3, 0o600);
        // Same length, other bytes.
        assert_eq!(
            write_atomic(&target, b"owt", 0o600).unwrap(),
            Outcome::Updated
        );
        assert_eq!(fs::read(&target).unwrap(), b"owt");
    }

    #[test]
    fn stale_temp_files_are_removed_and_none_are_left() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("config.toml");
        let stale = tmp.path().join(".config.toml.eks-node-agent-tmp.1.0");
        let other = tmp.path().join(".other.eks-node-agent-tmp.1.0");
        fs::write(&stale, b"half").unwrap();
        fs::write(&other, b"half").unwrap();
        write_atomic(&target, b"new", 0o644).unwrap();
        assert!(!stale.exists());
        assert!(other.exists(), "only temps of the written file are removed");
        // Also when the file is already current.
        fs::write(&stale, b"half").unwrap();
        assert_eq!(
            write_atomic(&target, b"new", 0o644).unwrap(),
            Outcome::Unchanged
        );
        assert!(!stale.exists());
        let names: Vec<String> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.iter().filter(|n| is_temp_name(n)).count(), 1);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let tmp = tempfile::tempdir().unwrap();
        // The target is a directory: rename fails; nothing partial, no temp left.
        let target = tmp.path().join("d");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("keep"), b"x").unwrap();
        let err = write_atomic(&target, b"new", 0o644).unwrap_err();
        assert!(
            matches!(&err, Error::Write { step: "rename", .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("d (rename)"), "{err}");
        assert!(target.join("keep").exists());
        let temps = fs::read_dir(tmp.path())
            .unwrap()
            .filter(|e| is_temp_name(e.as_ref().unwrap().file_name().to_str().unwrap()))
            .count();
        assert_eq!(temps, 0);
    }

    #[test]
    fn symlink_target_is_replaced_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        fs::write(&elsewhere, b"untouched").unwrap();
        let target = tmp.path().join("link");
        std::os::unix::fs::symlink(&elsewhere, &target).unwrap();
        assert_eq!(
            write_atomic(&target, b"untouched", 0o644).unwrap(),
            Outcome::Updated
        );
        assert!(!fs::symlink_metadata(&target).unwrap().is_symlink());
        assert_eq!(fs::read(&elsewhere).unwrap(), b"untouched");
    }
}
