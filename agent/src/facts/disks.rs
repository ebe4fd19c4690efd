//! The instance-store disks: which block devices they are and what they hold. Reads only.
//!
//! - the disks: `/dev/disk/by-id` links matching a pattern (default
//!   [`DEFAULT_DISK_PATTERN`], one link per NVMe instance-store disk), resolved and
//!   deduplicated; partitions and the disk holding `/` are left out; on Xen instances
//!   (`/sys/hypervisor/type`), also the `ephemeralN` entries of IMDS
//!   `meta-data/block-device-mapping/` (`sdb` is `/dev/xvdb` there);
//! - what each holds: `blkid -p -o export` (a low-level probe, no cache), and for md members
//!   `mdadm --examine --export`;
//! - the md arrays: /sys/block/md*/md/array_state and slaves/, `mdadm --detail --export` and
//!   `blkid -p` of each running array;
//! - the mounts (/proc/self/mountinfo) and /etc/machine-id.
//!
//! Every program is a fixed one with fixed arguments, bounded by [`PROBE_TIMEOUT`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::command::{self, Ran};
use super::imds::Imds;
use crate::model::disks::{
    BY_ID_DIR, Content, LocalDisk, MdArray, StorageFacts, content_from_blkid, parse_export,
    parse_mountinfo,
};

pub use crate::model::disks::DEFAULT_DISK_PATTERN;

/// Bound on each probe (blkid, mdadm).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(15);
/// At most this many by-id links are looked at, and this many disks kept.
pub const MAX_LINKS: usize = 4096;
/// At most this many disks.
pub const MAX_DISKS: usize = 64;
/// Bound on reading one IMDS block-device-mapping entry list.
const MAX_MAPPINGS: usize = 64;

/// Why the disks could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A probe could not run.
    #[error("cannot probe the instance-store disks with `{command}` (install {package})")]
    Probe {
        /// The command.
        command: String,
        /// The Debian/RPM package that has it.
        package: &'static str,
        /// Why.
        #[source]
        source: command::Error,
    },
    /// IMDS failed while listing a Xen instance's ephemeral disks.
    #[error("reading IMDS meta-data/block-device-mapping/ (Xen instance-store disks)")]
    Imds(#[source] super::imds::Error),
}

/// Where discovery looks (production: the host's `/dev`, `/sys`, `/proc`).
#[derive(Debug, Clone)]
pub struct Query {
    /// The by-id link pattern (`*` and `?` wildcards).
    pub pattern: String,
    /// The root the files are read under: `/` on the host. Under any other root the host's
    /// block devices are not read at all (init --root).
    pub root: PathBuf,
}

/// `*` and `?` wildcards; everything else literal.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn m(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], n) || (!n.is_empty() && m(p, &n[1..])),
            (Some(b'?'), Some(_)) => m(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &n[1..]),
            _ => false,
        }
    }
    pattern.len() <= 256 && name.len() <= 256 && m(pattern.as_bytes(), name.as_bytes())
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

fn block_name(dev: &Path) -> String {
    dev.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The partitions of a disk (sysfs children named after it).
fn partitions(name: &str) -> Vec<String> {
    std::fs::read_dir(format!("/sys/class/block/{name}"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(name) && n != name)
                .collect()
        })
        .unwrap_or_default()
}

