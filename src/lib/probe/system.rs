//! The machine's resources through sysinfo (CPU, memory), NVML (GPUs) and `/dev`
//! (cameras).

use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

use super::{
    ResourceProbe,
    gpu::{Gpus, job_of},
};
use crate::core::resources::capacity::{GpuHost, Sample};

/// Reads this machine.
pub struct SystemProbe {
    /// `None` when `/proc` cannot be read: every figure then reads zero.
    sys: Option<System>,
    gpus: Gpus,
}

impl std::fmt::Debug for SystemProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemProbe").finish_non_exhaustive()
    }
}

impl SystemProbe {
    /// Opens the probes (NVML is tried once here, from `nvml_library` or
    /// the system's `libnvidia-ml`).
    pub fn new(nvml_library: Option<&std::path::PathBuf>) -> Self {
        let kind = RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing().with_usage())
            .with_memory(MemoryRefreshKind::nothing().with_ram());
        Self {
            sys: System::new_with_specifics(kind).ok(),
            gpus: Gpus::open(nvml_library),
        }
    }
}

impl Default for SystemProbe {
    fn default() -> Self {
        Self::new(None)
    }
}

/// Whether a video capture device exists (`/dev/video*`).
fn has_camera() -> bool {
    std::fs::read_dir("/dev").is_ok_and(|d| {
        d.filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with("video"))
    })
}

impl ResourceProbe for SystemProbe {
    fn sample(&mut self) -> Sample {
        let gpus = self.gpus.read(job_of);
        let mut s = Sample {
            gpus: gpus.devices,
            gpu_host: GpuHost {
                driver: gpus.driver,
                cuda: gpus.cuda,
                processes: gpus.processes,
            },
            camera: has_camera(),
            ..Sample::default()
        };
        if let Some(sys) = self.sys.as_mut() {
            sys.refresh_cpu_usage();
            sys.refresh_memory();
            let total_millis = i64::try_from(sys.cpus().len()).unwrap_or(0) * 1000;
            // The global usage is a percentage of all cores; the first reading
            // after start is 0 (sysinfo needs two readings).
            #[expect(
                clippy::cast_possible_truncation,
                reason = "a percentage of a small core count"
            )]
            let used =
                (f64::from(sys.global_cpu_usage()) / 100.0 * total_millis as f64).round() as i64;
            s.cpu_total_millis = total_millis;
            s.cpu_used_millis = used.clamp(0, total_millis);
            s.memory_total_bytes = i64::try_from(sys.total_memory()).unwrap_or(i64::MAX);
            s.memory_used_bytes = i64::try_from(sys.used_memory()).unwrap_or(i64::MAX);
        }
        s
    }
}
