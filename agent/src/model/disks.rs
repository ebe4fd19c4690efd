//! Instance-store disks: what discovery found on the block devices (signatures, md arrays,
//! mounts), the layout `compute` decides (an md array with bind mounts, or one mount per disk),
//! and the pure parsers of the tools' outputs (`blkid -p -o export`, `mdadm --export`,
//! /proc/self/mountinfo) and systemd's path escaping.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The by-id names of EC2's NVMe instance-store disks (one per disk: the EBS volumes are
/// `nvme-Amazon_Elastic_Block_Store_*`).
pub const DEFAULT_DISK_PATTERN: &str = "nvme-Amazon_EC2_NVMe_Instance_Storage_*";
/// Where the disk links live.
pub const BY_ID_DIR: &str = "/dev/disk/by-id";
/// The md array's name (nodeadm's).
pub const ARRAY_NAME: &str = "kubernetes";
/// The md device the array is created as.
pub const ARRAY_DEVICE: &str = "/dev/md/kubernetes";
/// The mount options of every instance-store filesystem (nodeadm's).
pub const MOUNT_OPTIONS: &str = "defaults,noatime";
/// The filesystem made on the disks.
pub const FSTYPE: &str = "xfs";
/// RAID10 needs at least this many disks (nodeadm's rule).
pub const RAID10_MIN_DISKS: usize = 4;

/// Where the disks go by default (nodeadm's): the array at `<mountPath>/0`, disks at
/// `<mountPath>/1..`.
pub const DEFAULT_MOUNT_PATH: &str = "/mnt/k8s-disks";

/// A state directory the array strategies move onto the array and bind-mount back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StateDir {
    /// The directory, e.g. `/var/lib/containerd`.
    pub path: &'static str,
    /// The service that uses it (ordered after its mount).
    pub service: &'static str,
    /// The `disabledMounts` value that keeps it on the root volume (`None`: always moved).
    pub disabled_by: Option<&'static str>,
}

/// The directories moved onto the array, as nodeadm moves them.
pub const STATE_DIRS: [StateDir; 4] = [
    StateDir {
        path: "/var/lib/containerd",
        service: "containerd.service",
        disabled_by: Some("Containerd"),
    },
    StateDir {
        path: "/var/log/pods",
        service: "kubelet.service",
        disabled_by: Some("PodLogs"),
    },
    StateDir {
        path: "/var/lib/soci-snapshotter-grpc",
        service: "soci-snapshotter.service",
        disabled_by: Some("SOCI"),
    },
    StateDir {
        path: "/var/lib/kubelet",
        service: "kubelet.service",
        disabled_by: None,
    },
];

/// What `spec.instance.localStorage` asks for, resolved (config builds it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StorageSettings {
    /// The strategy.
    pub strategy: Strategy,
    /// `mountPath` (default [`DEFAULT_MOUNT_PATH`]).
    pub mount_path: PathBuf,
    /// The directories bind-mounted from the array (none for `Mount`).
    pub binds: Vec<StateDir>,
}

/// How the instance-store disks are used (`spec.instance.localStorage.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Strategy {
    /// One striped md array.
    #[serde(rename = "RAID0")]
    Raid0,
    /// One md array of mirrored pairs, striped.
    #[serde(rename = "RAID10")]
    Raid10,
    /// Each disk formatted and mounted on its own.
    Mount,
}

impl Strategy {
    /// The NodeConfig spelling: `RAID0`, `RAID10`, `Mount`.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Raid0 => "RAID0",
            Strategy::Raid10 => "RAID10",
            Strategy::Mount => "Mount",
        }
    }

    /// mdadm's `--level` value (0 or 10), for the array strategies.
    pub fn raid_level(self) -> Option<u32> {
        match self {
            Strategy::Raid0 => Some(0),
            Strategy::Raid10 => Some(10),
            Strategy::Mount => None,
        }
    }
}

/// What a block device holds, from `blkid -p` (and `mdadm --examine` for array members).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Content {
    /// No signature at all: a fresh (or wiped) disk.
    Blank,
    /// A filesystem.
    Filesystem {
        /// blkid's TYPE, e.g. `xfs`.
        fstype: String,
        /// The filesystem UUID.
        #[serde(default)]
        uuid: String,
    },
    /// A member of an md array.
    RaidMember(RaidMember),
    /// Anything else (a partition table, LVM, swap, a signature blkid could not settle).
    Other {
        /// What blkid reported (`PTTYPE=gpt`, `TYPE=LVM2_member`, ...).
        what: String,
    },
}

