//! Hardware inventory (seed 003): CPU, OS, disks, network interfaces, the GPU
//! driver and the processes on the GPUs. Served by `GetLocalNodeInfo` and
//! `gsp peers --detailed`, never gossiped (the devices themselves are in the
//! record).

use serde::{Deserialize, Serialize};

/// One disk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Disk {
    /// Device name.
    pub name: String,
    /// Where it is mounted.
    pub mount_point: String,
    /// File system.
    pub file_system: String,
    /// Size in bytes.
    pub total_bytes: u64,
    /// Free bytes.
    pub available_bytes: u64,
}

/// One network interface.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// MAC address.
    pub mac: String,
    /// Addresses, with prefix length.
    pub addresses: Vec<String>,
}

/// A process using a GPU.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GpuProcess {
    /// The device's UUID (`MIG-…` for a process on a MIG instance).
    pub gpu_uuid: String,
    /// Process id.
    pub pid: u32,
    /// GPU memory it uses, bytes (0 when NVML does not say).
    pub used_bytes: u64,
    /// The gsp job it belongs to; empty when gsp did not start it.
    pub job_id: String,
}

/// The machine, as an operator would inventory it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Inventory {
    /// CPU brand string.
    pub cpu_model: String,
    /// Physical cores (0 when unknown).
    pub cpu_physical_cores: u32,
    /// Logical CPUs.
    pub cpu_logical_cores: u32,
    /// Architecture.
    pub arch: String,
    /// Operating system.
    pub os: String,
    /// Kernel version.
    pub kernel: String,
    /// Host name.
    pub hostname: String,
    /// Disks.
    pub disks: Vec<Disk>,
    /// Network interfaces.
    pub interfaces: Vec<Interface>,
    /// The NVIDIA driver's version (empty without one).
    #[serde(default)]
    pub gpu_driver: String,
    /// The CUDA version the driver supports (`12.4`).
    #[serde(default)]
    pub cuda_version: String,
    /// Processes using the GPUs.
    #[serde(default)]
    pub gpu_processes: Vec<GpuProcess>,
}
