//! Expanding a verified release tarball (gzip + tar) into staging files, refusing anything
//! that is not a plain file at an expected place: absolute paths, `..`, links, devices, nested
//! directories, duplicates, and archives that expand beyond a cap.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Component as PathComponent, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::Error;
use super::artifacts::Artifact;
use crate::apply::StagedFile;

/// Most bytes a tarball may expand to.
pub const MAX_EXPANDED_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Most entries a tarball may hold.
pub const MAX_ENTRIES: usize = 4096;
/// Bits kept from an entry's mode: rwx for the owner, r-x for group and other.
const MODE_KEEP: u32 = 0o755;
/// Copy buffer size.
const BUFFER_BYTES: usize = 64 * 1024;

/// Expands `tarball` (already verified as `artifact`) into `staging`: every regular file
/// `PREFIX/NAME` (or `NAME` without a prefix) becomes a staged file for `dir/NAME`.
pub fn expand(
    tarball: &Path,
    artifact: &Artifact,
    prefix: Option<&str>,
    dir: &str,
    staging: &Path,
) -> Result<Vec<StagedFile>, Error> {
    let bad = |entry: &str, reason: String| Error::BadArchive {
        artifact: artifact.component.name(),
        entry: entry.to_owned(),
        reason,
    };
    let input = File::open(tarball).map_err(|source| Error::Io {
        what: "staged tarball",
        path: tarball.to_path_buf(),
        source,
    })?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(input));
    let entries = archive
        .entries()
        .map_err(|e| bad("(archive)", format!("not a gzipped tar: {e}")))?;
    let mut staged = Vec::new();
    let mut names = BTreeSet::new();
    let mut total: u64 = 0;
    for (count, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|e| bad("(archive)", format!("unreadable: {e}")))?;
        if count >= MAX_ENTRIES {
            return Err(bad("(archive)", format!("more than {MAX_ENTRIES} entries")));
        }
        let raw = entry
            .path()
            .map_err(|e| bad("(archive)", format!("entry with an unreadable path: {e}")))?
            .into_owned();
        let shown = raw.display().to_string();
        let mut parts: Vec<String> = Vec::new();
        for c in raw.components() {
            match c {
                PathComponent::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
                PathComponent::CurDir => {}
                PathComponent::ParentDir | PathComponent::RootDir | PathComponent::Prefix(_) => {
                    return Err(bad(
                        &shown,
                        "absolute or `..` path: refused (it would escape the install directory)"
                            .into(),
                    ));
                }
            }
        }
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            return Err(bad(
                &shown,
                format!(
                    "is a {kind:?} entry; only regular files are installed (links and devices are refused)"
                ),
            ));
        }
        let name = match (prefix, parts.as_slice()) {
            (None, [name]) => name.clone(),
            (Some(p), [first, name]) if first == p => name.clone(),
            _ => {
                let want = prefix.map_or("NAME".to_owned(), |p| format!("{p}/NAME"));
                return Err(bad(
                    &shown,
                    format!(
                        "unexpected place in the {} tarball; expected {want}",
                        artifact.component
                    ),
                ));
            }
        };
        if !names.insert(name.clone()) {
            return Err(bad(&shown, "appears twice".into()));
        }
        let mode = entry
            .header()
            .mode()
            .map_err(|e| bad(&shown, format!("bad mode: {e}")))?
            & MODE_KEEP;
        let dest = staging.join(format!("{}.{}", artifact.component.name(), staged.len()));
        let io_err = |source| Error::Io {
            what: "staging file",
            path: dest.clone(),
            source,
        };
        let mut out = File::create(&dest).map_err(io_err)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; BUFFER_BYTES];
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| bad(&shown, format!("truncated or corrupt: {e}")))?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > MAX_EXPANDED_BYTES {
                return Err(bad(
                    &shown,
                    format!("the archive expands beyond {MAX_EXPANDED_BYTES} bytes"),
                ));
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io_err)?;
        }
        out.sync_all().map_err(io_err)?;
        staged.push(StagedFile {
            source: dest.clone(),
            sha256: hex::encode(hasher.finalize()),
            path: PathBuf::from(dir).join(&name),
            mode,
        });
    }
    if staged.is_empty() {
        return Err(bad("(archive)", "holds no file to install".into()));
    }
    Ok(staged)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::install::artifacts::Component;

    fn artifact() -> Artifact {
        Artifact {
            component: Component::Containerd,
            file: "c.tgz".into(),
            sha256: String::new(),
            size: 1,
        }
    }

    /// Builds a tar.gz with raw headers, so that bad paths can be written too.
    fn tarball(dir: &Path, entries: &[(&str, tar::EntryType, &[u8], u32)]) -> PathBuf {
        let path = dir.join("t.tgz");
        let gz = flate2::write::GzEncoder::new(
            File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        let mut b = tar::Builder::new(gz);
        for (name, kind, data, mode) in entries {
            let mut h = tar::Header::new_gnu();
            let bytes = name.as_bytes();
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(*mode);
            if *kind == tar::EntryType::Symlink {
                h.set_link_name("/etc/shadow").unwrap();
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap();
        path
    }

    #[test]
    fn expands_the_expected_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tarball(
            tmp.path(),
            &[
                ("bin/", tar::EntryType::Directory, &b""[..], 0o755),
                ("bin/containerd", tar::EntryType::Regular, &b"c"[..], 0o4777),
                ("./bin/ctr", tar::EntryType::Regular, &b"ctr"[..], 0o644),
            ],
        );
        let staged = expand(&t, &artifact(), Some("bin"), "/usr/bin", tmp.path()).unwrap();
        assert_eq!(staged.len(), 2);
        assert_eq!(staged[0].path, Path::new("/usr/bin/containerd"));
        assert_eq!(
            staged[0].mode, 0o755,
            "setuid and group/other write dropped"
        );
        assert_eq!(staged[1].path, Path::new("/usr/bin/ctr"));
        assert_eq!(staged[1].mode, 0o644);
        assert_eq!(std::fs::read(&staged[1].source).unwrap(), b"ctr");
    }

    #[test]
    fn refuses_escapes_links_and_surprises() {
        let cases: [(&str, tar::EntryType, &str); 5] = [
            ("../../etc/passwd", tar::EntryType::Regular, "escape"),
            ("/etc/passwd", tar::EntryType::Regular, "escape"),
            (
                "bin/runc",
                tar::EntryType::Symlink,
                "links and devices are refused",
            ),
            ("bin/sub/x", tar::EntryType::Regular, "expected bin/NAME"),
            ("etc/x", tar::EntryType::Regular, "expected bin/NAME"),
        ];
        for (name, kind, why) in cases {
            let tmp = tempfile::tempdir().unwrap();
            let t = tarball(tmp.path(), &[(name, kind, &b"x"[..], 0o755)]);
            let err = expand(&t, &artifact(), Some("bin"), "/usr/bin", tmp.path()).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains(why) && msg.contains("containerd"),
                "{name}: {msg}"
            );
        }
        let tmp = tempfile::tempdir().unwrap();
        let t = tarball(
            tmp.path(),
            &[
                ("bin/a", tar::EntryType::Regular, &b"x"[..], 0o755),
                ("./bin/a", tar::EntryType::Regular, &b"y"[..], 0o755),
            ],
        );
        let err = expand(&t, &artifact(), Some("bin"), "/usr/bin", tmp.path()).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }
}