impl Content {
    /// One word or phrase for messages.
    pub fn describe(&self) -> String {
        match self {
            Content::Blank => "no signature".into(),
            Content::Filesystem { fstype, uuid } => format!("a {fstype} filesystem (UUID {uuid})"),
            Content::RaidMember(m) => format!(
                "a member of md array {} ({}, {} devices, UUID {})",
                m.name, m.level, m.raid_devices, m.array_uuid
            ),
            Content::Other { what } => format!("a {what} signature"),
        }
    }
}

/// The md superblock of one array member (`mdadm --examine --export`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RaidMember {
    /// MD_UUID, mdadm's `xxxxxxxx:xxxxxxxx:xxxxxxxx:xxxxxxxx` form.
    pub array_uuid: String,
    /// MD_NAME, e.g. `any:kubernetes` (homehost, colon, name).
    pub name: String,
    /// MD_LEVEL, e.g. `raid0`.
    pub level: String,
    /// MD_DEVICES: the members the array was made of.
    pub raid_devices: u32,
}

/// One instance-store disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalDisk {
    /// The kernel device, e.g. `/dev/nvme1n1` (the by-id link resolved).
    pub device: PathBuf,
    /// How it was found: the by-id link name, or `imds:ephemeral0` on Xen.
    pub source: String,
    /// Size in bytes (0 when unknown).
    #[serde(default)]
    pub size_bytes: u64,
    /// What it holds.
    pub content: Content,
    /// Kernel devices holding it (an md array: `md127`), from /sys/class/block/*/holders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holders: Vec<String>,
}

impl LocalDisk {
    /// The device's short name, e.g. `nvme1n1`.
    pub fn name(&self) -> String {
        self.device
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// An md array the kernel knows (active or inactive), from /sys/block/md* and
/// `mdadm --detail --export`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MdArray {
    /// The kernel device, e.g. `/dev/md127`.
    pub device: PathBuf,
    /// MD_NAME (empty for an inactive array whose superblock was not read).
    #[serde(default)]
    pub name: String,
    /// MD_UUID.
    #[serde(default)]
    pub uuid: String,
    /// MD_LEVEL, e.g. `raid10`.
    #[serde(default)]
    pub level: String,
    /// MD_DEVICES: how many members the array needs.
    #[serde(default)]
    pub raid_devices: u32,
    /// The member devices the kernel holds, e.g. `/dev/nvme1n1`.
    #[serde(default)]
    pub members: Vec<PathBuf>,
    /// /sys/block/mdX/md/array_state: `clean`, `active`, `inactive`, ...
    pub state: String,
    /// What the array holds (its filesystem).
    pub content: Content,
}

impl MdArray {
    /// Whether the array runs (anything but `inactive`/`clear`).
    pub fn is_running(&self) -> bool {
        !matches!(self.state.as_str(), "inactive" | "clear" | "")
    }

    /// Whether its name is the agent's (and nodeadm's) array name, whatever the homehost.
    pub fn is_ours(&self) -> bool {
        is_our_array_name(&self.name)
    }
}

/// Whether an md name (`homehost:name` or `name`) names the `kubernetes` array.
pub fn is_our_array_name(name: &str) -> bool {
    name.rsplit(':').next() == Some(ARRAY_NAME)
}

/// One line of /proc/self/mountinfo, the fields the layout needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MountEntry {
    /// The mount point.
    pub target: PathBuf,
    /// The source device (or `none`).
    pub source: String,
    /// The filesystem type.
    pub fstype: String,
    /// The directory of the source filesystem that is mounted (`/` unless a bind mount).
    #[serde(default = "root_dir")]
    pub root: PathBuf,
    /// `major:minor` of the filesystem.
    #[serde(default)]
    pub dev: String,
}

fn root_dir() -> PathBuf {
    PathBuf::from("/")
}

/// What discovery found about the instance-store disks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageFacts {
    /// The by-id pattern the disks were matched with.
    pub pattern: String,
    /// The disks, sorted by device.
    #[serde(default)]
    pub disks: Vec<LocalDisk>,
    /// Every md array of the host.
    #[serde(default)]
    pub arrays: Vec<MdArray>,
    /// The mounts of the host (mountinfo).
    #[serde(default)]
    pub mounts: Vec<MountEntry>,
    /// /etc/machine-id: the seed of the filesystem UUIDs (so a stopped and started instance
    /// gives its new array the UUID its mount units already name).
    #[serde(default)]
    pub machine_id: String,
    /// Devices matched but left out, with why (the root filesystem's disk, a partition).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

