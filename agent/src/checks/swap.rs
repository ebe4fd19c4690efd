//! The `swap` check of `status`: no active swap, since the kubelet refuses to start with swap
//! on unless the configuration turns `failSwapOn` off.

use std::path::Path;

use super::Outcome;
use super::status::{fail, ok, warn};
use crate::model::procfs::parse_swaps;

/// /proc/swaps under `proc_root`: its text, `None` when the kernel has no swap support.
pub fn read(proc_root: &Path) -> Result<Option<String>, String> {
    let path = proc_root.join("swaps");
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The `swap` check. `text` is /proc/swaps (None when the kernel has no swap support);
/// `fail_swap_on` is the kubelet's `failSwapOn` (true unless the config turns it off).
pub fn check(text: &Result<Option<String>, String>, fail_swap_on: bool) -> Outcome {
    let text = match text {
        Ok(Some(t)) => t,
        Ok(None) => return ok("no swap support in the kernel (/proc/swaps absent)"),
        Err(e) => {
            return warn(
                "SwapUnreadable",
                format!("cannot read the swap table: {e}"),
                "check `swapon --show` by hand: kubelet refuses to start with swap on",
            );
        }
    };
    let areas = parse_swaps(text);
    if areas.is_empty() {
        return ok("no active swap (/proc/swaps lists none)");
    }
    let list = areas
        .iter()
        .map(|a| {
            format!(
                "{} ({}, {} KiB, {} KiB used)",
                a.path,
                a.kind.as_str(),
                a.size_kib,
                a.used_kib
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    if fail_swap_on {
        fail(
            "SwapOn",
            format!("swap is on: {list}"),
            "kubelet refuses to start with swap on (failSwapOn): run `swapoff -a`, remove the swap entries from /etc/fstab and disable swap units (zram, systemd .swap)",
        )
    } else {
        warn(
            "SwapOn",
            format!("swap is on: {list}; the configuration sets failSwapOn: false"),
            "make sure memorySwap.swapBehavior is what you want, or turn swap off (`swapoff -a` and /etc/fstab)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    #[test]
    fn swaps_and_fail_swap_on() {
        let none = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
        assert_eq!(check(&Ok(Some(none.into())), true).status, Status::Ok);
        let on = format!(
            "{none}/swapfile                               file\t\t2097148\t\t1024\t\t-2\n"
        );
        let r = check(&Ok(Some(on.clone())), true);
        assert_eq!(r.status, Status::Fail);
        assert!(
            r.evidence
                .contains("/swapfile (file, 2097148 KiB, 1024 KiB used)"),
            "{}",
            r.evidence
        );
        assert!(r.fix.contains("swapoff -a"));
        assert_eq!(check(&Ok(Some(on)), false).status, Status::Warn);
        assert_eq!(check(&Ok(None), true).status, Status::Ok);
    }
}
