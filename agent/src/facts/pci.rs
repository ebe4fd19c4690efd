//! Accelerators on the PCI bus, read from sysfs: the one detection `init` (containerd runtime,
//! node labels) and the daemon's accelerator checks share. Each device directory under
//! `<sys>/bus/pci/devices/` holds `vendor`, `device` and `class` as hex text (`0x10de`).

use std::path::Path;

pub use crate::model::{AcceleratorKind, PciDevice};

/// NVIDIA's PCI vendor ID.
pub const VENDOR_NVIDIA: u16 = 0x10de;
/// Amazon's PCI vendor ID (AWS Inferentia and Trainium: the Neuron devices).
pub const VENDOR_AMAZON: u16 = 0x1d0f;
/// PCI base class of display controllers (NVIDIA GPUs are 0x0300 VGA or 0x0302 3D).
const CLASS_DISPLAY: u32 = 0x03;
/// PCI base class of processing accelerators (0x12).
const CLASS_ACCELERATOR: u32 = 0x12;
/// The most device directories read (a host has a few hundred at most).
const MAX_DEVICES: usize = 4096;

/// The kind of accelerator a device is, from its vendor and class; `None` for anything else
/// (Amazon's other devices, such as ENA network cards and NVMe controllers, share the vendor
/// ID but not the class).
pub fn classify(vendor: u16, class: u32) -> Option<AcceleratorKind> {
    let base = class >> 16;
    match vendor {
        VENDOR_NVIDIA if base == CLASS_DISPLAY || base == CLASS_ACCELERATOR => {
            Some(AcceleratorKind::Nvidia)
        }
        VENDOR_AMAZON if base == CLASS_ACCELERATOR => Some(AcceleratorKind::Neuron),
        _ => None,
    }
}

fn hex(text: &str) -> Option<u32> {
    u32::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok()
}

/// The accelerators under `sys` (normally `/sys`), sorted by address. A missing or unreadable
/// tree means none.
pub fn accelerators(sys: &Path) -> Vec<PciDevice> {
    let Ok(entries) = std::fs::read_dir(sys.join("bus/pci/devices")) else {
        return Vec::new();
    };
    let mut out: Vec<PciDevice> = entries
        .flatten()
        .take(MAX_DEVICES)
        .filter_map(|e| {
            let dir = e.path();
            let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
            let vendor = u16::try_from(hex(&read("vendor")?)?).ok()?;
            let device = u16::try_from(hex(&read("device")?)?).ok()?;
            let class = hex(&read("class")?)?;
            Some(PciDevice {
                address: e.file_name().to_string_lossy().into_owned(),
                kind: classify(vendor, class)?,
                vendor,
                device,
            })
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(sys: &Path, address: &str, vendor: &str, device: &str, class: &str) {
        let dir = sys.join("bus/pci/devices").join(address);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("vendor"), format!("{vendor}\n")).unwrap();
        std::fs::write(dir.join("device"), format!("{device}\n")).unwrap();
        std::fs::write(dir.join("class"), format!("{class}\n")).unwrap();
    }

    #[test]
    fn gpus_and_neuron_devices_are_found_and_other_devices_are_not() {
        let sys = tempfile::tempdir().unwrap();
        device(sys.path(), "0000:00:1e.0", "0x10de", "0x20b5", "0x030200");
        device(sys.path(), "0000:00:1d.0", "0x10de", "0x1af1", "0x068000"); // NVSwitch bridge
        device(sys.path(), "0000:00:1f.0", "0x1d0f", "0x7164", "0x120000"); // Trainium
        device(sys.path(), "0000:00:05.0", "0x1d0f", "0xec20", "0x020000"); // ENA
        device(sys.path(), "0000:00:04.0", "0x1d0f", "0x8061", "0x010802"); // EBS NVMe
        let found = accelerators(sys.path());
        let kinds: Vec<(&str, AcceleratorKind)> =
            found.iter().map(|d| (d.address.as_str(), d.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("0000:00:1e.0", AcceleratorKind::Nvidia),
                ("0000:00:1f.0", AcceleratorKind::Neuron),
            ]
        );
        assert_eq!(found[0].device, 0x20b5);
        assert!(accelerators(&sys.path().join("missing")).is_empty());
    }
}
