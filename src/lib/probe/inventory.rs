//! Reads the hardware inventory of this machine (the GPU part comes from
//! the GPU probe's readings).

use sysinfo::{Disks, Networks, System};

use crate::core::resources::inventory::{Disk, Interface, Inventory};

/// Largest lists kept (a host with thousands of interfaces still answers small).
const MAX_ITEMS: usize = 64;

/// Reads the inventory (tens of milliseconds; call it off the hot path).
pub fn read() -> Inventory {
    let sys = System::new_with_specifics(
        sysinfo::RefreshKind::nothing().with_cpu(sysinfo::CpuRefreshKind::nothing()),
    )
    .ok();
    let disks = Disks::new_with_refreshed_list()
        .map(|d| {
            d.iter()
                .take(MAX_ITEMS)
                .map(|d| Disk {
                    name: d.name().to_string_lossy().into_owned(),
                    mount_point: d.mount_point().display().to_string(),
                    file_system: d.file_system().to_string_lossy().into_owned(),
                    total_bytes: d.total_space(),
                    available_bytes: d.available_space(),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut interfaces: Vec<Interface> = Networks::new_with_refreshed_list()
        .map(|n| {
            n.iter()
                .take(MAX_ITEMS)
                .map(|(name, data)| Interface {
                    name: name.to_string_lossy().into_owned(),
                    mac: data.mac_address().to_string(),
                    addresses: data
                        .ip_networks()
                        .iter()
                        .map(|ip| format!("{}/{}", ip.addr, ip.prefix))
                        .collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    interfaces.sort_by(|a, b| a.name.cmp(&b.name));
    Inventory {
        cpu_model: sys
            .as_ref()
            .and_then(|s| s.cpus().first().map(|c| c.brand().trim().to_owned()))
            .unwrap_or_default(),
        cpu_physical_cores: System::physical_core_count()
            .ok()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        cpu_logical_cores: sys
            .as_ref()
            .and_then(|s| u32::try_from(s.cpus().len()).ok())
            .unwrap_or(0),
        arch: System::cpu_arch(),
        os: System::long_os_version().unwrap_or_default(),
        kernel: System::kernel_version().unwrap_or_default(),
        hostname: System::host_name().unwrap_or_default(),
        disks,
        interfaces,
        ..Inventory::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine() {
        let inv = read();
        assert!(inv.cpu_logical_cores >= 1);
        assert!(!inv.arch.is_empty());
    }
}
