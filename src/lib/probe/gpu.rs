//! NVIDIA GPUs through NVML, device by device. The library is loaded at run
//! time (the system's `libnvidia-ml.so.1`, or the one `--nvml-library` names):
//! on a machine without the driver, initialisation fails once, is logged once,
//! and the node simply has no GPUs.
//!
//! Each reading lists every device a job can be given: a GPU, or, for a GPU
//! in MIG mode, each of its MIG instances (with their own UUIDs and memory).
//! A device that does not answer (fallen off the bus, `GPU is lost`) is left
//! out, so it leaves the node's record at the next reading. A device is busy
//! (not free for jobs) when a process gsp did not start uses it (a process
//! whose environment has no `GSP_JOB_ID`), or when no process is listed but
//! its memory or utilization is at [`GPU_BUSY_PCT`] or more (a process in
//! another container, which NVML does not show). At most
//! [`MAX_DEVICES`] devices are listed (the limit of a gossiped record; the
//! rest are left out, logged once).

use std::{collections::BTreeSet, path::PathBuf};

use nvml_wrapper::{Device, Nvml};
use tracing::{info, warn};

use crate::core::{
    membership::record::Gpu,
    resources::{capacity::GPU_BUSY_PCT, inventory::GpuProcess},
};

/// Devices listed at most (a record carries at most this many).
pub const MAX_DEVICES: usize = 64;

/// What one reading found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuReading {
    /// The devices jobs can be given.
    pub devices: Vec<Gpu>,
    /// The driver's version.
    pub driver: String,
    /// The CUDA version the driver supports (`12.4`).
    pub cuda: String,
    /// The processes using the devices.
    pub processes: Vec<GpuProcess>,
}

/// NVML, if the driver library could be loaded.
pub struct Gpus {
    nvml: Option<Nvml>,
    /// Warned that devices beyond [`MAX_DEVICES`] were left out.
    capped: bool,
    /// Devices that failed to answer, each logged once.
    lost: BTreeSet<u32>,
}

impl std::fmt::Debug for Gpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpus")
            .field("nvml", &self.nvml.is_some())
            .field("lost", &self.lost)
            .finish_non_exhaustive()
    }
}

impl Gpus {
    /// Loads NVML from `library` (the system's when `None`).
    pub fn open(library: Option<&PathBuf>) -> Self {
        let nvml = match library {
            Some(path) => Nvml::builder().lib_path(path.as_os_str()).init(),
            None => Nvml::init(),
        };
        let nvml = match nvml {
            Ok(n) => Some(n),
            Err(e) => {
                let from = library.map_or_else(
                    || "the system's libnvidia-ml".to_owned(),
                    |p| p.display().to_string(),
                );
                if library.is_some() {
                    warn!(library = %from, error = %e, "NVML could not be loaded; this node reports no GPUs");
                } else {
                    info!(error = %e, "no NVIDIA driver (NVML); this node reports no GPUs");
                }
                None
            }
        };
        Self {
            nvml,
            capped: false,
            lost: BTreeSet::new(),
        }
    }

    /// Every device NVML answers for; `job_of` says which gsp job a process
    /// belongs to (`None`: not gsp's).
    pub fn read(&mut self, job_of: impl Fn(u32) -> Option<String>) -> GpuReading {
        let Some(nvml) = &self.nvml else {
            return GpuReading::default();
        };
        let mut r = GpuReading {
            driver: nvml.sys_driver_version().unwrap_or_default(),
            cuda: nvml
                .sys_cuda_driver_version()
                .map(|v| format!("{}.{}", v / 1000, v % 1000 / 10))
                .unwrap_or_default(),
            ..GpuReading::default()
        };
        let count = nvml.device_count().unwrap_or(0);
        for i in 0..count {
            let d = match nvml.device_by_index(i) {
                Ok(d) => d,
                Err(e) => {
                    if self.lost.insert(i) {
                        warn!(index = i, error = %e, "GPU does not answer; left out until it does");
                    }
                    continue;
                }
            };
            let mut found = Vec::new();
            match read_gpu(&d, i, &job_of, &mut found) {
                Ok(devices) => {
                    if self.lost.remove(&i) {
                        info!(index = i, "GPU answers again");
                    }
                    r.devices.extend(devices);
                    r.processes.extend(found);
                }
                Err(e) => {
                    if self.lost.insert(i) {
                        warn!(index = i, error = %e, "GPU does not answer; left out until it does");
                    }
                }
            }
        }
        if r.devices.len() > MAX_DEVICES {
            if !self.capped {
                warn!(
                    devices = r.devices.len(),
                    listed = MAX_DEVICES,
                    "more GPU devices than a record carries; the rest are left out"
                );
                self.capped = true;
            }
            r.devices.truncate(MAX_DEVICES);
        }
        r
    }
}