fn holders(name: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(format!("/sys/class/block/{name}/holders"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

async fn probe(argv: &[&str], package: &'static str) -> Result<Ran, Error> {
    let argv: Vec<String> = argv.iter().map(|s| (*s).to_owned()).collect();
    command::run(&argv, PROBE_TIMEOUT)
        .await
        .map_err(|source| Error::Probe {
            command: argv.join(" "),
            package,
            source,
        })
}

/// What `dev` holds: blkid's low-level probe (exit 2: nothing), then mdadm for members.
async fn content(dev: &Path) -> Result<Content, Error> {
    let d = dev.display().to_string();
    let blkid = probe(&["blkid", "-p", "-o", "export", &d], "util-linux").await?;
    let found = match blkid.code {
        Some(0) => Some(parse_export(&blkid.stdout)),
        Some(2) => None,
        _ => {
            return Ok(Content::Other {
                what: format!("unreadable signature (blkid: {})", blkid.tail()),
            });
        }
    };
    let member = match found
        .as_ref()
        .and_then(|f| f.get("TYPE"))
        .map(String::as_str)
    {
        Some("linux_raid_member") => {
            let ran = probe(&["mdadm", "--examine", "--export", &d], "mdadm").await?;
            ran.success().then(|| parse_export(&ran.stdout))
        }
        _ => None,
    };
    Ok(content_from_blkid(found.as_ref(), member.as_ref()))
}

/// The by-id links matching the pattern, resolved, with the link name that found each.
fn by_id_disks(pattern: &str, skipped: &mut Vec<String>) -> BTreeMap<PathBuf, String> {
    let mut found = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(BY_ID_DIR) else {
        return found;
    };
    let mut names: Vec<String> = entries
        .flatten()
        .take(MAX_LINKS)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| glob_match(pattern, n))
        .collect();
    names.sort();
    for n in names {
        let Ok(dev) = std::fs::canonicalize(Path::new(BY_ID_DIR).join(&n)) else {
            continue;
        };
        let name = block_name(&dev);
        if Path::new(&format!("/sys/class/block/{name}/partition")).exists() {
            skipped.push(format!("{n}: {} is a partition", dev.display()));
            continue;
        }
        found.entry(dev).or_insert(n);
    }
    found
}

/// The `ephemeralN` entries of IMDS `meta-data/block-device-mapping/` with the device name
/// each maps to (`("ephemeral0", "sdb")`), in IMDS order.
pub async fn ephemeral_mappings(imds: &Imds) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    let Some(list) = imds
        .get_text_optional("/latest/meta-data/block-device-mapping/")
        .await
        .map_err(Error::Imds)?
    else {
        return Ok(out);
    };
    for entry in list
        .lines()
        .map(str::trim)
        .filter(|e| e.starts_with("ephemeral"))
        .take(MAX_MAPPINGS)
    {
        if let Some(dev) = imds
            .get_text_optional(&format!("/latest/meta-data/block-device-mapping/{entry}"))
            .await
            .map_err(Error::Imds)?
        {
            out.push((entry.to_owned(), dev.trim().to_owned()));
        }
    }
    Ok(out)
}

/// The device paths an IMDS device name can have on a Xen instance, most likely first:
/// `sdb` is `/dev/xvdb` under Xen's block front-end, `/dev/sdb` otherwise.
pub fn xen_candidates(name: &str) -> Vec<PathBuf> {
    let base = name.trim().trim_start_matches("/dev/");
    let mut v = Vec::new();
    if let Some(rest) = base.strip_prefix("sd") {
        v.push(PathBuf::from(format!("/dev/xvd{rest}")));
    }
    v.push(PathBuf::from(format!("/dev/{base}")));
    v
}

/// A Xen instance's ephemeral disks from IMDS, those that exist on this host.
async fn xen_disks(
    imds: &Imds,
    skipped: &mut Vec<String>,
) -> Result<BTreeMap<PathBuf, String>, Error> {
    let mut found = BTreeMap::new();
    for (entry, dev) in ephemeral_mappings(imds).await? {
        let path = xen_candidates(&dev).into_iter().find(|p| p.exists());
        match path.and_then(|p| std::fs::canonicalize(p).ok()) {
            Some(p) => {
                found.insert(p, format!("imds:{entry}"));
            }
            None => skipped.push(format!("imds {entry}: {dev} is not a device on this host")),
        }
    }
    Ok(found)
}

/// The md arrays of the host.
async fn arrays() -> Result<Vec<MdArray>, Error> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return Ok(out);
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("md"))
        .collect();
    names.sort();
    for name in names.into_iter().take(MAX_DISKS) {
        let sys = PathBuf::from(format!("/sys/block/{name}"));
        let state = read(&sys.join("md/array_state")).unwrap_or_default();
        let mut members: Vec<PathBuf> = std::fs::read_dir(sys.join("slaves"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| PathBuf::from(format!("/dev/{}", e.file_name().to_string_lossy())))
                    .collect()
            })
            .unwrap_or_default();
        members.sort();
        let device = PathBuf::from(format!("/dev/{name}"));
        let mut array = MdArray {
            device: device.clone(),
            name: String::new(),
            uuid: String::new(),
            level: read(&sys.join("md/level")).unwrap_or_default(),
            raid_devices: read(&sys.join("md/raid_disks"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            members,
            state,
            content: Content::Blank,
        };
        let d = device.display().to_string();
        let detail = probe(&["mdadm", "--detail", "--export", &d], "mdadm").await?;
        if detail.success() {
            let kv = parse_export(&detail.stdout);
            array.name = kv.get("MD_NAME").cloned().unwrap_or_default();
            array.uuid = kv.get("MD_UUID").cloned().unwrap_or_default();
            if let Some(l) = kv.get("MD_LEVEL").filter(|l| l.starts_with("raid")) {
                array.level = l.clone();
            }
            if let Some(n) = kv.get("MD_DEVICES").and_then(|n| n.parse().ok()) {
                array.raid_devices = n;
            }
        }
        if array.is_running() {
            array.content = content(&device).await?;
        }
        out.push(array);
    }
    Ok(out)
}

