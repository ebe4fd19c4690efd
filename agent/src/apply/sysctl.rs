//! Kernel parameters through /proc/sys, written only when the value differs.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use super::{Error, Result};
use crate::render::Sysctl;

/// Collapses runs of whitespace (tabs in multi-value keys such as
/// `net.ipv4.ip_local_port_range`, the trailing newline) to single spaces.
pub fn normalize(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether a key is a plain dotted name that cannot leave /proc/sys.
fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

/// The /proc/sys path of `sysctl`, with `proc_root` standing for `/`.
pub fn path_under(proc_root: &Path, sysctl: &Sysctl) -> Result<PathBuf> {
    if !valid_key(&sysctl.key) {
        return Err(Error::BadSysctlKey {
            key: sysctl.key.clone(),
        });
    }
    let proc_path = sysctl.proc_path();
    let relative = proc_path.strip_prefix("/").unwrap_or(&proc_path);
    Ok(proc_root.join(relative))
}

/// The current value of `sysctl` (normalized).
pub fn current(proc_root: &Path, sysctl: &Sysctl) -> Result<String> {
    let path = path_under(proc_root, sysctl)?;
    match fs::read_to_string(&path) {
        Ok(v) => Ok(normalize(&v)),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(Error::SysctlMissing {
            key: sysctl.key.clone(),
            path,
        }),
        Err(source) => Err(Error::Sysctl {
            key: sysctl.key.clone(),
            path,
            step: "read",
            source,
        }),
    }
}

/// Sets `sysctl` if its current value differs; returns the previous value when it changed.
pub fn apply(proc_root: &Path, sysctl: &Sysctl) -> Result<Option<String>> {
    let before = current(proc_root, sysctl)?;
    if before == normalize(&sysctl.value) {
        return Ok(None);
    }
    let path = path_under(proc_root, sysctl)?;
    let err = |source| Error::Sysctl {
        key: sysctl.key.clone(),
        path: path.clone(),
        step: "write",
        source,
    };
    // No create: a key that does not exist is an error, reported by `current` above.
    let mut file = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .map_err(err)?;
    file.write_all(format!("{}\n", sysctl.value).as_bytes())
        .map_err(err)?;
    tracing::info!(key = %sysctl.key, from = %before, to = %sysctl.value, "sysctl");
    Ok(Some(before))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn sysctl(key: &str, value: &str) -> Sysctl {
        Sysctl {
            key: key.into(),
            value: value.into(),
        }
    }

    fn fake_proc(entries: &[(&str, &str)]) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for (rel, v) in entries {
            let p = tmp.path().join("proc/sys").join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, v).unwrap();
        }
        tmp
    }

    #[test]
    fn writes_only_when_different() {
        let root = fake_proc(&[
            ("net/ipv4/ip_forward", "0\n"),
            ("net/ipv4/ip_local_port_range", "32768\t60999\n"),
        ]);
        let fwd = sysctl("net.ipv4.ip_forward", "1");
        assert_eq!(apply(root.path(), &fwd).unwrap(), Some("0".into()));
        assert_eq!(
            fs::read_to_string(root.path().join("proc/sys/net/ipv4/ip_forward")).unwrap(),
            "1\n"
        );
        assert_eq!(apply(root.path(), &fwd).unwrap(), None);
        // Whitespace-normalized comparison: tab vs space is the same value.
        let range = sysctl("net.ipv4.ip_local_port_range", "32768 60999");
        assert_eq!(apply(root.path(), &range).unwrap(), None);
    }

    #[test]
    fn missing_and_bad_keys_are_clear_errors() {
        let root = fake_proc(&[]);
        let err = apply(
            root.path(),
            &sysctl("net.bridge.bridge-nf-call-iptables", "1"),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("net.bridge.bridge-nf-call-iptables"), "{msg}");
        assert!(msg.contains("br_netfilter"), "{msg}");
        for bad in ["", "net..x", "net.ipv4/../../etc", "a b"] {
            assert!(
                matches!(
                    apply(root.path(), &sysctl(bad, "1")),
                    Err(Error::BadSysctlKey { .. })
                ),
                "{bad}"
            );
        }
    }
}
