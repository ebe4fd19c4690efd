//! The agent's record of every file it writes, so that `uninstall` undoes exactly that.
//!
//! `/var/lib/eks-node-agent/files.json` (under the [`Root`]) maps each host path the agent
//! wrote (by `init`'s plan or by `install`) to:
//!
//! - `prior`: what was at the path before the agent first wrote it: `absent`, a `file` (its
//!   SHA-256, mode, owner, and a byte-for-byte backup under `/var/lib/eks-node-agent/backup/`
//!   + the path), or a `symlink` (its target);
//! - `sha256`: the content the agent last wrote there, and `pending`: the content it is about
//!   to write (write-ahead: the record is saved before the file is written, so a crash between
//!   the two never leaves an unrecorded file).
//!
//! plus `dirs`: the directories the agent created (missing parents of what it wrote).
//!
//! The record is written atomically ([`file::write_atomic`], mode 0600: backups can be secrets)
//! and only when it changes, so an idempotent `init` does not touch it.
//!
//! [`uninstall`] checks everything first and changes nothing if any recorded file was changed
//! by someone else since the agent wrote it (unless forced); then it removes what the agent
//! created, restores what it replaced (bytes, mode, owner; symlinks as symlinks), removes its
//! state, and removes the directories it created when they are empty. Each step can be
//! repeated: an interrupted uninstall finishes when run again.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Error, Result, Root, file};

/// The agent's state directory.
pub const STATE_DIR: &str = crate::model::paths::AGENT_STATE_DIR;
/// The record of the agent's files.
pub const MANIFEST: &str = "/var/lib/eks-node-agent/files.json";
/// Where copies of the files the agent replaced are kept.
pub const BACKUP_DIR: &str = "/var/lib/eks-node-agent/backup";
/// The token cache below the state directory (written by `eks-node-agent token`).
pub const TOKEN_CACHE_DIR: &str = "/var/lib/eks-node-agent/token-cache";
/// The agent's runtime directory (tmpfs on a host).
pub const RUNTIME_DIR: &str = crate::model::paths::AGENT_RUN_DIR;
/// Version of the record's format.
pub const FORMAT_VERSION: u32 = 1;
/// Mode of the record and of backups.
const PRIVATE_MODE: u32 = 0o600;
/// Permission bits recorded and restored.
const MODE_MASK: u32 = 0o7777;

/// What was at a path before the agent first wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Prior {
    /// Nothing: uninstall removes the agent's file.
    Absent,
    /// A regular file: uninstall puts it back from the backup.
    File {
        /// The backup's host path.
        backup: PathBuf,
        /// SHA-256 of its bytes.
        sha256: String,
        /// Its permission bits.
        mode: u32,
        /// Its owner.
        uid: u32,
        /// Its group.
        gid: u32,
    },
    /// A symbolic link: uninstall puts the link back.
    Symlink {
        /// The link's target, as read.
        target: PathBuf,
    },
}

/// One file the agent wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// SHA-256 of what the agent last wrote (absent until the first write finished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// SHA-256 of what the agent is about to write (absent once written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
    /// What was there before.
    pub prior: Prior,
}

impl Entry {
    /// Whether `sha` is a content the agent wrote (or was about to write) here.
    fn is_agents(&self, sha: &str) -> bool {
        self.sha256.as_deref() == Some(sha) || self.pending.as_deref() == Some(sha)
    }
}

/// The whole record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileManifest {
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// Every file the agent wrote, by host path.
    pub files: BTreeMap<PathBuf, Entry>,
    /// Directories the agent created, by host path.
    pub dirs: BTreeSet<PathBuf>,
}

impl Default for FileManifest {
    fn default() -> Self {
        FileManifest {
            version: FORMAT_VERSION,
            files: BTreeMap::new(),
            dirs: BTreeSet::new(),
        }
    }
}

/// Parses the record (pure). `path` names it in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<FileManifest> {
    let manifest: FileManifest =
        serde_json::from_slice(bytes).map_err(|source| Error::ManifestCorrupt {
            path: path.to_path_buf(),
            source,
        })?;
    if manifest.version != FORMAT_VERSION {
        return Err(Error::ManifestVersion {
            path: path.to_path_buf(),
            found: manifest.version,
        });
    }
    Ok(manifest)
}

