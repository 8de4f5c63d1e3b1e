//! NVIDIA GPUs through NVML. The library is loaded at run time: on a machine
//! without the driver, initialisation fails once, is logged at debug level, and
//! the node simply has no GPUs.

use nvml_wrapper::Nvml;
use tracing::debug;

use crate::core::membership::record::Gpu;

/// NVML, if the driver library could be loaded.
pub(super) struct Gpus {
    nvml: Option<Nvml>,
}

impl Gpus {
    pub(super) fn open() -> Self {
        let nvml = match Nvml::init() {
            Ok(n) => Some(n),
            Err(e) => {
                debug!(error = %e, "NVML not available; reporting no GPUs");
                None
            }
        };
        Self { nvml }
    }

    /// Every GPU NVML reports; devices that fail to answer are skipped.
    pub(super) fn read(&self) -> Vec<Gpu> {
        let Some(nvml) = &self.nvml else {
            return Vec::new();
        };
        let count = nvml.device_count().unwrap_or(0);
        (0..count)
            .filter_map(|i| {
                let d = nvml.device_by_index(i).ok()?;
                let mem = d.memory_info().ok();
                Some(Gpu {
                    name: d.name().unwrap_or_else(|_| format!("gpu{i}")),
                    memory_total_bytes: mem.as_ref().map_or(0, |m| m.total),
                    memory_used_bytes: mem.as_ref().map_or(0, |m| m.used),
                    utilization_pct: d.utilization_rates().map_or(0, |u| u.gpu),
                })
            })
            .collect()
    }
}