/// Reads the disks, the arrays and the mounts. `imds` is given on EC2 (Xen disks).
pub async fn discover(query: &Query, imds: Option<&Imds>) -> Result<StorageFacts, Error> {
    let mut facts = StorageFacts {
        pattern: query.pattern.clone(),
        machine_id: read(&query.root.join("etc/machine-id")).unwrap_or_default(),
        ..StorageFacts::default()
    };
    if query.root != Path::new("/") {
        facts.skipped.push(format!(
            "root is {}, not /: the host's block devices are not read",
            query.root.display()
        ));
        return Ok(facts);
    }
    facts.mounts = read(Path::new("/proc/self/mountinfo"))
        .map(|t| parse_mountinfo(&t))
        .unwrap_or_default();
    let mut skipped = Vec::new();
    let mut found = by_id_disks(&query.pattern, &mut skipped);
    if let Some(imds) = imds
        && read(Path::new("/sys/hypervisor/type")).as_deref() == Some("xen")
    {
        for (dev, src) in xen_disks(imds, &mut skipped).await? {
            found.entry(dev).or_insert(src);
        }
    }
    // The root filesystem's disk is never an instance-store disk, whatever the pattern says.
    let root_source = facts
        .mount_at(Path::new("/"))
        .and_then(|m| std::fs::canonicalize(&m.source).ok());
    for (dev, source) in found.into_iter().take(MAX_DISKS) {
        let name = block_name(&dev);
        let parts = partitions(&name);
        if let Some(root) = &root_source
            && (root == &dev
                || parts
                    .iter()
                    .any(|p| root == Path::new(&format!("/dev/{p}"))))
        {
            skipped.push(format!(
                "{source}: {} holds the root filesystem",
                dev.display()
            ));
            continue;
        }
        let size_bytes = read(Path::new(&format!("/sys/class/block/{name}/size")))
            .and_then(|n| n.parse::<u64>().ok())
            .map_or(0, |sectors| sectors * 512);
        let content = if parts.is_empty() {
            content(&dev).await?
        } else {
            Content::Other {
                what: format!("partitions ({})", parts.join(", ")),
            }
        };
        facts.disks.push(LocalDisk {
            holders: holders(&name),
            device: dev,
            source,
            size_bytes,
            content,
        });
    }
    facts.arrays = arrays().await?;
    // An inactive array (udev's incremental assembly waiting for a missing member) has no
    // level and counts only the members it holds: its members' superblocks say what it is.
    for a in facts.arrays.iter_mut().filter(|a| !a.is_running()) {
        if let Some(m) = facts.disks.iter().find_map(|d| match &d.content {
            Content::RaidMember(m) if a.members.contains(&d.device) => Some(m),
            _ => None,
        }) {
            if a.name.is_empty() {
                a.name = m.name.clone();
            }
            if a.uuid.is_empty() {
                a.uuid = m.array_uuid.clone();
            }
            a.level = m.level.clone();
            a.raid_devices = m.raid_devices;
        }
    }
    facts.skipped = skipped;
    for s in &facts.skipped {
        tracing::info!(skipped = %s, "instance-store discovery left a device out");
    }
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xen_names_map_to_xvd_first() {
        assert_eq!(
            xen_candidates("sdb"),
            [PathBuf::from("/dev/xvdb"), PathBuf::from("/dev/sdb")]
        );
        assert_eq!(xen_candidates("/dev/xvdc"), [PathBuf::from("/dev/xvdc")]);
    }

    #[test]
    fn glob_matches_the_by_id_names() {
        let p = DEFAULT_DISK_PATTERN;
        assert!(glob_match(
            p,
            "nvme-Amazon_EC2_NVMe_Instance_Storage_AWS1F2E3D4C5B6A7980"
        ));
        assert!(glob_match(
            p,
            "nvme-Amazon_EC2_NVMe_Instance_Storage_AWS1F2E3D4C5B6A7980_1"
        ));
        assert!(!glob_match(
            p,
            "nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0"
        ));
        assert!(!glob_match(
            p,
            "nvme-nvme.1d0f-415753-416d617a6f6e-00000001"
        ));
        assert!(glob_match("nvme-QEMU_NVMe_Ctrl_?", "nvme-QEMU_NVMe_Ctrl_4"));
        assert!(!glob_match("a*b", "acb-"));
        assert!(glob_match("*", ""));
    }

    #[tokio::test]
    async fn another_root_reads_no_block_device() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("etc")).unwrap();
        std::fs::write(tmp.path().join("etc/machine-id"), "abc\n").unwrap();
        let facts = discover(
            &Query {
                pattern: "*".into(),
                root: tmp.path().into(),
            },
            None,
        )
        .await
        .unwrap();
        assert!(facts.disks.is_empty());
        assert_eq!(facts.machine_id, "abc");
        assert!(facts.skipped[0].contains("not read"), "{:?}", facts.skipped);
    }
}