/// Reads the record under `root`; `None` when the agent has written nothing there.
pub fn load(root: &Root) -> Result<Option<FileManifest>> {
    let path = root.path(Path::new(MANIFEST))?;
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
        file::remove_stale_temps(dir, &name.to_os_string());
    }
    match fs::read(&path) {
        Ok(bytes) => parse(&bytes, &path).map(Some),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read { path, source }),
    }
}

/// Whether a host path is the record itself or a backup (never recorded: they are the
/// record's own state).
fn is_state_path(path: &Path) -> bool {
    path == Path::new(MANIFEST) || path.starts_with(BACKUP_DIR)
}

/// Keeps the record while files are written: [`Tracker::intend`] before each write,
/// [`Tracker::save`] before the writes start, [`Tracker::confirm`] after each, and
/// [`Tracker::save`] at the end.
#[derive(Debug)]
pub struct Tracker {
    root: Root,
    manifest: FileManifest,
    dirty: bool,
}

impl Tracker {
    /// The record under `root` (empty when there is none yet).
    pub fn load(root: &Root) -> Result<Tracker> {
        Ok(Tracker {
            root: root.clone(),
            manifest: load(root)?.unwrap_or_default(),
            dirty: false,
        })
    }

    /// The record as it stands.
    pub fn manifest(&self) -> &FileManifest {
        &self.manifest
    }

    /// Records that `path` (a host path) is about to get content with SHA-256 `sha256`. The
    /// first time the agent writes a path, what is there is recorded (and a regular file is
    /// backed up) and so are the parent directories that do not exist yet.
    pub fn intend(&mut self, path: &Path, sha256: &str) -> Result<()> {
        if is_state_path(path) {
            return Err(Error::BadPlanPath {
                path: path.to_path_buf(),
            });
        }
        if let Some(entry) = self.manifest.files.get_mut(path) {
            if !entry.is_agents(sha256) {
                entry.pending = Some(sha256.to_owned());
                self.dirty = true;
            }
            return Ok(());
        }
        let target = self.root.path(path)?;
        let read_err = |source| Error::Read {
            path: target.clone(),
            source,
        };
        let prior = match fs::symlink_metadata(&target) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.record_missing_dirs(path)?;
                Prior::Absent
            }
            Err(e) => return Err(read_err(e)),
            Ok(m) if m.file_type().is_symlink() => Prior::Symlink {
                target: fs::read_link(&target).map_err(read_err)?,
            },
            Ok(m) if m.is_file() => {
                let contents = fs::read(&target).map_err(read_err)?;
                let backup = Path::new(BACKUP_DIR).join(path.strip_prefix("/").unwrap_or(path));
                self.record_missing_dirs(&backup)?;
                file::write_atomic(&self.root.path(&backup)?, &contents, PRIVATE_MODE)?;
                tracing::info!(path = %path.display(), backup = %backup.display(), "backed up a file the agent replaces");
                Prior::File {
                    backup,
                    sha256: file::sha256_hex(&contents),
                    mode: m.mode() & MODE_MASK,
                    uid: m.uid(),
                    gid: m.gid(),
                }
            }
            // A directory or a special file: the write itself fails and says so.
            Ok(_) => return Ok(()),
        };
        self.manifest.files.insert(
            path.to_path_buf(),
            Entry {
                sha256: None,
                pending: Some(sha256.to_owned()),
                prior,
            },
        );
        self.dirty = true;
        Ok(())
    }

    /// Records that `path` now holds content `sha256`.
    pub fn confirm(&mut self, path: &Path, sha256: &str) {
        if let Some(entry) = self.manifest.files.get_mut(path) {
            if entry.sha256.as_deref() != Some(sha256) {
                entry.sha256 = Some(sha256.to_owned());
                self.dirty = true;
            }
            if entry.pending.is_some() {
                entry.pending = None;
                self.dirty = true;
            }
        }
    }

    /// Writes the record if it changed.
    pub fn save(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        self.record_missing_dirs(Path::new(MANIFEST))?;
        write_manifest(&self.root, &self.manifest)?;
        self.dirty = false;
        Ok(())
    }

    /// Records the ancestors of `host_path` that do not exist under the root.
    fn record_missing_dirs(&mut self, host_path: &Path) -> Result<()> {
        let mut cur = host_path.parent();
        while let Some(dir) = cur {
            if dir == Path::new("/") || dir.as_os_str().is_empty() {
                break;
            }
            if fs::symlink_metadata(self.root.path(dir)?).is_ok() {
                break;
            }
            self.dirty |= self.manifest.dirs.insert(dir.to_path_buf());
            cur = dir.parent();
        }
        Ok(())
    }
}

