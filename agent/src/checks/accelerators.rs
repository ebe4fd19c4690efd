//! The accelerator check (AcceleratedHardwareReady), on nodes that have accelerators: NVIDIA
//! GPUs and AWS Neuron devices found on the PCI bus ([`crate::facts::pci`], the detection
//! `init` shares), or an instance type that should have them.
//!
//! What it looks at:
//! - the device counts on the PCI bus against the instance type's (the embedded
//!   DescribeInstanceTypes table; the instance type from `--instance-type` or the DMI product
//!   name EC2's Nitro firmware reports);
//! - the kernel log's accelerator problems (NVIDIA XIDs, Neuron hardware errors), kept by the
//!   kernel log follower;
//! - NVML, when `libnvidia-ml.so` is present ([`super::nvml`]): uncorrected ECC (double-bit)
//!   errors and NVLink error counters;
//! - the Neuron driver's uncorrectable ECC counters in sysfs;
//! - nvidia-fabricmanager.service on NVSwitch systems.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::nvml::{GpuReading, Gpus};
use super::{Facts, Outcome, Problem};
use crate::facts::pci::{self, AcceleratorKind};
use crate::model::InstanceType;

/// NVIDIA's fabric manager unit.
pub const FABRIC_MANAGER_UNIT: &str = "nvidia-fabricmanager.service";
/// Instance families whose GPUs are connected through NVSwitches (fabric manager required),
/// for when the switches do not show on the PCI bus.
pub const NVSWITCH_FAMILIES: [&str; 6] = ["p4d", "p4de", "p5", "p5e", "p5en", "p6-b200"];
/// The most Neuron devices read from sysfs.
const MAX_NEURON_DEVICES: usize = 256;

/// The device counts, for the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// NVIDIA GPUs on the PCI bus.
    pub nvidia: u32,
    /// NVIDIA GPUs the instance type has (`None`: type unknown).
    pub nvidia_expected: Option<u32>,
    /// Neuron devices on the PCI bus.
    pub neuron: u32,
    /// Neuron devices the instance type has.
    pub neuron_expected: Option<u32>,
}

/// The instance type from EC2's firmware: Nitro reports it as the DMI product name.
pub fn instance_type_from_dmi(sys: &Path) -> Option<InstanceType> {
    let name = std::fs::read_to_string(sys.join("class/dmi/id/product_name")).ok()?;
    InstanceType::parse(name.trim()).ok()
}

/// What the counts should be for `instance_type` (from the embedded table).
pub fn expected(instance_type: Option<&InstanceType>) -> (Option<u32>, Option<u32>) {
    instance_type
        .and_then(crate::model::embedded_limits)
        .map_or((None, None), |l| {
            (Some(l.nvidia_gpus), Some(l.neuron_devices))
        })
}

/// Whether the node has accelerators at all: on the bus, or due by its instance type.
pub fn present(sys: &Path, instance_type: Option<&InstanceType>) -> bool {
    let (gpus, neuron) = expected(instance_type);
    !pci::accelerators(sys).is_empty() || gpus.unwrap_or(0) > 0 || neuron.unwrap_or(0) > 0
}

/// The Neuron driver's uncorrectable ECC counters above zero:
/// `<sys>/devices/virtual/neuron_device/neuron<N>/stats/hardware/<counter>/total`.
pub fn neuron_ecc(sys: &Path) -> Vec<(String, &'static str, u64)> {
    let Ok(entries) = std::fs::read_dir(sys.join("devices/virtual/neuron_device")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten().take(MAX_NEURON_DEVICES) {
        let device = e.file_name().to_string_lossy().into_owned();
        for (counter, reason) in [
            ("mem_ecc_uncorrected", "NeuronHBMUncorrectableError"),
            ("sram_ecc_uncorrected", "NeuronSRAMUncorrectableError"),
        ] {
            let total = std::fs::read_to_string(
                e.path().join("stats/hardware").join(counter).join("total"),
            )
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok());
            if let Some(n) = total.filter(|n| *n > 0) {
                out.push((device.clone(), reason, n));
            }
        }
    }
    out.sort();
    out
}

/// NVLink error counters between runs.
#[derive(Debug, Default)]
pub struct NvlinkState {
    last: BTreeMap<String, u64>,
    rise: Option<(Instant, String)>,
}

impl NvlinkState {
    /// Records this run's counters; a rise on any GPU (after the first reading) is remembered
    /// for `hold` (the kernel log's problem hold: a sighting counts as long).
    pub fn observe(&mut self, gpus: &[GpuReading], now: Instant, hold: Duration) -> Option<String> {
        for g in gpus {
            let Some(n) = g.nvlink_errors else { continue };
            if let Some(prev) = self.last.insert(g.pci_bus_id.clone(), n)
                && n > prev
            {
                self.rise = Some((
                    now,
                    format!(
                        "GPU {} ({}): NVLink recovery and CRC errors rose from {prev} to {n}",
                        g.index, g.pci_bus_id
                    ),
                ));
            }
        }
        self.rise
            .as_ref()
            .filter(|(at, _)| now.saturating_duration_since(*at) < hold)
            .map(|(_, m)| m.clone())
    }
}

