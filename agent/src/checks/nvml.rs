//! NVIDIA's management library (NVML), read through the `nvml-wrapper` crate, which loads
//! `libnvidia-ml.so` at run time: a node without the NVIDIA driver has no such library and the
//! NVML readings are simply not taken (not an error). Behind the [`Gpus`] trait so the
//! accelerator check's verdicts are tested with a double; no GPU was available to run this
//! against real hardware (docs/run.md says so).

use std::path::PathBuf;
use std::sync::Mutex;

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{EccCounter, MemoryError};
use nvml_wrapper::enum_wrappers::nv_link::ErrorCounter;
use nvml_wrapper::error::NvmlError;

/// NVLinks per GPU looked at (NVML_NVLINK_MAX_LINKS of current drivers).
pub const MAX_NVLINKS: u32 = 18;

/// What NVML says about one GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuReading {
    /// NVML's device index.
    pub index: u32,
    /// Its PCI bus id (`00000000:10:1C.0`).
    pub pci_bus_id: String,
    /// Volatile uncorrected ECC errors (double-bit errors since the driver loaded); `None`
    /// when the GPU has no ECC or NVML does not say.
    pub uncorrected_ecc: Option<u64>,
    /// Sum over active NVLinks of their recovery and data CRC error counters; `None` without
    /// NVLink.
    pub nvlink_errors: Option<u64>,
}

/// The GPUs NVML sees.
pub trait Gpus: Send + Sync + std::fmt::Debug {
    /// One reading per GPU, or why NVML could not be read.
    fn read(&self) -> Result<Vec<GpuReading>, String>;
}

/// NVML through `libnvidia-ml.so`, initialised once and kept.
#[derive(Debug)]
pub struct Library {
    nvml: Mutex<Nvml>,
}

/// Where to load NVML from: the default search path's `libnvidia-ml.so`, or a path.
pub fn load(path: Option<&PathBuf>) -> Result<Option<Library>, String> {
    let mut builder = Nvml::builder();
    if let Some(p) = path {
        builder.lib_path(p.as_os_str());
    }
    match builder.init() {
        Ok(nvml) => Ok(Some(Library {
            nvml: Mutex::new(nvml),
        })),
        // No library (no NVIDIA driver): nothing to read.
        Err(NvmlError::LibloadingError(_)) | Err(NvmlError::LibraryNotFound) => Ok(None),
        Err(e) => Err(format!("NVML is present but does not initialise: {e}")),
    }
}

impl Gpus for Library {
    fn read(&self) -> Result<Vec<GpuReading>, String> {
        let nvml = self
            .nvml
            .lock()
            .map_err(|_| "NVML lock poisoned".to_string())?;
        let count = nvml
            .device_count()
            .map_err(|e| format!("nvmlDeviceGetCount: {e}"))?;
        let mut out = Vec::new();
        for index in 0..count {
            let device = nvml
                .device_by_index(index)
                .map_err(|e| format!("nvmlDeviceGetHandleByIndex({index}): {e}"))?;
            let pci_bus_id = device.pci_info().map(|p| p.bus_id).unwrap_or_default();
            let uncorrected_ecc = device
                .total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)
                .ok();
            let mut nvlink: Option<u64> = None;
            for link in 0..MAX_NVLINKS {
                let l = device.link_wrapper_for(link);
                if !l.is_active().unwrap_or(false) {
                    continue;
                }
                let sum = [ErrorCounter::DlRecovery, ErrorCounter::DlCrcData]
                    .into_iter()
                    .filter_map(|c| l.error_counter(c).ok())
                    .sum::<u64>();
                nvlink = Some(nvlink.unwrap_or(0) + sum);
            }
            out.push(GpuReading {
                index,
                pci_bus_id,
                uncorrected_ecc,
                nvlink_errors: nvlink,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_not_an_error() {
        let absent = PathBuf::from("/nonexistent/libnvidia-ml.so");
        assert!(matches!(load(Some(&absent)), Ok(None)));
    }
}
