//! The instance-store layout: (localStorage settings, what discovery found on the disks) ->
//! [`StorageLayout`]. Pure. The rules, nodeadm's plus what it leaves implicit:
//!
//! - no disk: nothing to do (a warning);
//! - `RAID0`/`RAID10`: a running `kubernetes` array is used as it is; disks carrying its
//!   superblocks are assembled, never re-created; only disks with no signature at all get a
//!   new array. RAID10 needs at least four disks. A member that is missing, a disk that holds
//!   something else, or an array of another level is an error: nothing is changed.
//! - `Mount`: each disk keeps its XFS filesystem (and so its index, by the filesystem UUID the
//!   agent derived for that index) or, blank, gets a new one.
//!
//! Identities derive from the machine ID (see [`derived_fs_uuid`]), so after a stop and start
//! (blank disks) the new array and filesystems get the identities the mount units name.

use std::path::{Path, PathBuf};

use crate::model::disks::{
    ARRAY_DEVICE, ArrayLayout, ArraySetup, BindMount, Content, DiskMount, FSTYPE, LocalDisk,
    MdArray, RAID10_MIN_DISKS, StorageFacts, StorageLayout, StorageSettings, Strategy,
    derived_fs_uuid, is_our_array_name,
};

/// Why the disks cannot be laid out as configured. Nothing on the host was changed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Too few disks for the strategy.
    #[error(
        "spec.instance.localStorage.strategy: RAID10 needs at least {need} instance-store disks, this instance has {found} ({disks}); use RAID0 or Mount on this instance type"
    )]
    TooFewDisks {
        /// Needed.
        need: usize,
        /// Found.
        found: usize,
        /// The disks, comma-separated.
        disks: String,
    },
    /// A disk holds something the agent did not make.
    #[error(
        "instance-store disk {device} holds {what}; refusing to overwrite it for {strategy}. If its data is not needed, wipe it (`wipefs -a {device}`) and run init again"
    )]
    Foreign {
        /// The disk (or array).
        device: PathBuf,
        /// What it holds.
        what: String,
        /// The strategy.
        strategy: &'static str,
    },
    /// A disk is in use by something else.
    #[error(
        "instance-store disk {device} is in use ({by}); release it (unmount it, stop that array) and run init again"
    )]
    InUse {
        /// The disk.
        device: PathBuf,
        /// By what.
        by: String,
    },
    /// The array cannot be assembled: members are missing.
    #[error(
        "cannot assemble the {array} (`{command}`): {have} of its {need} member disks are present{missing}. A disk disappeared: replace the instance, or wipe the remaining members (`wipefs -a`) to start over; kubelet is not started on a partial array"
    )]
    MissingMembers {
        /// `<level> array <name> (UUID <uuid>)`.
        array: String,
        /// The command that would assemble it.
        command: String,
        /// How many are present.
        have: usize,
        /// How many it needs.
        need: u32,
        /// What the other disks hold, as a sentence tail.
        missing: String,
    },
    /// The running (or inactive) array is incomplete or not running.
    #[error(
        "the {array} is {state} with {have} of its {need} member disks ({members}); it cannot be assembled (`mdadm --assemble` needs all {need}): a disk disappeared or failed. The array is not used and kubelet is not started; replace the instance, or wipe the members (`wipefs -a`) to start over"
    )]
    ArrayIncomplete {
        /// `<level> array <name> (<device>)`.
        array: String,
        /// array_state.
        state: String,
        /// Present members.
        have: usize,
        /// Needed.
        need: u32,
        /// The members, space-separated.
        members: String,
    },
    /// The existing array is of another level than the strategy.
    #[error(
        "the instance-store disks hold a {found} array {name} but spec.instance.localStorage.strategy is {strategy}; set the strategy back, or wipe the disks (`wipefs -a` on each) to rebuild them"
    )]
    WrongLevel {
        /// What was found.
        found: String,
        /// md name.
        name: String,
        /// The strategy.
        strategy: &'static str,
    },
    /// Something else is mounted where the layout mounts.
    #[error(
        "{target} is already a mount point of {source_device} ({fstype}); unmount it, or keep it with spec.instance.localStorage.disabledMounts / mountPath"
    )]
    Occupied {
        /// The mount point.
        target: PathBuf,
        /// What is mounted there.
        source_device: String,
        /// Its fstype.
        fstype: String,
    },
}