fn write_manifest(root: &Root, manifest: &FileManifest) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(manifest).map_err(|e| Error::Write {
        path: PathBuf::from(MANIFEST),
        step: "serialize",
        source: std::io::Error::other(e),
    })?;
    json.push(b'\n');
    file::write_atomic(&root.path(Path::new(MANIFEST))?, &json, PRIVATE_MODE)?;
    Ok(())
}

/// What uninstall does to one recorded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Remove the agent's file (nothing was there before).
    Remove,
    /// Put the previous file back from its backup.
    Restore {
        /// The backup's host path.
        backup: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// Its owner.
        uid: u32,
        /// Its group.
        gid: u32,
    },
    /// Put the previous symlink back.
    Relink {
        /// The link target.
        target: PathBuf,
    },
    /// Already as it was before the agent (an earlier uninstall got this far).
    Nothing,
}

/// One step of an uninstall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The host path.
    pub path: PathBuf,
    /// What is done.
    pub action: Action,
    /// The file was changed by someone else after the agent wrote it (only with `force`).
    pub modified: bool,
}

/// What is at a path now.
enum Current {
    Absent,
    Symlink(PathBuf),
    File { sha256: String, mode: u32 },
    Other,
}

fn current(target: &Path) -> Result<Current> {
    let read_err = |source| Error::Read {
        path: target.to_path_buf(),
        source,
    };
    match fs::symlink_metadata(target) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Current::Absent),
        Err(e) => Err(read_err(e)),
        Ok(m) if m.file_type().is_symlink() => {
            Ok(Current::Symlink(fs::read_link(target).map_err(read_err)?))
        }
        Ok(m) if m.is_file() => Ok(Current::File {
            sha256: file::sha256_file(target).map_err(read_err)?.0,
            mode: m.mode() & MODE_MASK,
        }),
        Ok(_) => Ok(Current::Other),
    }
}

/// Works out every step and checks that each can be done; reads only. Files changed by someone
/// else since the agent wrote them are an error naming them all, unless `force`.
pub fn plan(root: &Root, manifest: &FileManifest, force: bool) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    let mut modified = Vec::new();
    for (path, entry) in &manifest.files {
        let now = current(&root.path(path)?)?;
        let agents = matches!(&now, Current::File { sha256, .. } if entry.is_agents(sha256));
        let (action, changed) = match &entry.prior {
            Prior::Absent => match now {
                Current::Absent => (Action::Nothing, false),
                _ => (Action::Remove, !agents),
            },
            Prior::File {
                backup,
                sha256,
                mode,
                uid,
                gid,
            } => {
                let restored = matches!(&now, Current::File { sha256: s, mode: m } if s == sha256 && m == mode);
                if restored {
                    (Action::Nothing, false)
                } else {
                    let backup_path = root.path(backup)?;
                    let backup_ok = file::sha256_file(&backup_path)
                        .map(|(s, _)| &s == sha256)
                        .unwrap_or(false);
                    if !backup_ok {
                        return Err(Error::BackupMissing {
                            path: path.clone(),
                            backup: backup.clone(),
                        });
                    }
                    let action = Action::Restore {
                        backup: backup.clone(),
                        mode: *mode,
                        uid: *uid,
                        gid: *gid,
                    };
                    (action, !agents && !matches!(now, Current::Absent))
                }
            }
            Prior::Symlink { target } => match &now {
                Current::Symlink(t) if t == target => (Action::Nothing, false),
                Current::Absent => (
                    Action::Relink {
                        target: target.clone(),
                    },
                    false,
                ),
                _ => (
                    Action::Relink {
                        target: target.clone(),
                    },
                    !agents,
                ),
            },
        };
        if changed {
            modified.push(path.clone());
        }
        steps.push(Step {
            path: path.clone(),
            action,
            modified: changed,
        });
    }
    if !modified.is_empty() && !force {
        return Err(Error::ModifiedSinceWritten { paths: modified });
    }
    Ok(steps)
}

