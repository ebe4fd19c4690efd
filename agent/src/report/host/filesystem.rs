//! The filesystem collector: space and inodes of every mounted filesystem from /proc/1/mounts
//! (statfs(2) of each), with node_exporter's default mount point and type exclusions.

use std::path::Path;

use super::{Families, HostPaths, read};
use crate::model::procfs::unescape;

/// One mount from /proc/1/mounts.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    /// The mounted device.
    pub device: String,
    /// Where it is mounted (octal escapes decoded).
    pub mountpoint: String,
    /// Filesystem type.
    pub fstype: String,
    /// Mounted read-only.
    pub readonly: bool,
}

/// Parses a mounts table (/proc/1/mounts format).
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let device = parts.next()?.to_string();
            let mountpoint = unescape(parts.next()?);
            let fstype = parts.next()?.to_string();
            let readonly = parts.next()?.split(',').any(|o| o == "ro");
            Some(Mount {
                device,
                mountpoint,
                fstype,
                readonly,
            })
        })
        .collect()
}

/// node_exporter's default exclusions: mount points under /dev, /proc, /run, /sys, /mnt,
/// /media and container storage, and pseudo filesystem types.
pub fn mount_excluded(m: &Mount) -> bool {
    const FS_TYPES: &[&str] = &[
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "fusectl",
        "hugetlbfs",
        "iso9660",
        "mqueue",
        "nsfs",
        "overlay",
        "proc",
        "procfs",
        "pstore",
        "rpc_pipefs",
        "securityfs",
        "selinuxfs",
        "squashfs",
        "sysfs",
        "tracefs",
    ];
    if FS_TYPES.contains(&m.fstype.as_str()) {
        return true;
    }
    for top in ["/dev", "/proc", "/run", "/sys", "/mnt", "/media"] {
        if m.mountpoint == top || m.mountpoint.starts_with(&format!("{top}/")) {
            return true;
        }
    }
    for storage in ["/var/lib/docker/", "/var/lib/containers/storage/"] {
        if m.mountpoint.len() > storage.len() && m.mountpoint.starts_with(storage) {
            return true;
        }
    }
    false
}

/// Space and inode figures of one filesystem.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FsUsage {
    /// Total size in bytes.
    pub size: f64,
    /// Free bytes (including the root reserve).
    pub free: f64,
    /// Bytes available to unprivileged users.
    pub avail: f64,
    /// Total inodes.
    pub files: f64,
    /// Free inodes.
    pub files_free: f64,
}

/// statfs(2) of a path.
pub fn fs_usage(path: &Path) -> Option<FsUsage> {
    let st = nix::sys::statfs::statfs(path).ok()?;
    let bsize = st.block_size() as f64;
    Some(FsUsage {
        size: st.blocks() as f64 * bsize,
        free: st.blocks_free() as f64 * bsize,
        avail: st.blocks_available() as f64 * bsize,
        files: st.files() as f64,
        files_free: st.files_free() as f64,
    })
}

/// Adds the `node_filesystem_*` series of every mount not left out.
pub(super) fn collect(paths: &HostPaths, out: &mut Families) -> Option<()> {
    let mounts = parse_mounts(&read(&paths.proc.join("1/mounts"))?);
    let mut seen = std::collections::BTreeSet::new();
    for m in mounts.iter().filter(|m| !mount_excluded(m)) {
        if !seen.insert((m.device.clone(), m.mountpoint.clone())) {
            continue;
        }
        let labels = [
            ("device", m.device.as_str()),
            ("fstype", m.fstype.as_str()),
            ("mountpoint", m.mountpoint.as_str()),
        ];
        let usage = fs_usage(Path::new(&m.mountpoint));
        out.gauge(
            "node_filesystem_device_error",
            "Whether an error occurred while getting statistics for the given device.",
            &labels,
            if usage.is_some() { 0.0 } else { 1.0 },
        );
        let Some(u) = usage else { continue };
        for (name, help, v) in [
            (
                "node_filesystem_size_bytes",
                "Filesystem size in bytes.",
                u.size,
            ),
            (
                "node_filesystem_free_bytes",
                "Filesystem free space in bytes.",
                u.free,
            ),
            (
                "node_filesystem_avail_bytes",
                "Filesystem space available to non-root users in bytes.",
                u.avail,
            ),
            (
                "node_filesystem_files",
                "Filesystem total file nodes.",
                u.files,
            ),
            (
                "node_filesystem_files_free",
                "Filesystem total free file nodes.",
                u.files_free,
            ),
            (
                "node_filesystem_readonly",
                "Filesystem read-only status.",
                if m.readonly { 1.0 } else { 0.0 },
            ),
        ] {
            out.gauge(name, help, &labels, v);
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_and_exclusions() {
        let text = "/dev/vda / ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n/dev/vdb /data\\040x xfs ro 0 0\nshm /var/lib/docker/x tmpfs rw 0 0\n";
        let m = parse_mounts(text);
        assert_eq!(m[2].mountpoint, "/data x");
        assert!(m[2].readonly);
        let kept: Vec<_> = m
            .iter()
            .filter(|m| !mount_excluded(m))
            .map(|m| m.mountpoint.as_str())
            .collect();
        assert_eq!(kept, vec!["/", "/data x"]);
    }
}