impl StorageFacts {
    /// The mount at `target`, if any (the last one: it is the visible one).
    pub fn mount_at(&self, target: &Path) -> Option<&MountEntry> {
        self.mounts.iter().rev().find(|m| m.target == target)
    }
}

/// A bind mount of a state directory onto the array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindMount {
    /// The directory, e.g. `/var/lib/containerd`.
    pub target: PathBuf,
    /// Its home on the array, e.g. `/mnt/k8s-disks/0/containerd`.
    pub source: PathBuf,
    /// The service that uses it, e.g. `containerd.service`.
    pub service: String,
    /// Already mounted (nothing to do).
    pub mounted: bool,
    /// The array has no copy yet: the directory's data is moved there first.
    pub move_data: bool,
}

/// How the array comes to exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "how")]
pub enum ArraySetup {
    /// Running already (assembled at boot by udev, or earlier by the agent).
    Running {
        /// Its kernel device.
        device: PathBuf,
    },
    /// Its members carry its superblocks: assemble it (never re-create it).
    Assemble {
        /// MD_UUID.
        uuid: String,
    },
    /// The disks are blank: create it.
    Create,
}

/// The array layout (RAID0/RAID10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArrayLayout {
    /// 0 or 10.
    pub level: u32,
    /// The member disks, sorted.
    pub disks: Vec<PathBuf>,
    /// How the array comes to exist.
    pub setup: ArraySetup,
    /// The device to format and mount by (kernel device when running, else /dev/md/kubernetes).
    pub device: PathBuf,
    /// Format it if it holds no filesystem (a new or an assembled array; apply checks the
    /// device is blank right before `mkfs.xfs`).
    pub format: bool,
    /// MD_UUID: the array's identity (a new array gets one derived from the machine ID); the
    /// mount unit names the array by udev's `/dev/disk/by-id/md-uuid-<MD_UUID>` link.
    pub md_uuid: String,
    /// Where the array is mounted: `<mountPath>/0`.
    pub mount_point: PathBuf,
    /// Mounted already.
    pub mounted: bool,
    /// The bind mounts, in mount order.
    pub binds: Vec<BindMount>,
}

/// One disk of the `Mount` strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskMount {
    /// The disk.
    pub device: PathBuf,
    /// `<mountPath>/<index>`, from 1.
    pub index: u32,
    /// The disk has no filesystem yet: make one.
    pub format: bool,
    /// The filesystem's UUID.
    pub fs_uuid: String,
    /// The mount point.
    pub mount_point: PathBuf,
    /// Mounted already.
    pub mounted: bool,
}

/// What the agent does with the instance-store disks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "layout")]
pub enum StorageLayout {
    /// The strategy is set but no disk matched: a warning, nothing else.
    NoDisks {
        /// The strategy.
        strategy: Strategy,
        /// The pattern that matched nothing.
        pattern: String,
    },
    /// One md array with bind mounts.
    Array {
        /// RAID0 or RAID10.
        strategy: Strategy,
        /// The layout.
        array: ArrayLayout,
    },
    /// One mount per disk.
    Mounts {
        /// `<mountPath>`.
        mount_path: PathBuf,
        /// Each disk.
        disks: Vec<DiskMount>,
    },
}

impl StorageLayout {
    /// The strategy.
    pub fn strategy(&self) -> Strategy {
        match self {
            StorageLayout::NoDisks { strategy, .. } | StorageLayout::Array { strategy, .. } => {
                *strategy
            }
            StorageLayout::Mounts { .. } => Strategy::Mount,
        }
    }

    /// The layout in one line (the plan, the record `status` reads, `config show --explain`).
    pub fn summary(&self) -> String {
        let list = |paths: &mut dyn Iterator<Item = &PathBuf>| {
            paths
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            StorageLayout::NoDisks { strategy, .. } => {
                format!("{}: no instance-store disks", strategy.as_str())
            }
            StorageLayout::Array { strategy, array } => format!(
                "{} array {} of {} disks ({}) at {}, bind-mounted onto {}",
                strategy.as_str(),
                array.device.display(),
                array.disks.len(),
                list(&mut array.disks.iter()),
                array.mount_point.display(),
                if array.binds.is_empty() {
                    "nothing".to_owned()
                } else {
                    list(&mut array.binds.iter().map(|b| &b.target))
                }
            ),
            StorageLayout::Mounts { mount_path, disks } => format!(
                "Mount: {} disks, each at {}/<n>",
                disks.len(),
                mount_path.display()
            ),
        }
    }
}