/// What an uninstall did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UninstallReport {
    /// Files the agent created, removed.
    pub removed: Vec<PathBuf>,
    /// Files the agent replaced, put back.
    pub restored: Vec<PathBuf>,
    /// Files changed by someone else after the agent, removed or replaced anyway (`--force`).
    pub forced: Vec<PathBuf>,
    /// Directories the agent created, removed.
    pub dirs_removed: Vec<PathBuf>,
    /// Directories the agent created that are not empty (someone else's files), kept.
    pub dirs_kept: Vec<PathBuf>,
}

impl fmt::Display for UninstallReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.removed {
            writeln!(f, "removed  {}", p.display())?;
        }
        for p in &self.restored {
            writeln!(f, "restored {}", p.display())?;
        }
        for p in &self.forced {
            writeln!(
                f,
                "forced   {} (it had been changed after eks-node-agent wrote it)",
                p.display()
            )?;
        }
        for p in &self.dirs_removed {
            writeln!(f, "removed  {}/", p.display())?;
        }
        for p in &self.dirs_kept {
            writeln!(f, "kept     {}/ (not empty)", p.display())?;
        }
        Ok(())
    }
}

/// The steps as text, for `uninstall --dry-run`.
pub fn describe(steps: &[Step], manifest: &FileManifest) -> String {
    let mut out = String::new();
    for s in steps {
        let word = match &s.action {
            Action::Remove => format!("remove   {}", s.path.display()),
            Action::Restore { backup, .. } => {
                format!("restore  {} from {}", s.path.display(), backup.display())
            }
            Action::Relink { target } => {
                format!("relink   {} -> {}", s.path.display(), target.display())
            }
            Action::Nothing => format!("as before {}", s.path.display()),
        };
        out.push_str(&word);
        if s.modified {
            out.push_str(" (changed after eks-node-agent wrote it)");
        }
        out.push('\n');
    }
    for d in manifest.dirs.iter().rev() {
        out.push_str(&format!("rmdir    {}/ (if empty)\n", d.display()));
    }
    out
}

fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Remove {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Remove {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Carries out `steps` (from [`plan`]) and removes the agent's state and the directories it
/// created. Blocking.
pub fn execute(root: &Root, mut manifest: FileManifest, steps: &[Step]) -> Result<UninstallReport> {
    let mut report = UninstallReport::default();
    for step in steps {
        let target = root.path(&step.path)?;
        match &step.action {
            Action::Nothing => continue,
            Action::Remove => {
                remove_file(&target)?;
                report.removed.push(step.path.clone());
            }
            Action::Restore {
                backup,
                mode,
                uid,
                gid,
            } => {
                let backup_path = root.path(backup)?;
                let contents = fs::read(&backup_path).map_err(|source| Error::Read {
                    path: backup_path.clone(),
                    source,
                })?;
                if fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_symlink()) {
                    remove_file(&target)?;
                }
                file::write_atomic(&target, &contents, *mode)?;
                restore_owner(&target, *uid, *gid)?;
                report.restored.push(step.path.clone());
            }
            Action::Relink { target: link } => {
                remove_file(&target)?;
                std::os::unix::fs::symlink(link, &target).map_err(|source| Error::Write {
                    path: target.clone(),
                    step: "symlink",
                    source,
                })?;
                report.restored.push(step.path.clone());
            }
        }
        if step.modified {
            report.forced.push(step.path.clone());
        }
        tracing::info!(path = %step.path.display(), action = ?step.action, "undone");
    }
    // Every file is as before: forget them, so an interrupted run resumes with the rest.
    manifest.files.clear();
    write_manifest(root, &manifest)?;
    remove_tree(&root.path(Path::new(BACKUP_DIR))?)?;
    remove_tree(&root.path(Path::new(TOKEN_CACHE_DIR))?)?;
    remove_tree(&root.path(Path::new(RUNTIME_DIR))?)?;
    if manifest.dirs.contains(Path::new(STATE_DIR)) {
        // The agent created its state directory: everything in it is the agent's.
        remove_tree(&root.path(Path::new(STATE_DIR))?)?;
    } else {
        remove_file(&root.path(Path::new(MANIFEST))?)?;
    }
    // Deepest first, so a parent is empty by the time it is tried.
    let mut dirs: Vec<&PathBuf> = manifest.dirs.iter().collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for dir in dirs {
        let real = root.path(dir)?;
        match fs::remove_dir(&real) {
            Ok(()) => report.dirs_removed.push(dir.clone()),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if dir.starts_with(STATE_DIR) {
                    report.dirs_removed.push(dir.clone());
                }
            }
            Err(e) if e.kind() == ErrorKind::DirectoryNotEmpty => {
                tracing::info!(dir = %dir.display(), "kept a directory the agent created: it holds other files");
                report.dirs_kept.push(dir.clone());
            }
            Err(source) => {
                return Err(Error::Remove { path: real, source });
            }
        }
    }
    Ok(report)
}