/// Everything the verdict looks at.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// The counts.
    pub counts: Counts,
    /// The instance type, when known.
    pub instance_type: Option<String>,
    /// The kernel log's active accelerator problems.
    pub log: Vec<Problem>,
    /// NVML: its readings, or why it failed; `None` without NVML.
    pub nvml: Option<Result<Vec<GpuReading>, String>>,
    /// A rise of NVLink errors within the hold.
    pub nvlink_rise: Option<String>,
    /// Neuron uncorrectable ECC counters above zero.
    pub neuron_ecc: Vec<(String, &'static str, u64)>,
    /// The fabric manager is needed (NVSwitches) and its unit is not active: its state.
    pub fabric_manager_down: Option<String>,
}

/// The verdict: every accelerator problem.
pub fn evaluate(seen: &Seen) -> Outcome {
    let mut found = Vec::new();
    let c = &seen.counts;
    let it = seen.instance_type.as_deref().unwrap_or("unknown");
    if let Some(e) = c.nvidia_expected.filter(|e| *e > 0 && *e != c.nvidia) {
        found.push(Outcome::fail(
            "NvidiaDeviceCountMismatch",
            format!("{} NVIDIA GPUs on the PCI bus, {it} has {e}", c.nvidia),
        ));
    }
    if let Some(e) = c.neuron_expected.filter(|e| *e > 0 && *e != c.neuron) {
        found.push(Outcome::fail(
            "NeuronDeviceCountMismatch",
            format!("{} Neuron devices on the PCI bus, {it} has {e}", c.neuron),
        ));
    }
    match &seen.nvml {
        Some(Err(e)) => found.push(Outcome::fail("NvmlError", e.clone())),
        Some(Ok(gpus)) => {
            for g in gpus.iter().filter(|g| g.uncorrected_ecc.unwrap_or(0) > 0) {
                found.push(Outcome::fail(
                    "NvidiaDoubleBitError",
                    format!(
                        "GPU {} ({}): {} uncorrected (double-bit) ECC errors since the driver loaded",
                        g.index,
                        g.pci_bus_id,
                        g.uncorrected_ecc.unwrap_or(0)
                    ),
                ));
            }
        }
        None => {}
    }
    if let Some(m) = &seen.nvlink_rise {
        found.push(Outcome::fail("NvidiaNVLinkError", m.clone()));
    }
    for (device, reason, n) in &seen.neuron_ecc {
        found.push(Outcome::fail(
            reason,
            format!("{device}: {n} uncorrectable ECC errors (Neuron driver sysfs)"),
        ));
    }
    if let Some(state) = &seen.fabric_manager_down {
        found.push(Outcome::fail(
            "FabricManagerNotRunning",
            format!("{FABRIC_MANAGER_UNIT} is {state} on an NVSwitch system: multi-GPU NVLink traffic fails"),
        ));
    }
    let facts = Facts {
        accelerators: Some(c.clone()),
        ..Facts::default()
    };
    let out = if found.is_empty() {
        Outcome::ok(format!(
            "{} NVIDIA GPUs, {} Neuron devices ({it})",
            c.nvidia, c.neuron
        ))
    } else {
        Outcome::combine(found)
    };
    super::kernel::with_log(out.with_facts(facts), seen.log.clone())
}

/// Counts the devices on the bus and compares with the instance type.
pub fn counts(sys: &Path, instance_type: Option<&InstanceType>) -> Counts {
    let devices = pci::accelerators(sys);
    let n = |k: AcceleratorKind| {
        u32::try_from(devices.iter().filter(|d| d.kind == k).count()).unwrap_or(u32::MAX)
    };
    let (nvidia_expected, neuron_expected) = expected(instance_type);
    Counts {
        nvidia: n(AcceleratorKind::Nvidia),
        nvidia_expected,
        neuron: n(AcceleratorKind::Neuron),
        neuron_expected,
    }
}

/// Whether the node's GPUs need NVIDIA's fabric manager: NVSwitches on the bus, or an
/// instance family built with them.
pub fn needs_fabric_manager(sys: &Path, instance_type: Option<&InstanceType>) -> bool {
    pci::nvswitch_count(sys) > 0
        || instance_type.is_some_and(|t| {
            let family = t.as_str().split('.').next().unwrap_or("");
            NVSWITCH_FAMILIES.contains(&family)
        })
}