/// systemd's escaping of a path into a unit name (`systemd-escape --path`): slashes become
/// `-`, `[A-Za-z0-9:_.]` stay (a leading `.` does not), every other byte becomes `\xNN`.
pub fn systemd_escape_path(path: &Path) -> String {
    let text = path.to_string_lossy();
    let trimmed: Vec<&str> = text.split('/').filter(|s| !s.is_empty()).collect();
    if trimmed.is_empty() {
        return "-".into();
    }
    let joined = trimmed.join("/");
    let mut out = String::with_capacity(joined.len());
    for (i, b) in joined.bytes().enumerate() {
        match b {
            b'/' => out.push('-'),
            b'.' if i > 0 => out.push('.'),
            b if b.is_ascii_alphanumeric() || b == b':' || b == b'_' => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// The mount unit name of `path`, e.g. `var-lib-containerd.mount`.
pub fn mount_unit(path: &Path) -> String {
    format!("{}.mount", systemd_escape_path(path))
}

/// The device unit name of `path`, e.g. `dev-disk-by\x2duuid-….device`.
pub fn device_unit(path: &Path) -> String {
    format!("{}.device", systemd_escape_path(path))
}

/// Parses `KEY=value` lines (`blkid -o export`, `mdadm --export`); values unquoted.
pub fn parse_export(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v);
            (k.trim().to_owned(), v.to_owned())
        })
        .collect()
}

/// What `blkid -p -o export` says a device holds; `None` (blkid found nothing, exit 2) is
/// [`Content::Blank`]. An md member's details come from `mdadm --examine --export`
/// (`member`), when it was read.
pub fn content_from_blkid(
    blkid: Option<&BTreeMap<String, String>>,
    member: Option<&BTreeMap<String, String>>,
) -> Content {
    let Some(b) = blkid else {
        return Content::Blank;
    };
    match (
        b.get("TYPE").map(String::as_str),
        b.get("USAGE").map(String::as_str),
    ) {
        (Some("linux_raid_member"), _) => {
            let m = member.cloned().unwrap_or_default();
            Content::RaidMember(RaidMember {
                array_uuid: m
                    .get("MD_UUID")
                    .or_else(|| b.get("UUID"))
                    .cloned()
                    .unwrap_or_default(),
                name: m
                    .get("MD_NAME")
                    .or_else(|| b.get("LABEL"))
                    .cloned()
                    .unwrap_or_default(),
                level: m.get("MD_LEVEL").cloned().unwrap_or_default(),
                raid_devices: m
                    .get("MD_DEVICES")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
            })
        }
        (Some(fstype), Some("filesystem")) => Content::Filesystem {
            fstype: fstype.to_owned(),
            uuid: b.get("UUID").cloned().unwrap_or_default(),
        },
        (Some(t), _) => Content::Other {
            what: format!("TYPE={t}"),
        },
        (None, _) => match b.get("PTTYPE") {
            Some(pt) => Content::Other {
                what: format!("PTTYPE={pt} partition table"),
            },
            None if b.keys().all(|k| k == "DEVNAME") => Content::Blank,
            None => Content::Other {
                what: b
                    .iter()
                    .filter(|(k, _)| *k != "DEVNAME")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            },
        },
    }
}

/// Parses /proc/self/mountinfo: `id parent major:minor root target options [optional...] -
/// fstype source superoptions`. Malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            if l.len() < 6 || r.len() < 2 {
                return None;
            }
            Some(MountEntry {
                dev: l[2].to_owned(),
                root: PathBuf::from(super::procfs::unescape(l[3])),
                target: PathBuf::from(super::procfs::unescape(l[4])),
                fstype: r[0].to_owned(),
                source: super::procfs::unescape(r[1]),
            })
        })
        .collect()
}