/// The processes NVML lists on `d` (compute and graphics) as `(pid, bytes)`;
/// `None` when it cannot say.
fn processes_on(d: &Device<'_>) -> Option<Vec<(u32, u64)>> {
    let mut p = d.running_compute_processes().ok()?;
    p.extend(d.running_graphics_processes().unwrap_or_default());
    Some(
        p.into_iter()
            .map(|p| {
                let used = match p.used_gpu_memory {
                    nvml_wrapper::enums::device::UsedGpuMemory::Used(b) => b,
                    nvml_wrapper::enums::device::UsedGpuMemory::Unavailable => 0,
                };
                (p.pid, used)
            })
            .collect(),
    )
}

/// Counts `listed` on `gpu` (adding them to `processes`) and decides whether
/// it is busy.
fn classify(
    gpu: &mut Gpu,
    listed: &[(u32, u64)],
    job_of: &impl Fn(u32) -> Option<String>,
    processes: &mut Vec<GpuProcess>,
) {
    for &(pid, used) in listed {
        let job = job_of(pid);
        gpu.processes += 1;
        if job.is_none() {
            gpu.foreign_processes += 1;
        }
        processes.push(GpuProcess {
            gpu_uuid: gpu.uuid.clone(),
            pid,
            used_bytes: used,
            job_id: job.unwrap_or_default(),
        });
    }
    gpu.busy = gpu.foreign_processes > 0 || (gpu.processes == 0 && in_use(gpu));
}

/// One GPU: the devices it offers (itself, or its MIG instances), their
/// processes added to `processes`.
fn read_gpu(
    d: &Device<'_>,
    index: u32,
    job_of: &impl Fn(u32) -> Option<String>,
    processes: &mut Vec<GpuProcess>,
) -> Result<Vec<Gpu>, nvml_wrapper::error::NvmlError> {
    let uuid = d.uuid()?;
    let mem = d.memory_info()?;
    let mut gpu = Gpu {
        index,
        uuid,
        name: d.name().unwrap_or_else(|_| format!("gpu{index}")),
        memory_total_bytes: mem.total,
        memory_used_bytes: mem.used,
        utilization_pct: d.utilization_rates().map_or(0, |u| u.gpu),
        ..Gpu::default()
    };
    let listed = processes_on(d);
    if d.mig_mode().is_ok_and(|m| m.current == 1) {
        return Ok(mig_instances(d, &gpu, listed.as_deref(), job_of, processes));
    }
    classify(&mut gpu, &listed.unwrap_or_default(), job_of, processes);
    Ok(vec![gpu])
}

/// Whether a device with no process listed is in use anyway: its memory or
/// utilization at [`GPU_BUSY_PCT`] or more.
fn in_use(g: &Gpu) -> bool {
    u64::from(g.utilization_pct) >= GPU_BUSY_PCT
        || (g.memory_total_bytes > 0
            && g.memory_used_bytes.saturating_mul(100) / g.memory_total_bytes >= GPU_BUSY_PCT)
}

/// The MIG instances of GPU `d` (in MIG mode), each a device of its own with
/// its own memory and processes. Where NVML cannot list an instance's
/// processes, it is given all of its GPU's (`gpu_listed`): a process outside
/// gsp anywhere on the GPU then makes every such instance busy.
fn mig_instances(
    d: &Device<'_>,
    gpu: &Gpu,
    gpu_listed: Option<&[(u32, u64)]>,
    job_of: &impl Fn(u32) -> Option<String>,
    processes: &mut Vec<GpuProcess>,
) -> Vec<Gpu> {
    let max = d.mig_device_count().unwrap_or(0);
    (0..max)
        .filter_map(|i| {
            let m = d.mig_device_by_index(i).ok()?;
            let mem = m.memory_info().ok()?;
            let mut instance = Gpu {
                index: gpu.index,
                uuid: m.uuid().ok()?,
                name: m.name().unwrap_or_else(|_| gpu.name.clone()),
                memory_total_bytes: mem.total,
                memory_used_bytes: mem.used,
                mig_parent: gpu.uuid.clone(),
                ..Gpu::default()
            };
            let listed = processes_on(&m).or_else(|| gpu_listed.map(<[_]>::to_vec));
            classify(
                &mut instance,
                &listed.unwrap_or_default(),
                job_of,
                processes,
            );
            Some(instance)
        })
        .collect()
}

/// The gsp job a process belongs to, from the `GSP_JOB_ID` in its
/// environment (inherited from the step gsp started); `None` for any other
/// process, or one this user cannot read.
pub fn job_of(pid: u32) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"GSP_JOB_ID="))
        .and_then(|v| std::str::from_utf8(v).ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}
