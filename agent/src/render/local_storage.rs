//! The instance-store layout as plan steps and systemd units. Pure.
//!
//! Steps (run by `apply` first, before any file is written, so the node's files land on the
//! array): create or assemble the md array, make the XFS filesystem, mount it, then for each
//! state directory move its data onto the array (only when the array has no copy yet) and
//! bind-mount it back. Each step's program and arguments are built here, once, for both the
//! dry run and apply.
//!
//! Units (written as files): one `.mount` unit per mount, ordered after the agent's boot phase
//! 1 (which sets the disks up and mounts them itself, so at boot the units find their mounts in
//! place), and drop-ins that make containerd, the kubelet and the SOCI snapshotter require
//! their mounts: neither starts on a half-built layout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::plan::FileSpec;
use crate::compute::local_storage::{fs_uuid_link, md_uuid_link};
use crate::model::disks::{
    ARRAY_NAME, ArraySetup, FSTYPE, MOUNT_OPTIONS, StorageLayout, mount_unit,
};
use crate::model::paths::SYSTEMD_UNIT_DIR;

/// The boot phase that sets the disks up (the mount units are ordered after it).
pub const INIT_CONFIG_UNIT: &str = "eks-node-agent-init-config.service";
/// The file name of the drop-ins that tie services to their mounts.
pub const DROPIN_NAME: &str = "40-eks-node-agent-local-storage.conf";
/// The md superblock format.
pub const MD_METADATA: &str = "1.2";

/// One step of setting the disks up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "camelCase")]
pub enum DiskStep {
    /// `mdadm --create` over blank disks.
    CreateArray {
        /// `/dev/md/kubernetes`.
        device: PathBuf,
        /// 0 or 10.
        level: u32,
        /// The MD_UUID it gets.
        md_uuid: String,
        /// The members.
        disks: Vec<PathBuf>,
    },
    /// `mdadm --assemble` from the members' superblocks.
    AssembleArray {
        /// `/dev/md/kubernetes`.
        device: PathBuf,
        /// MD_UUID.
        md_uuid: String,
        /// The members.
        disks: Vec<PathBuf>,
    },
    /// `mkfs.xfs`, only on a device that holds no signature at that moment.
    Format {
        /// The device.
        device: PathBuf,
        /// The filesystem UUID to give (per-disk mounts), or none (the array is named by its
        /// md UUID).
        fs_uuid: Option<String>,
    },
    /// `mount -t xfs`, unless mounted.
    Mount {
        /// The stable name (a udev link).
        what: PathBuf,
        /// The device behind it, for messages.
        device: PathBuf,
        /// The mount point.
        at: PathBuf,
    },
    /// Move a state directory onto the array (if the array has no copy yet), then
    /// `mount --bind`.
    Bind {
        /// The directory on the array.
        source: PathBuf,
        /// The state directory.
        target: PathBuf,
        /// The service using it (stopped during a move if it runs).
        service: String,
    },
}

impl DiskStep {
    /// The program and arguments of the step's command (the bind step's is its mount).
    pub fn argv(&self) -> Vec<String> {
        let s = |p: &Path| p.display().to_string();
        match self {
            DiskStep::CreateArray {
                device,
                level,
                md_uuid,
                disks,
            } => {
                let mut v = vec![
                    "mdadm".into(),
                    "--create".into(),
                    s(device),
                    "--run".into(),
                    "--force".into(),
                    format!("--level={level}"),
                    format!("--raid-devices={}", disks.len()),
                    format!("--metadata={MD_METADATA}"),
                    format!("--name={ARRAY_NAME}"),
                    "--homehost=any".into(),
                    format!("--uuid={md_uuid}"),
                ];
                v.extend(disks.iter().map(|d| s(d)));
                v
            }
            DiskStep::AssembleArray {
                device,
                md_uuid,
                disks,
            } => {
                let mut v = vec![
                    "mdadm".into(),
                    "--assemble".into(),
                    s(device),
                    format!("--uuid={md_uuid}"),
                ];
                v.extend(disks.iter().map(|d| s(d)));
                v
            }
            DiskStep::Format { device, fs_uuid } => {
                // -K: instance store is delivered trimmed, a discard pass only costs time;
                // -l su=8b: a 32 KiB log stripe unit (the array's 512 KiB chunk is over the
                // log's maximum), as nodeadm does.
                let mut v = vec!["mkfs.xfs".into(), "-K".into(), "-l".into(), "su=8b".into()];
                if let Some(u) = fs_uuid {
                    v.push("-m".into());
                    v.push(format!("uuid={u}"));
                }
                v.push(s(device));
                v
            }
            DiskStep::Mount { what, at, .. } => vec![
                "mount".into(),
                "-t".into(),
                FSTYPE.into(),
                "-o".into(),
                MOUNT_OPTIONS.into(),
                s(what),
                s(at),
            ],
            DiskStep::Bind { source, target, .. } => {
                vec!["mount".into(), "--bind".into(), s(source), s(target)]
            }
        }
    }

