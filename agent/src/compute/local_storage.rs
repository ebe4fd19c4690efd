//! `spec.instance.localStorage`: which instance-store disks are assembled and mounted, and
//! which directories move onto them, as nodeadm does.

use crate::config::{DisabledMount, LocalStorageStrategy, NodeConfig};
use crate::model::{BindMount, HostFacts, LocalStorage, LocalStorageKind};

use super::Error;

/// Where local storage is mounted unless `mountPath` says otherwise (nodeadm's default).
pub const DEFAULT_MOUNT_DIR: &str = "/mnt/k8s-disks";
/// RAID10 needs this many disks at least.
pub const RAID10_MIN_DISKS: usize = 4;

/// The directories nodeadm moves onto a RAID array, with the unit that uses each, in its order;
/// `/var/lib/kubelet` always moves (there is no `disabledMounts` name for it).
const BIND_MOUNTS: [(Option<DisabledMount>, &str, &str); 4] = [
    (
        Some(DisabledMount::Containerd),
        "/var/lib/containerd",
        "containerd.service",
    ),
    (
        Some(DisabledMount::PodLogs),
        "/var/log/pods",
        "kubelet.service",
    ),
    (
        Some(DisabledMount::Soci),
        "/var/lib/soci-snapshotter-grpc",
        "soci-snapshotter.service",
    ),
    (None, "/var/lib/kubelet", "kubelet.service"),
];

/// The local storage of this node: `None` when no strategy is set or the host has no NVMe
/// instance-store disks (nodeadm does nothing then either); with why.
pub fn local_storage(
    config: &NodeConfig,
    host: &HostFacts,
) -> Result<(Option<LocalStorage>, String), Error> {
    let options = &config.spec.instance.local_storage;
    let Some(strategy) = options.strategy else {
        return Ok((
            None,
            "none: spec.instance.localStorage.strategy is not set".into(),
        ));
    };
    if host.instance_store_disks.is_empty() {
        tracing::info!("no NVMe instance-store disks on this host: local storage is not set up");
        return Ok((
            None,
            format!("none: strategy {strategy:?} but the host has no NVMe instance-store disks"),
        ));
    }
    let kind = match strategy {
        LocalStorageStrategy::Raid0 => LocalStorageKind::Raid0,
        LocalStorageStrategy::Raid10 => LocalStorageKind::Raid10,
        LocalStorageStrategy::Mount => LocalStorageKind::Mount,
    };
    let disks = host.instance_store_disks.clone();
    if kind == LocalStorageKind::Raid10 && disks.len() < RAID10_MIN_DISKS {
        return Err(Error::Raid10Disks { found: disks });
    }
    let mount_dir = options
        .mount_path
        .clone()
        .unwrap_or_else(|| DEFAULT_MOUNT_DIR.to_owned());
    let mount_dir = mount_dir.trim_end_matches('/').to_owned();
    let bind_mounts = if kind == LocalStorageKind::Mount {
        Vec::new()
    } else {
        BIND_MOUNTS
            .iter()
            .filter(|(name, _, _)| {
                name.as_ref()
                    .is_none_or(|n| !options.disabled_mounts.contains(n))
            })
            .map(|(_, path, unit)| BindMount {
                path: (*path).to_owned(),
                unit: (*unit).to_owned(),
            })
            .collect()
    };
    let why = format!(
        "{strategy:?} of {} instance-store disk(s) ({}) at {mount_dir}",
        disks.len(),
        disks.join(", ")
    );
    Ok((
        Some(LocalStorage {
            kind,
            disks,
            existing_array: host
                .md_array
                .clone()
                .filter(|_| kind != LocalStorageKind::Mount),
            mount_dir,
            bind_mounts,
        }),
        why,
    ))
}
