//! What `upgrade` keeps to roll back: before the new artifacts are installed, each file they
//! replace is copied (with its mode and SHA-256) under [`ROLLBACK_DIR`]; rolling back installs
//! those copies again through the same atomic, recorded path as `install`
//! ([`crate::apply::Applier::install_files`]). The copies stay after a successful upgrade,
//! until the next upgrade replaces them, so the previous binaries remain at hand.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::Error;
use crate::apply::{Applier, Report, Root, StagedFile};

/// Where the previous binaries are kept, under the root.
pub const ROLLBACK_DIR: &str = "/var/lib/eks-node-agent/rollback";

/// The previous files, ready to be installed again.
#[derive(Debug, Clone, Default)]
pub struct Kept {
    /// One per file that existed before, copied under [`ROLLBACK_DIR`].
    pub files: Vec<StagedFile>,
    /// Files the upgrade adds that did not exist before (a rollback leaves them).
    pub new: Vec<PathBuf>,
}

/// Copies every file `incoming` will replace under [`ROLLBACK_DIR`] (replacing what an
/// earlier upgrade kept).
pub fn keep(root: &Root, incoming: &[StagedFile]) -> Result<Kept, Error> {
    let dir = root.path(Path::new(ROLLBACK_DIR))?;
    let io = |what: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { what, path, source }
    };
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io("rollback directory", &dir))?;
    }
    let mut kept = Kept::default();
    for f in incoming {
        let current = root.path(&f.path)?;
        if !current.is_file() {
            kept.new.push(f.path.clone());
            continue;
        }
        let copy = dir.join(f.path.strip_prefix("/").unwrap_or(&f.path));
        if let Some(parent) = copy.parent() {
            std::fs::create_dir_all(parent).map_err(io("rollback directory", parent))?;
        }
        std::fs::copy(&current, &copy).map_err(io("previous file", &current))?;
        let mode = std::fs::metadata(&current)
            .map_err(io("previous file", &current))?
            .permissions()
            .mode()
            & 0o7777;
        let (sha256, _) = crate::apply::file::sha256_file(&copy).map_err(io("kept copy", &copy))?;
        kept.files.push(StagedFile {
            source: copy,
            sha256,
            path: f.path.clone(),
            mode,
        });
    }
    Ok(kept)
}

/// Installs the kept files again, each atomically.
pub fn restore(root: &Root, kept: &Kept) -> Result<Report, Error> {
    Ok(Applier::new(root.clone()).install_files(&kept.files)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_previous_files_come_back_byte_for_byte() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::at(tmp.path().join("root"));
        let bin = tmp.path().join("root/usr/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("kubelet"), b"old kubelet").unwrap();
        std::fs::set_permissions(bin.join("kubelet"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let staged = tmp.path().join("new-kubelet");
        std::fs::write(&staged, b"new kubelet").unwrap();
        let incoming = vec![
            StagedFile {
                source: staged.clone(),
                sha256: crate::apply::file::sha256_hex(b"new kubelet"),
                path: PathBuf::from("/usr/bin/kubelet"),
                mode: 0o755,
            },
            StagedFile {
                source: staged,
                sha256: crate::apply::file::sha256_hex(b"new kubelet"),
                path: PathBuf::from("/usr/bin/new-tool"),
                mode: 0o755,
            },
        ];
        let kept = keep(&root, &incoming).unwrap();
        assert_eq!(kept.new, [PathBuf::from("/usr/bin/new-tool")]);
        Applier::new(root.clone()).install_files(&incoming).unwrap();
        assert_eq!(std::fs::read(bin.join("kubelet")).unwrap(), b"new kubelet");
        restore(&root, &kept).unwrap();
        assert_eq!(std::fs::read(bin.join("kubelet")).unwrap(), b"old kubelet");
        let mode = std::fs::metadata(bin.join("kubelet"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
    }
}