impl crate::exit::Classify for Error {
    fn exit_code(&self) -> crate::exit::Code {
        match self {
            // The config does not fit this instance type.
            Error::TooFewDisks { .. } => crate::exit::Code::BadInput,
            _ => crate::exit::Code::Failure,
        }
    }
}

/// The md UUID the agent gives a new array on this host (mdadm's colon form).
pub fn array_md_uuid(machine_id: &str) -> String {
    let hex: String = derived_fs_uuid(machine_id, "md-array")
        .chars()
        .filter(|c| *c != '-')
        .collect();
    format!(
        "{}:{}:{}:{}",
        &hex[0..8],
        &hex[8..16],
        &hex[16..24],
        &hex[24..32]
    )
}

/// The by-id link udev makes for an md array with this MD_UUID.
pub fn md_uuid_link(md_uuid: &str) -> PathBuf {
    PathBuf::from(format!("/dev/disk/by-id/md-uuid-{md_uuid}"))
}

/// The by-uuid link of a filesystem.
pub fn fs_uuid_link(fs_uuid: &str) -> PathBuf {
    PathBuf::from(format!("/dev/disk/by-uuid/{fs_uuid}"))
}

/// Decides the layout.
pub fn layout(s: &StorageSettings, facts: &StorageFacts) -> Result<StorageLayout, Error> {
    if facts.disks.is_empty() {
        return Ok(StorageLayout::NoDisks {
            strategy: s.strategy,
            pattern: facts.pattern.clone(),
        });
    }
    for d in &facts.disks {
        if let Some(m) = facts
            .mounts
            .iter()
            .find(|m| Path::new(&m.source) == d.device)
        {
            // A disk the layout itself mounts (Mount strategy) is checked there.
            if s.strategy != Strategy::Mount || !m.target.starts_with(&s.mount_path) {
                return Err(Error::InUse {
                    device: d.device.clone(),
                    by: format!("mounted at {}", m.target.display()),
                });
            }
        }
    }
    match s.strategy.raid_level() {
        Some(level) => array(s, facts, level).map(|array| StorageLayout::Array {
            strategy: s.strategy,
            array,
        }),
        None => mounts(s, facts),
    }
}

