//! The `local-storage` check of `status`: what `init` did with the instance-store disks at
//! this boot (its record: the layout, the steps, or the error that stopped it, naming the
//! device and the command) and whether the layout's mounts are in place now (mountinfo).

use std::path::Path;

use super::Outcome;
use super::status::{fail, ok, warn};
use crate::apply::disks::{Record, read_record};
use crate::model::disks::{MountEntry, StorageSettings, parse_mountinfo};

/// What the check reads: the record under `host_root` and `<proc_root>/self/mountinfo`.
pub fn read(
    host_root: &Path,
    proc_root: &Path,
) -> (Option<Result<Record, String>>, Vec<MountEntry>) {
    let mounts = std::fs::read_to_string(proc_root.join("self/mountinfo"))
        .map(|t| parse_mountinfo(&t))
        .unwrap_or_default();
    (read_record(host_root), mounts)
}

/// The `local-storage` check.
pub fn check(
    settings: Option<&StorageSettings>,
    record: Option<&Result<Record, String>>,
    mounts: &[MountEntry],
) -> Outcome {
    let Some(settings) = settings else {
        return ok(
            "spec.instance.localStorage.strategy is not set: the instance-store disks are not used",
        );
    };
    let strategy = settings.strategy.as_str();
    let record = match record {
        None => {
            return warn(
                "LocalStorageNotSetUp",
                format!(
                    "the strategy is {strategy} but init has not set the instance-store disks up at this boot"
                ),
                "run `eks-node-agent init` (at boot: see `journalctl -u eks-node-agent-init-config`)",
            );
        }
        Some(Err(e)) => {
            return fail(
                "LocalStorageRecordCorrupt",
                format!("the local storage record is unreadable: {e}"),
                "run `eks-node-agent init` again to set the disks up and rewrite it",
            );
        }
        Some(Ok(r)) => r,
    };
    if let Some(error) = &record.error {
        return fail(
            "LocalStorageSetupFailed",
            format!("{strategy} setup failed at this boot: {error}"),
            "fix the device the error names (or replace the instance), then run `eks-node-agent init`; kubelet stays stopped until then",
        );
    }
    if let Some(w) = &record.warning {
        return warn(
            "NoInstanceStoreDisks",
            w.clone(),
            "nothing to do on an instance type without instance store; choose one with instance-store volumes to use the strategy",
        );
    }
    let missing: Vec<String> = record
        .mounts
        .iter()
        .filter(|p| !mounts.iter().any(|m| m.target == **p))
        .map(|p| p.display().to_string())
        .collect();
    if !missing.is_empty() {
        return fail(
            "LocalStorageNotMounted",
            format!(
                "{} set up at boot ({}), but not mounted now: {}",
                strategy,
                record.summary,
                missing.join(", ")
            ),
            "see `systemctl status` of their .mount units and `cat /proc/mdstat`; run `eks-node-agent init` to mount them again",
        );
    }
    ok(format!(
        "{}; {} mounts in place",
        record.summary,
        record.mounts.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;
    use crate::model::disks::{STATE_DIRS, Strategy};

    fn settings() -> StorageSettings {
        StorageSettings {
            strategy: Strategy::Raid0,
            mount_path: "/mnt/k8s-disks".into(),
            binds: STATE_DIRS.to_vec(),
        }
    }

    fn record(error: Option<&str>) -> Result<Record, String> {
        Ok(Record {
            strategy: "RAID0".into(),
            summary: "RAID0 array /dev/md127 of 2 disks".into(),
            warning: None,
            done: Vec::new(),
            error: error.map(str::to_owned),
            mounts: vec!["/mnt/k8s-disks/0".into(), "/var/lib/kubelet".into()],
        })
    }

    #[test]
    fn verdicts() {
        assert_eq!(check(None, None, &[]).status, Status::Ok);
        assert_eq!(check(Some(&settings()), None, &[]).status, Status::Warn);
        let failed = check(
            Some(&settings()),
            Some(&record(Some(
                "local storage: `mkfs.xfs -K -l su=8b /dev/nvme2n1` failed: exit 1",
            ))),
            &[],
        );
        assert_eq!(failed.status, Status::Fail);
        assert!(
            failed.evidence.contains("/dev/nvme2n1"),
            "{}",
            failed.evidence
        );
        let mounts = parse_mountinfo("1 0 9:127 / /mnt/k8s-disks/0 rw - xfs /dev/md127 rw\n");
        let partial = check(Some(&settings()), Some(&record(None)), &mounts);
        assert_eq!(partial.status, Status::Fail);
        assert!(
            partial.evidence.contains("/var/lib/kubelet"),
            "{}",
            partial.evidence
        );
        let all = parse_mountinfo(
            "1 0 9:127 / /mnt/k8s-disks/0 rw - xfs /dev/md127 rw\n2 0 9:127 /kubelet /var/lib/kubelet rw - xfs /dev/md127 rw\n",
        );
        assert_eq!(
            check(Some(&settings()), Some(&record(None)), &all).status,
            Status::Ok
        );
    }
}
