//! Accelerators on the PCI bus, as `facts::pci` finds them in sysfs: the host fact that
//! `compute` (containerd's default runtime, node labels) and the daemon's checks read.

use serde::{Deserialize, Serialize};

/// The kind of an accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AcceleratorKind {
    /// An NVIDIA GPU.
    Nvidia,
    /// An AWS Neuron device (Inferentia, Trainium).
    Neuron,
}

/// One accelerator on the PCI bus.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PciDevice {
    /// The device's address, e.g. `0000:00:1e.0` (its directory name).
    pub address: String,
    /// What it is.
    pub kind: AcceleratorKind,
    /// The PCI vendor ID.
    pub vendor: u16,
    /// The PCI device ID.
    pub device: u16,
}