    /// The step as one line of the dry run.
    pub fn describe(&self) -> String {
        let cmd = self.argv().join(" ");
        match self {
            DiskStep::Format { device, .. } => {
                format!("{cmd} (only if {} holds no signature)", device.display())
            }
            DiskStep::Mount { device, at, .. } => format!(
                "mkdir -p {}; {cmd} (array or disk {}; skipped if mounted)",
                at.display(),
                device.display()
            ),
            DiskStep::Bind {
                source,
                target,
                service,
            } => format!(
                "move {} into {} if the array has no copy yet (stopping {service} if it runs); {cmd}",
                target.display(),
                source.display()
            ),
            _ => cmd,
        }
    }
}

/// The plan's local storage section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoragePlan {
    /// The layout in one line.
    pub summary: String,
    /// A warning to log (no disks), when there is one.
    pub warning: Option<String>,
    /// The steps, in order.
    pub steps: Vec<DiskStep>,
    /// The layout itself (recorded for `status`).
    pub layout: StorageLayout,
}

/// The steps and the unit files of `layout`.
pub fn render(layout: &StorageLayout) -> (StoragePlan, Vec<FileSpec>) {
    let mut steps = Vec::new();
    let mut files = Vec::new();
    let mut requires: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let summary = layout.summary();
    let warning = match layout {
        StorageLayout::NoDisks { strategy, pattern } => Some(format!(
            "spec.instance.localStorage.strategy is {} but no instance-store disk matched /dev/disk/by-id/{pattern} (this instance type has none): nothing is set up, containerd and the kubelet stay on the root volume",
            strategy.as_str()
        )),
        StorageLayout::Array { strategy, array } => {
            let level = array.level;
            match &array.setup {
                ArraySetup::Create => steps.push(DiskStep::CreateArray {
                    device: array.device.clone(),
                    level,
                    md_uuid: array.md_uuid.clone(),
                    disks: array.disks.clone(),
                }),
                ArraySetup::Assemble { uuid } => steps.push(DiskStep::AssembleArray {
                    device: array.device.clone(),
                    md_uuid: uuid.clone(),
                    disks: array.disks.clone(),
                }),
                ArraySetup::Running { .. } => {}
            }
            if array.format {
                steps.push(DiskStep::Format {
                    device: array.device.clone(),
                    fs_uuid: None,
                });
            }
            let what = md_uuid_link(&array.md_uuid);
            if !array.mounted {
                steps.push(DiskStep::Mount {
                    what: what.clone(),
                    device: array.device.clone(),
                    at: array.mount_point.clone(),
                });
            }
            let array_unit = mount_unit(&array.mount_point);
            files.push(unit_file(
                &array.mount_point,
                &format!(
                    "Instance-store {} array ({} disks) at {}",
                    strategy.as_str(),
                    array.disks.len(),
                    array.mount_point.display()
                ),
                &[],
                &what.display().to_string(),
                FSTYPE,
                MOUNT_OPTIONS,
            ));
            for b in &array.binds {
                if !b.mounted {
                    steps.push(DiskStep::Bind {
                        source: b.source.clone(),
                        target: b.target.clone(),
                        service: b.service.clone(),
                    });
                }
                files.push(unit_file(
                    &b.target,
                    &format!(
                        "{} on the instance-store {} array",
                        b.target.display(),
                        strategy.as_str()
                    ),
                    std::slice::from_ref(&array_unit),
                    &b.source.display().to_string(),
                    "none",
                    "bind",
                ));
                requires
                    .entry(b.service.clone())
                    .or_default()
                    .push(mount_unit(&b.target));
            }
            None
        }
        StorageLayout::Mounts { disks, .. } => {
            for d in disks {
                if d.format {
                    steps.push(DiskStep::Format {
                        device: d.device.clone(),
                        fs_uuid: Some(d.fs_uuid.clone()),
                    });
                }
                let what = fs_uuid_link(&d.fs_uuid);
                if !d.mounted {
                    steps.push(DiskStep::Mount {
                        what: what.clone(),
                        device: d.device.clone(),
                        at: d.mount_point.clone(),
                    });
                }
                files.push(unit_file(
                    &d.mount_point,
                    &format!(
                        "Instance-store disk {} at {}",
                        d.index,
                        d.mount_point.display()
                    ),
                    &[],
                    &what.display().to_string(),
                    FSTYPE,
                    MOUNT_OPTIONS,
                ));
                requires
                    .entry("kubelet.service".to_owned())
                    .or_default()
                    .push(mount_unit(&d.mount_point));
            }
            None
        }
    };
    for (service, units) in &requires {
        let list = units.join(" ");
        files.push(FileSpec::new(
            format!("{SYSTEMD_UNIT_DIR}/{service}.d/{DROPIN_NAME}"),
            format!(
                "# Written by eks-node-agent (spec.instance.localStorage): {service} starts only\n\
                 # with its state on the instance-store disks.\n\
                 [Unit]\nRequires={list}\nAfter={list}\n"
            ),
            &[service.as_str()],
        ));
    }
    (
        StoragePlan {
            summary,
            warning,
            steps,
            layout: layout.clone(),
        },
        files,
    )
}