/// Gives a restored file its previous owner, when that differs from the current one.
fn restore_owner(target: &Path, uid: u32, gid: u32) -> Result<()> {
    let meta = fs::symlink_metadata(target).map_err(|source| Error::Read {
        path: target.to_path_buf(),
        source,
    })?;
    if meta.uid() == uid && meta.gid() == gid {
        return Ok(());
    }
    std::os::unix::fs::chown(target, Some(uid), Some(gid)).map_err(|source| Error::Write {
        path: target.to_path_buf(),
        step: "chown",
        source,
    })
}

/// The whole uninstall of the agent's files: `None` when the agent wrote nothing under `root`.
pub fn uninstall(root: &Root, force: bool) -> Result<Option<UninstallReport>> {
    let Some(manifest) = load(root)? else {
        return Ok(None);
    };
    let steps = plan(root, &manifest, force)?;
    execute(root, manifest, &steps).map(Some)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn write(root: &Root, tracker: &mut Tracker, path: &str, bytes: &[u8], mode: u32) {
        let sha = file::sha256_hex(bytes);
        tracker.intend(Path::new(path), &sha).unwrap();
        tracker.save().unwrap();
        file::write_atomic(&root.path(Path::new(path)).unwrap(), bytes, mode).unwrap();
        tracker.confirm(Path::new(path), &sha);
        tracker.save().unwrap();
    }

    #[test]
    fn records_prior_state_and_undoes_it() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::at(tmp.path());
        fs::create_dir_all(tmp.path().join("etc/containerd")).unwrap();
        let user = tmp.path().join("etc/containerd/config.toml");
        fs::write(&user, b"user's own\n").unwrap();
        fs::set_permissions(&user, fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink("elsewhere", tmp.path().join("etc/link")).unwrap();

        let mut t = Tracker::load(&root).unwrap();
        write(&root, &mut t, "/etc/containerd/config.toml", b"ours", 0o644);
        write(&root, &mut t, "/etc/link", b"ours too", 0o644);
        write(&root, &mut t, "/opt/cni/bin/bridge", b"bin", 0o755);
        // Written twice: recorded once, prior unchanged.
        write(
            &root,
            &mut t,
            "/etc/containerd/config.toml",
            b"ours v2",
            0o644,
        );

        let m = load(&root).unwrap().unwrap();
        assert_eq!(m.files.len(), 3);
        assert!(matches!(
            m.files[Path::new("/etc/containerd/config.toml")].prior,
            Prior::File { mode: 0o640, .. }
        ));
        assert_eq!(
            m.files[Path::new("/etc/link")].prior,
            Prior::Symlink {
                target: "elsewhere".into()
            }
        );
        assert_eq!(
            m.files[Path::new("/opt/cni/bin/bridge")].prior,
            Prior::Absent
        );
        for d in [
            "/opt",
            "/opt/cni",
            "/opt/cni/bin",
            "/var",
            "/var/lib",
            STATE_DIR,
            BACKUP_DIR,
        ] {
            assert!(m.dirs.contains(Path::new(d)), "{d} in {:?}", m.dirs);
        }
        assert!(!m.dirs.contains(Path::new("/etc")));

        let report = uninstall(&root, false).unwrap().unwrap();
        assert_eq!(report.removed, [PathBuf::from("/opt/cni/bin/bridge")]);
        assert_eq!(report.restored.len(), 2);
        assert_eq!(fs::read(&user).unwrap(), b"user's own\n");
        assert_eq!(
            fs::metadata(&user).unwrap().permissions().mode() & 0o7777,
            0o640
        );
        assert_eq!(
            fs::read_link(tmp.path().join("etc/link")).unwrap(),
            Path::new("elsewhere")
        );
        for gone in ["opt", "var"] {
            assert!(!tmp.path().join(gone).exists(), "{gone}");
        }
        // Nothing left to do.
        assert!(uninstall(&root, false).unwrap().is_none());
    }

    #[test]
    fn a_file_changed_by_someone_else_stops_uninstall_unless_forced() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::at(tmp.path());
        let mut t = Tracker::load(&root).unwrap();
        write(&root, &mut t, "/etc/a", b"a", 0o644);
        write(&root, &mut t, "/etc/b", b"b", 0o644);
        fs::write(tmp.path().join("etc/b"), b"edited by the admin").unwrap();
        let err = uninstall(&root, false).unwrap_err();
        assert!(
            matches!(&err, Error::ModifiedSinceWritten { paths } if paths == &[PathBuf::from("/etc/b")]),
            "{err}"
        );
        assert!(err.to_string().contains("--force"), "{err}");
        assert!(tmp.path().join("etc/a").exists(), "nothing was changed");
        let report = uninstall(&root, true).unwrap().unwrap();
        assert_eq!(report.forced, [PathBuf::from("/etc/b")]);
        assert!(!tmp.path().join("etc").exists());
    }

    #[test]
    fn an_interrupted_write_is_still_recorded() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::at(tmp.path());
        let mut t = Tracker::load(&root).unwrap();
        write(&root, &mut t, "/etc/a", b"v1", 0o644);
        // v2 intended and saved, then the process died before or after the rename.
        t.intend(Path::new("/etc/a"), &file::sha256_hex(b"v2"))
            .unwrap();
        t.save().unwrap();
        file::write_atomic(&tmp.path().join("etc/a"), b"v2", 0o644).unwrap();
        let m = load(&root).unwrap().unwrap();
        let steps = plan(&root, &m, false).unwrap();
        assert_eq!(steps[0].action, Action::Remove);
        assert!(!steps[0].modified);
    }

    #[test]
    fn a_second_identical_write_does_not_touch_the_record() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::at(tmp.path());
        let mut t = Tracker::load(&root).unwrap();
        write(&root, &mut t, "/etc/a", b"v1", 0o644);
        let rec = tmp.path().join(MANIFEST.trim_start_matches('/'));
        let before = fs::metadata(&rec).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut t = Tracker::load(&root).unwrap();
        write(&root, &mut t, "/etc/a", b"v1", 0o644);
        assert_eq!(fs::metadata(&rec).unwrap().modified().unwrap(), before);
    }

    #[test]
    fn state_paths_are_refused_and_bad_records_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::at(tmp.path());
        let mut t = Tracker::load(&root).unwrap();
        assert!(t.intend(Path::new(MANIFEST), "x").is_err());
        assert!(
            t.intend(Path::new("/var/lib/eks-node-agent/backup/etc/x"), "x")
                .is_err()
        );
        assert!(
            t.intend(Path::new("/var/lib/eks-node-agent/other"), "x")
                .is_ok()
        );
        let err = parse(
            b"{\"version\": 9, \"files\": {}, \"dirs\": []}",
            Path::new("/x"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("version 9"), "{err}");
        let err = parse(b"nope", Path::new("/x")).unwrap_err();
        assert!(err.to_string().contains("/x"), "{err}");
    }
}