/// Reads NVML through `gpus`, when there is one.
pub fn read_nvml(gpus: Option<&dyn Gpus>) -> Option<Result<Vec<GpuReading>, String>> {
    gpus.map(Gpus::read)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test double of NVML.
    #[derive(Debug)]
    struct FakeNvml(Result<Vec<GpuReading>, String>);

    impl Gpus for FakeNvml {
        fn read(&self) -> Result<Vec<GpuReading>, String> {
            self.0.clone()
        }
    }

    fn gpu(index: u32, ecc: u64, nvlink: u64) -> GpuReading {
        GpuReading {
            index,
            pci_bus_id: format!("00000000:{index:02x}:00.0"),
            uncorrected_ecc: Some(ecc),
            nvlink_errors: Some(nvlink),
        }
    }

    fn reasons(out: &Outcome) -> Vec<String> {
        out.problems().into_iter().map(|p| p.reason).collect()
    }

    fn p4d(nvidia: u32) -> Seen {
        Seen {
            counts: Counts {
                nvidia,
                nvidia_expected: Some(8),
                neuron: 0,
                neuron_expected: Some(0),
            },
            instance_type: Some("p4d.24xlarge".into()),
            ..Seen::default()
        }
    }

    #[test]
    fn healthy_gpus_and_the_count_check() {
        let nvml = FakeNvml(Ok((0..8).map(|i| gpu(i, 0, 5)).collect()));
        let seen = Seen {
            nvml: read_nvml(Some(&nvml)),
            ..p4d(8)
        };
        let out = evaluate(&seen);
        assert!(out.problems().is_empty(), "{out:?}");
        assert_eq!(out.facts.accelerators.unwrap().nvidia, 8);
        let out = evaluate(&p4d(7));
        assert_eq!(reasons(&out), ["NvidiaDeviceCountMismatch"]);
        assert!(out.message.contains("7 NVIDIA GPUs") && out.message.contains("has 8"));
    }

    #[test]
    fn nvml_ecc_nvlink_and_errors() {
        let nvml = FakeNvml(Ok(vec![gpu(0, 0, 5), gpu(1, 2, 5)]));
        let mut state = NvlinkState::default();
        let t0 = Instant::now();
        let first = nvml.read().unwrap();
        let hold = Duration::from_secs(600);
        assert_eq!(
            state.observe(&first, t0, hold),
            None,
            "the first reading is the baseline"
        );
        let rose = vec![gpu(0, 0, 9), gpu(1, 2, 5)];
        let rise = state.observe(&rose, t0 + Duration::from_secs(30), hold);
        assert!(rise.as_deref().unwrap().contains("from 5 to 9"));
        let seen = Seen {
            nvml: Some(Ok(rose.clone())),
            nvlink_rise: rise,
            ..p4d(8)
        };
        assert_eq!(
            reasons(&evaluate(&seen)),
            ["NvidiaDoubleBitError", "NvidiaNVLinkError"]
        );
        assert_eq!(
            state.observe(&rose, t0 + hold + Duration::from_secs(31), hold),
            None
        );
        let broken = FakeNvml(Err("nvmlDeviceGetCount: Unknown".into()));
        let seen = Seen {
            nvml: read_nvml(Some(&broken)),
            ..p4d(8)
        };
        assert_eq!(reasons(&evaluate(&seen)), ["NvmlError"]);
        assert_eq!(read_nvml(None), None, "no library: nothing read");
    }

    #[test]
    fn neuron_counters_and_fabric_manager() {
        let sys = tempfile::tempdir().unwrap();
        let hw = sys
            .path()
            .join("devices/virtual/neuron_device/neuron3/stats/hardware");
        for (c, v) in [("mem_ecc_uncorrected", "2"), ("sram_ecc_uncorrected", "0")] {
            std::fs::create_dir_all(hw.join(c)).unwrap();
            std::fs::write(hw.join(c).join("total"), format!("{v}\n")).unwrap();
        }
        let ecc = neuron_ecc(sys.path());
        assert_eq!(
            ecc,
            [("neuron3".to_string(), "NeuronHBMUncorrectableError", 2)]
        );
        let seen = Seen {
            neuron_ecc: ecc,
            fabric_manager_down: Some("inactive".into()),
            ..p4d(8)
        };
        assert_eq!(
            reasons(&evaluate(&seen)),
            ["NeuronHBMUncorrectableError", "FabricManagerNotRunning"]
        );
        let p5 = InstanceType::parse("p5.48xlarge").unwrap();
        assert!(needs_fabric_manager(sys.path(), Some(&p5)));
        let g5 = InstanceType::parse("g5.xlarge").unwrap();
        assert!(!needs_fabric_manager(sys.path(), Some(&g5)));
        assert_eq!(expected(Some(&g5)), (Some(1), Some(0)));
        assert!(
            present(sys.path(), Some(&g5)),
            "a GPU type has accelerators even with none on the bus"
        );
        let m5 = InstanceType::parse("m5.large").unwrap();
        assert!(!present(sys.path(), Some(&m5)));
    }

    #[test]
    fn instance_type_from_the_firmware() {
        let sys = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(sys.path().join("class/dmi/id")).unwrap();
        std::fs::write(
            sys.path().join("class/dmi/id/product_name"),
            "p5.48xlarge\n",
        )
        .unwrap();
        assert_eq!(
            instance_type_from_dmi(sys.path()).unwrap().as_str(),
            "p5.48xlarge"
        );
        std::fs::write(sys.path().join("class/dmi/id/product_name"), "HVM domU\n").unwrap();
        assert_eq!(instance_type_from_dmi(sys.path()), None);
    }
}