/// A `.mount` unit. No default dependencies: the mounts must not join local-fs.target (the
/// agent's phase 1, which sets them up, runs after it); they are ordered after phase 1 and
/// wanted by it, and required by the services that use them.
fn unit_file(
    at: &Path,
    description: &str,
    after: &[String],
    what: &str,
    fstype: &str,
    options: &str,
) -> FileSpec {
    let mut requires = String::new();
    for u in after {
        requires.push_str(&format!("Requires={u}\nAfter={u}\n"));
    }
    let text = format!(
        "# Written by eks-node-agent (spec.instance.localStorage).\n\
         [Unit]\n\
         Description={description}\n\
         Documentation=man:eks-node-agent(1)\n\
         DefaultDependencies=no\n\
         Wants={INIT_CONFIG_UNIT}\n\
         After={INIT_CONFIG_UNIT} local-fs-pre.target\n\
         {requires}\
         Conflicts=umount.target\n\
         Before=umount.target\n\
         \n\
         [Mount]\n\
         What={what}\n\
         Where={}\n\
         Type={fstype}\n\
         Options={options}\n",
        at.display()
    );
    FileSpec::new(format!("{SYSTEMD_UNIT_DIR}/{}", mount_unit(at)), text, &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::disks::{ArrayLayout, BindMount, DiskMount, Strategy};

    #[test]
    fn a_new_array_is_created_formatted_mounted_and_bound() {
        let layout = StorageLayout::Array {
            strategy: Strategy::Raid0,
            array: ArrayLayout {
                level: 0,
                disks: vec!["/dev/nvme1n1".into(), "/dev/nvme2n1".into()],
                setup: ArraySetup::Create,
                device: "/dev/md/kubernetes".into(),
                format: true,
                md_uuid: "a:b:c:d".into(),
                mount_point: "/mnt/k8s-disks/0".into(),
                mounted: false,
                binds: vec![BindMount {
                    target: "/var/lib/containerd".into(),
                    source: "/mnt/k8s-disks/0/containerd".into(),
                    service: "containerd.service".into(),
                    mounted: false,
                    move_data: true,
                }],
            },
        };
        let (plan, files) = render(&layout);
        assert_eq!(
            plan.steps[0].argv().join(" "),
            "mdadm --create /dev/md/kubernetes --run --force --level=0 --raid-devices=2 --metadata=1.2 --name=kubernetes --homehost=any --uuid=a:b:c:d /dev/nvme1n1 /dev/nvme2n1"
        );
        assert_eq!(
            plan.steps[1].argv().join(" "),
            "mkfs.xfs -K -l su=8b /dev/md/kubernetes"
        );
        assert_eq!(
            plan.steps[2].argv().join(" "),
            "mount -t xfs -o defaults,noatime /dev/disk/by-id/md-uuid-a:b:c:d /mnt/k8s-disks/0"
        );
        assert_eq!(plan.steps.len(), 4);
        let paths: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
        assert_eq!(
            paths,
            [
                "/etc/systemd/system/mnt-k8s\\x2ddisks-0.mount",
                "/etc/systemd/system/var-lib-containerd.mount",
                "/etc/systemd/system/containerd.service.d/40-eks-node-agent-local-storage.conf"
            ]
        );
        let bind = String::from_utf8_lossy(&files[1].contents);
        assert!(
            bind.contains("Requires=mnt-k8s\\x2ddisks-0.mount"),
            "{bind}"
        );
        assert!(bind.contains("What=/mnt/k8s-disks/0/containerd\nWhere=/var/lib/containerd\nType=none\nOptions=bind\n"), "{bind}");
        assert_eq!(files[2].affects, ["containerd.service"]);
    }

    #[test]
    fn per_disk_mounts_and_no_disks() {
        let layout = StorageLayout::Mounts {
            mount_path: "/data".into(),
            disks: vec![DiskMount {
                device: "/dev/nvme1n1".into(),
                index: 1,
                format: true,
                fs_uuid: "1234".into(),
                mount_point: "/data/1".into(),
                mounted: false,
            }],
        };
        let (plan, files) = render(&layout);
        assert_eq!(
            plan.steps[0].argv().join(" "),
            "mkfs.xfs -K -l su=8b -m uuid=1234 /dev/nvme1n1"
        );
        assert!(
            String::from_utf8_lossy(&files[0].contents).contains("What=/dev/disk/by-uuid/1234\n")
        );
        assert!(
            files[1]
                .path
                .ends_with("kubelet.service.d/40-eks-node-agent-local-storage.conf")
        );

        let (plan, files) = render(&StorageLayout::NoDisks {
            strategy: Strategy::Raid0,
            pattern: "x*".into(),
        });
        assert!(plan.steps.is_empty() && files.is_empty());
        assert!(
            plan.warning
                .unwrap()
                .contains("no instance-store disk matched")
        );
    }
}