fn names(disks: &[&LocalDisk]) -> String {
    disks
        .iter()
        .map(|d| d.device.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn array(s: &StorageSettings, facts: &StorageFacts, level: u32) -> Result<ArrayLayout, Error> {
    let strategy = s.strategy.as_str();
    let disks: Vec<&LocalDisk> = facts.disks.iter().collect();
    if level == 10 && disks.len() < RAID10_MIN_DISKS {
        return Err(Error::TooFewDisks {
            need: RAID10_MIN_DISKS,
            found: disks.len(),
            disks: names(&disks),
        });
    }
    let want_level = format!("raid{level}");
    let mount_point = s.mount_path.join("0");
    let paths: Vec<PathBuf> = disks.iter().map(|d| d.device.clone()).collect();

    // An array the kernel knows that holds one of the disks (or carries our name).
    let known: Option<&MdArray> = facts.arrays.iter().find(|a| {
        a.members.iter().any(|m| paths.contains(m))
            || (a.is_ours() && a.members.is_empty() && a.is_running())
    });
    let (setup, device, md_uuid, format, members) = if let Some(a) = known {
        if !a.is_ours() {
            let member = a
                .members
                .iter()
                .find(|m| paths.contains(m))
                .cloned()
                .unwrap_or_default();
            return Err(Error::InUse {
                device: member,
                by: format!("a member of md array {} ({})", a.device.display(), a.name),
            });
        }
        let members: Vec<String> = a.members.iter().map(|m| m.display().to_string()).collect();
        if !a.is_running() || (a.raid_devices > 0 && (a.members.len() as u32) < a.raid_devices) {
            return Err(Error::ArrayIncomplete {
                array: format!(
                    "{} array {} ({})",
                    if a.level.is_empty() { "md" } else { &a.level },
                    a.name,
                    a.device.display()
                ),
                state: a.state.clone(),
                have: a.members.len(),
                need: a.raid_devices,
                members: members.join(" "),
            });
        }
        if !a.level.is_empty() && a.level != want_level {
            return Err(Error::WrongLevel {
                found: a.level.clone(),
                name: a.name.clone(),
                strategy,
            });
        }
        if let Some(extra) = disks.iter().find(|d| !a.members.contains(&d.device)) {
            return Err(Error::Foreign {
                device: extra.device.clone(),
                what: format!(
                    "{}, and is not a member of the running array {}",
                    extra.content.describe(),
                    a.device.display()
                ),
                strategy,
            });
        }
        let format = match &a.content {
            Content::Blank => true,
            Content::Filesystem { fstype, .. } if fstype == FSTYPE => false,
            other => {
                return Err(Error::Foreign {
                    device: a.device.clone(),
                    what: other.describe(),
                    strategy,
                });
            }
        };
        (
            ArraySetup::Running {
                device: a.device.clone(),
            },
            a.device.clone(),
            a.uuid.clone(),
            format,
            a.members.clone(),
        )
    } else {
        let with_superblock: Vec<(&LocalDisk, &crate::model::disks::RaidMember)> = disks
            .iter()
            .filter_map(|d| match &d.content {
                Content::RaidMember(m) => Some((*d, m)),
                _ => None,
            })
            .collect();
        if let Some((_, first)) = with_superblock.first() {
            if let Some((d, m)) = with_superblock
                .iter()
                .find(|(_, m)| !is_our_array_name(&m.name) || m.array_uuid != first.array_uuid)
            {
                return Err(Error::Foreign {
                    device: d.device.clone(),
                    what: Content::RaidMember((*m).clone()).describe(),
                    strategy,
                });
            }
            if first.level != want_level {
                return Err(Error::WrongLevel {
                    found: first.level.clone(),
                    name: first.name.clone(),
                    strategy,
                });
            }
            let present: Vec<&LocalDisk> = with_superblock.iter().map(|(d, _)| *d).collect();
            let others: Vec<String> = disks
                .iter()
                .filter(|d| !present.iter().any(|p| p.device == d.device))
                .map(|d| format!("{} holds {}", d.device.display(), d.content.describe()))
                .collect();
            if (present.len() as u32) < first.raid_devices || !others.is_empty() {
                let present: Vec<String> = present
                    .iter()
                    .map(|d| d.device.display().to_string())
                    .collect();
                return Err(Error::MissingMembers {
                    array: format!(
                        "{} array {} (UUID {})",
                        first.level, first.name, first.array_uuid
                    ),
                    command: format!(
                        "mdadm --assemble {ARRAY_DEVICE} --uuid={} {}",
                        first.array_uuid,
                        present.join(" ")
                    ),
                    have: present.len(),
                    need: first.raid_devices,
                    missing: if others.is_empty() {
                        String::new()
                    } else {
                        format!("; {}", others.join("; "))
                    },
                });
            }
            (
                ArraySetup::Assemble {
                    uuid: first.array_uuid.clone(),
                },
                PathBuf::from(ARRAY_DEVICE),
                first.array_uuid.clone(),
                // Whether the assembled array holds a filesystem is only known once it runs:
                // apply formats it only if it is blank.
                true,
                paths.clone(),
            )
        } else {
            if let Some(d) = disks.iter().find(|d| d.content != Content::Blank) {
                return Err(Error::Foreign {
                    device: d.device.clone(),
                    what: d.content.describe(),
                    strategy,
                });
            }
            if let Some(d) = disks.iter().find(|d| !d.holders.is_empty()) {
                return Err(Error::InUse {
                    device: d.device.clone(),
                    by: format!("held by {}", d.holders.join(", ")),
                });
            }
            (
                ArraySetup::Create,
                PathBuf::from(ARRAY_DEVICE),
                array_md_uuid(&facts.machine_id),
                true,
                paths.clone(),
            )
        }
    };
    let mounted = match (&setup, facts.mount_at(&mount_point)) {
        (_, None) => false,
        (ArraySetup::Running { device }, Some(m)) if Path::new(&m.source) == device => true,
        (_, Some(m)) => {
            return Err(Error::Occupied {
                target: mount_point,
                source_device: m.source.clone(),
                fstype: m.fstype.clone(),
            });
        }
    };
    let mut binds = Vec::new();
    for dir in &s.binds {
        let target = PathBuf::from(dir.path);
        let name = target.file_name().map(PathBuf::from).unwrap_or_default();
        let source = mount_point.join(&name);
        let bound = match facts.mount_at(&target) {
            None => false,
            Some(m) if Path::new(&m.source) == device && m.root == Path::new("/").join(&name) => {
                true
            }
            Some(m) => {
                return Err(Error::Occupied {
                    target,
                    source_device: m.source.clone(),
                    fstype: m.fstype.clone(),
                });
            }
        };
        binds.push(BindMount {
            target,
            source,
            service: dir.service.to_owned(),
            mounted: bound,
            move_data: !bound,
        });
    }
    Ok(ArrayLayout {
        level,
        disks: members,
        setup,
        device,
        format,
        md_uuid,
        mount_point,
        mounted,
        binds,
    })
}

fn mounts(s: &StorageSettings, facts: &StorageFacts) -> Result<StorageLayout, Error> {
    let strategy = s.strategy.as_str();
    let n = facts.disks.len() as u32;
    let derived: Vec<String> = (1..=n)
        .map(|i| derived_fs_uuid(&facts.machine_id, &format!("disk-{i}")))
        .collect();
    // First pass: disks that keep their filesystem, by the index their UUID was derived for.
    let mut slots: Vec<Option<DiskMount>> = vec![None; n as usize];
    let mut rest: Vec<(&LocalDisk, Option<String>)> = Vec::new();
    for d in &facts.disks {
        if !d.holders.is_empty() {
            return Err(Error::InUse {
                device: d.device.clone(),
                by: format!("held by {}", d.holders.join(", ")),
            });
        }
        match &d.content {
            Content::Blank => rest.push((d, None)),
            Content::Filesystem { fstype, uuid } if fstype == FSTYPE => {
                match derived.iter().position(|u| u == uuid) {
                    Some(i) if slots[i].is_none() => {
                        slots[i] = Some(disk_mount(s, facts, d, i as u32 + 1, false, uuid)?);
                    }
                    _ => rest.push((d, Some(uuid.clone()))),
                }
            }
            other => {
                return Err(Error::Foreign {
                    device: d.device.clone(),
                    what: other.describe(),
                    strategy,
                });
            }
        }
    }
    // Then the others, in device order, into the free indexes.
    let mut free = (0..n as usize)
        .filter(|i| slots[*i].is_none())
        .collect::<Vec<_>>();
    free.reverse();
    for (d, existing) in rest {
        let Some(i) = free.pop() else { break };
        let (format, uuid) = match existing {
            Some(u) => (false, u),
            None => (true, derived[i].clone()),
        };
        slots[i] = Some(disk_mount(s, facts, d, i as u32 + 1, format, &uuid)?);
    }
    Ok(StorageLayout::Mounts {
        mount_path: s.mount_path.clone(),
        disks: slots.into_iter().flatten().collect(),
    })
}

fn disk_mount(
    s: &StorageSettings,
    facts: &StorageFacts,
    d: &LocalDisk,
    index: u32,
    format: bool,
    uuid: &str,
) -> Result<DiskMount, Error> {
    let mount_point = s.mount_path.join(index.to_string());
    let mounted = match facts.mount_at(&mount_point) {
        None => false,
        Some(m) if Path::new(&m.source) == d.device => true,
        Some(m) => {
            return Err(Error::Occupied {
                target: mount_point,
                source_device: m.source.clone(),
                fstype: m.fstype.clone(),
            });
        }
    };
    Ok(DiskMount {
        device: d.device.clone(),
        index,
        format,
        fs_uuid: uuid.to_owned(),
        mount_point,
        mounted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::disks::{MountEntry, RaidMember, STATE_DIRS};

    fn settings(strategy: Strategy) -> StorageSettings {
        StorageSettings {
            strategy,
            mount_path: "/mnt/k8s-disks".into(),
            binds: if strategy == Strategy::Mount {
                Vec::new()
            } else {
                STATE_DIRS.to_vec()
            },
        }
    }

    fn disk(n: u32, content: Content) -> LocalDisk {
        LocalDisk {
            device: format!("/dev/nvme{n}n1").into(),
            source: format!("nvme-Amazon_EC2_NVMe_Instance_Storage_AWS{n}"),
            size_bytes: 1 << 30,
            content,
            holders: Vec::new(),
        }
    }

    fn facts(disks: Vec<LocalDisk>) -> StorageFacts {
        StorageFacts {
            pattern: "nvme-Amazon_EC2_NVMe_Instance_Storage_*".into(),
            disks,
            machine_id: "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e".into(),
            ..StorageFacts::default()
        }
    }

    fn member(level: &str, n: u32) -> Content {
        Content::RaidMember(RaidMember {
            array_uuid: "11111111:22222222:33333333:44444444".into(),
            name: "any:kubernetes".into(),
            level: level.into(),
            raid_devices: n,
        })
    }

    #[test]
    fn blank_disks_get_a_new_array_with_all_binds() {
        let f = facts((1..=4).map(|n| disk(n, Content::Blank)).collect());
        let StorageLayout::Array { array, .. } = layout(&settings(Strategy::Raid0), &f).unwrap()
        else {
            panic!()
        };
        assert_eq!(array.setup, ArraySetup::Create);
        assert_eq!(array.md_uuid, array_md_uuid(&f.machine_id));
        assert_eq!(array.mount_point, Path::new("/mnt/k8s-disks/0"));
        assert_eq!(array.binds.len(), 4);
        assert!(array.binds.iter().all(|b| b.move_data && !b.mounted));
        assert_eq!(
            array.binds[0].source,
            Path::new("/mnt/k8s-disks/0/containerd")
        );
    }

    #[test]
    fn members_are_assembled_never_recreated_and_missing_ones_refused() {
        let f = facts((1..=4).map(|n| disk(n, member("raid10", 4))).collect());
        let StorageLayout::Array { array, .. } = layout(&settings(Strategy::Raid10), &f).unwrap()
        else {
            panic!()
        };
        assert!(matches!(array.setup, ArraySetup::Assemble { .. }));
        assert_eq!(array.md_uuid, "11111111:22222222:33333333:44444444");

        let mut three = facts((1..=3).map(|n| disk(n, member("raid0", 4))).collect());
        three.disks.push(disk(4, Content::Blank));
        let err = layout(&settings(Strategy::Raid0), &three)
            .unwrap_err()
            .to_string();
        assert!(err.contains("3 of its 4 member disks"), "{err}");
        assert!(err.contains("/dev/nvme4n1 holds no signature"), "{err}");
        assert!(err.contains("mdadm --assemble"), "{err}");

        let wrong = facts((1..=4).map(|n| disk(n, member("raid0", 4))).collect());
        let err = layout(&settings(Strategy::Raid10), &wrong)
            .unwrap_err()
            .to_string();
        assert!(err.contains("raid0 array"), "{err}");
    }

    #[test]
    fn raid10_needs_four_disks_and_foreign_data_is_refused() {
        let f = facts((1..=2).map(|n| disk(n, Content::Blank)).collect());
        let err = layout(&settings(Strategy::Raid10), &f).unwrap_err();
        assert_eq!(
            crate::exit::Classify::exit_code(&err),
            crate::exit::Code::BadInput
        );
        let mut f = facts((1..=2).map(|n| disk(n, Content::Blank)).collect());
        f.disks[1].content = Content::Filesystem {
            fstype: "ext4".into(),
            uuid: "u".into(),
        };
        let err = layout(&settings(Strategy::Raid0), &f)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/dev/nvme2n1 holds a ext4 filesystem"),
            "{err}"
        );
    }

    #[test]
    fn a_running_array_is_used_and_its_mounts_recognised() {
        let mut f = facts((1..=2).map(|n| disk(n, member("raid0", 2))).collect());
        f.arrays.push(MdArray {
            device: "/dev/md127".into(),
            name: "any:kubernetes".into(),
            uuid: "aa:bb:cc:dd".into(),
            level: "raid0".into(),
            raid_devices: 2,
            members: vec!["/dev/nvme1n1".into(), "/dev/nvme2n1".into()],
            state: "clean".into(),
            content: Content::Filesystem {
                fstype: "xfs".into(),
                uuid: "f".into(),
            },
        });
        f.mounts.push(MountEntry {
            target: "/mnt/k8s-disks/0".into(),
            source: "/dev/md127".into(),
            fstype: "xfs".into(),
            root: "/".into(),
            dev: "9:127".into(),
        });
        f.mounts.push(MountEntry {
            target: "/var/lib/kubelet".into(),
            source: "/dev/md127".into(),
            fstype: "xfs".into(),
            root: "/kubelet".into(),
            dev: "9:127".into(),
        });
        let StorageLayout::Array { array, .. } = layout(&settings(Strategy::Raid0), &f).unwrap()
        else {
            panic!()
        };
        assert!(!array.format && array.mounted);
        let kubelet = array
            .binds
            .iter()
            .find(|b| b.target == Path::new("/var/lib/kubelet"));
        assert!(kubelet.unwrap().mounted);
        assert!(array.binds.iter().filter(|b| b.mounted).count() == 1);

        f.arrays[0].members.pop();
        f.arrays[0].state = "inactive".into();
        let err = layout(&settings(Strategy::Raid0), &f)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("inactive with 1 of its 2 member disks"),
            "{err}"
        );
    }

    #[test]
    fn mount_strategy_keeps_indexes_by_derived_uuid() {
        let mut f = facts((1..=3).map(|n| disk(n, Content::Blank)).collect());
        let uuid2 = derived_fs_uuid(&f.machine_id, "disk-2");
        // The disk that had index 2 now enumerates first.
        f.disks[0].content = Content::Filesystem {
            fstype: "xfs".into(),
            uuid: uuid2.clone(),
        };
        let StorageLayout::Mounts { disks, .. } = layout(&settings(Strategy::Mount), &f).unwrap()
        else {
            panic!()
        };
        assert_eq!(disks.len(), 3);
        assert_eq!(disks[1].device, Path::new("/dev/nvme1n1"));
        assert_eq!(disks[1].fs_uuid, uuid2);
        assert!(!disks[1].format);
        assert_eq!(disks[0].device, Path::new("/dev/nvme2n1"));
        assert!(disks[0].format);
        assert_eq!(disks[2].mount_point, Path::new("/mnt/k8s-disks/3"));
        assert_eq!(
            layout(&settings(Strategy::Mount), &facts(vec![])).unwrap(),
            StorageLayout::NoDisks {
                strategy: Strategy::Mount,
                pattern: "nvme-Amazon_EC2_NVMe_Instance_Storage_*".into()
            }
        );
    }
}