/// A filesystem UUID derived from the machine ID and a role (`array`, `disk-1`, ...): the same
/// on every boot of this host, so a stopped and started instance (blank disks) gives its new
/// filesystem the UUID its mount units name. RFC 4122 layout, version 4 bits set.
pub fn derived_fs_uuid(machine_id: &str, role: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut input = Vec::new();
    input.extend_from_slice(b"eks-node-agent local storage\0");
    input.extend_from_slice(machine_id.trim().as_bytes());
    input.push(0);
    input.extend_from_slice(role.as_bytes());
    let d = Sha256::digest(&input);
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_paths_as_systemd_does() {
        for (path, want) in [
            ("/", "-"),
            ("/foo//bar/baz/", "foo-bar-baz"),
            ("/var/lib/kubelet", "var-lib-kubelet"),
            (
                "/var/lib/soci-snapshotter-grpc",
                "var-lib-soci\\x2dsnapshotter\\x2dgrpc",
            ),
            ("/mnt/k8s-disks/0", "mnt-k8s\\x2ddisks-0"),
            ("/.hidden", "\\x2ehidden"),
            ("/foo.bar", "foo.bar"),
            ("/path with space", "path\\x20with\\x20space"),
        ] {
            assert_eq!(systemd_escape_path(Path::new(path)), want, "{path}");
        }
        assert_eq!(mount_unit(Path::new("/var/log/pods")), "var-log-pods.mount");
    }

    #[test]
    fn blkid_and_mdadm_exports_become_content() {
        assert_eq!(content_from_blkid(None, None), Content::Blank);
        let xfs = parse_export(
            "DEVNAME=/dev/nvme1n1\nUUID=1f2e\nBLOCK_SIZE=512\nTYPE=xfs\nUSAGE=filesystem\n",
        );
        assert_eq!(
            content_from_blkid(Some(&xfs), None),
            Content::Filesystem {
                fstype: "xfs".into(),
                uuid: "1f2e".into()
            }
        );
        let member = parse_export(
            "DEVNAME=/dev/nvme1n1\nUUID=9e4a2c51-0c1b-3f4e-aa1b-21f0c0de1234\nLABEL=any:kubernetes\nVERSION=1.2\nTYPE=linux_raid_member\nUSAGE=raid\n",
        );
        let examine = parse_export(
            "MD_LEVEL=raid10\nMD_DEVICES=4\nMD_NAME=any:kubernetes\nMD_UUID=9e4a2c51:0c1b3f4e:aa1b21f0:c0de1234\n",
        );
        let Content::RaidMember(m) = content_from_blkid(Some(&member), Some(&examine)) else {
            panic!("not a member");
        };
        assert_eq!(m.level, "raid10");
        assert_eq!(m.raid_devices, 4);
        assert_eq!(m.array_uuid, "9e4a2c51:0c1b3f4e:aa1b21f0:c0de1234");
        assert!(is_our_array_name(&m.name));
        assert!(is_our_array_name("kubernetes"));
        assert!(!is_our_array_name("any:kubernetes2"));
        let gpt = parse_export("DEVNAME=/dev/nvme1n1\nPTUUID=abc\nPTTYPE=gpt\n");
        assert!(matches!(
            content_from_blkid(Some(&gpt), None),
            Content::Other { what } if what.contains("gpt")
        ));
        let swap = parse_export("UUID=x\nTYPE=swap\nUSAGE=other\n");
        assert!(matches!(
            content_from_blkid(Some(&swap), None),
            Content::Other { .. }
        ));
    }

    #[test]
    fn mountinfo_lines_parse_with_escapes() {
        let text = "\
22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
80 22 9:127 / /mnt/k8s-disks/0 rw,noatime shared:40 - xfs /dev/md127 rw,attr2
81 22 9:127 /containerd /var/lib/containerd rw,noatime shared:40 - xfs /dev/md127 rw
82 22 0:50 / /mnt/with\\040space rw - tmpfs tmpfs rw
garbage
";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 4);
        assert_eq!(m[2].root, Path::new("/containerd"));
        assert_eq!(m[2].target, Path::new("/var/lib/containerd"));
        assert_eq!(m[2].source, "/dev/md127");
        assert_eq!(m[2].dev, "9:127");
        assert_eq!(m[3].target, Path::new("/mnt/with space"));
    }

    #[test]
    fn derived_uuids_are_stable_distinct_and_version_4() {
        let a = derived_fs_uuid("0123", "array");
        assert_eq!(a, derived_fs_uuid("0123\n", "array"));
        assert_ne!(a, derived_fs_uuid("0123", "disk-1"));
        assert_ne!(a, derived_fs_uuid("0124", "array"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }
}
