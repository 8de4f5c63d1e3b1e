//! From a probe sample to what a node publishes: declared capacity overrides
//! detected totals, and a new version is published only when something changed
//! meaningfully, so a steady cluster does not churn.

use super::request::{AmountError, parse_cpu, parse_gpus, parse_memory};
use crate::membership::record::{Amounts, Capacity, Gpu, Tags};

/// One reading of the machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    /// CPU millicores the machine has.
    pub cpu_total_millis: i64,
    /// CPU millicores in use.
    pub cpu_used_millis: i64,
    /// Memory bytes the machine has.
    pub memory_total_bytes: i64,
    /// Memory bytes in use.
    pub memory_used_bytes: i64,
    /// GPU devices found (none without an NVIDIA driver).
    pub gpus: Vec<Gpu>,
    /// The GPU driver, CUDA version and the processes on the GPUs (for the
    /// inventory).
    pub gpu_host: GpuHost,
    /// Whether a video device exists.
    pub camera: bool,
}

/// Operator-declared totals, overriding what is detected (to reserve part of a host).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Declared {
    /// CPU millicores.
    pub cpu_millis: Option<i64>,
    /// Memory bytes.
    pub memory_bytes: Option<i64>,
    /// GPU count.
    pub gpus: Option<i64>,
}

impl Declared {
    /// Parses `cpu=8000m,memory=16GiB,gpu=2` (any subset, any order).
    ///
    /// # Errors
    /// An unknown key, a repeated key, or a bad amount, named.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut d = Self::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not KEY=AMOUNT (keys: cpu, memory, gpu)"))?;
            let bad = |e: AmountError| format!("{k}={v}: {e}");
            let slot = match k.trim() {
                "cpu" => &mut d.cpu_millis,
                "memory" => &mut d.memory_bytes,
                "gpu" => &mut d.gpus,
                other => {
                    return Err(format!(
                        "unknown resource '{other}' (keys: cpu, memory, gpu)"
                    ));
                }
            };
            if slot.is_some() {
                return Err(format!("'{k}' given twice"));
            }
            *slot = Some(match k.trim() {
                "cpu" => parse_cpu(v).map_err(bad)?,
                "memory" => parse_memory(v).map_err(bad)?,
                _ => parse_gpus(v).map_err(bad)?,
            });
        }
        Ok(d)
    }
}

/// What a node publishes about its resources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// Totals, use and availability.
    pub capacity: Capacity,
    /// Capability tags.
    pub tags: Tags,
    /// GPU inventory.
    pub gpus: Vec<Gpu>,
}

/// A GPU with no process listed counts as in use (busy, not free for jobs)
/// when its utilization or memory in use is at this percent or more.
pub const GPU_BUSY_PCT: u64 = 5;

/// What a node's GPUs add to its inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuHost {
    /// The NVIDIA driver's version.
    pub driver: String,
    /// The CUDA version it supports.
    pub cuda: String,
    /// The processes using the GPUs.
    pub processes: Vec<super::inventory::GpuProcess>,
}

/// Combines a sample with declared totals. Used amounts come from the sample; a
/// declared total below the used amount leaves nothing available.
pub fn publish(sample: &Sample, declared: &Declared) -> Published {
    // Held devices count as used here; a node's job table marks them.
    let busy_gpus = sample.gpus.iter().filter(|g| !g.is_free()).count();
    let total = Amounts {
        cpu_millis: declared.cpu_millis.unwrap_or(sample.cpu_total_millis),
        memory_bytes: declared.memory_bytes.unwrap_or(sample.memory_total_bytes),
        gpus: declared
            .gpus
            .unwrap_or(i64::try_from(sample.gpus.len()).unwrap_or(i64::MAX)),
    };
    let used = Amounts {
        cpu_millis: sample.cpu_used_millis,
        memory_bytes: sample.memory_used_bytes,
        gpus: i64::try_from(busy_gpus).unwrap_or(i64::MAX),
    };
    let available = Amounts {
        cpu_millis: (total.cpu_millis - used.cpu_millis).max(0),
        memory_bytes: (total.memory_bytes - used.memory_bytes).max(0),
        gpus: (total.gpus - used.gpus).max(0),
    };
    Published {
        capacity: Capacity {
            total,
            used,
            available,
        },
        tags: Tags {
            cpu: total.cpu_millis > 0,
            gpu: total.gpus > 0,
            memory: total.memory_bytes > 0,
            camera: sample.camera,
        },
        gpus: sample.gpus.clone(),
    }
}

/// Whether `new` differs from `old` enough to publish: totals, tags or the GPU set
/// changed, or a used amount moved by at least `threshold_pct` of its total.
pub fn changed_meaningfully(old: &Published, new: &Published, threshold_pct: u32) -> bool {
    if old.capacity.total != new.capacity.total || old.tags != new.tags {
        return true;
    }
    let devices = |p: &Published| {
        p.gpus
            .iter()
            .map(|g| {
                (
                    g.uuid.clone(),
                    g.name.clone(),
                    g.busy,
                    g.held,
                    g.processes,
                    g.foreign_processes,
                )
            })
            .collect::<Vec<_>>()
    };
    if devices(old) != devices(new) || old.capacity.used.gpus != new.capacity.used.gpus {
        return true;
    }
    // A device's free memory moved by the threshold of its total: queries
    // asking for GPU memory must see it.
    let memory_moved = old.gpus.iter().zip(&new.gpus).any(|(o, n)| {
        n.memory_total_bytes > 0
            && o.memory_used_bytes
                .abs_diff(n.memory_used_bytes)
                .saturating_mul(100)
                >= n.memory_total_bytes
                    .saturating_mul(u64::from(threshold_pct))
    });
    if memory_moved {
        return true;
    }
    let moved = |o: i64, n: i64, total: i64| {
        total > 0
            && (o - n).unsigned_abs().saturating_mul(100)
                >= total
                    .unsigned_abs()
                    .saturating_mul(u64::from(threshold_pct))
    };
    let (o, n, t) = (old.capacity.used, new.capacity.used, new.capacity.total);
    moved(o.cpu_millis, n.cpu_millis, t.cpu_millis)
        || moved(o.memory_bytes, n.memory_bytes, t.memory_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(cpu_used: i64, mem_used: i64) -> Sample {
        Sample {
            cpu_total_millis: 4000,
            cpu_used_millis: cpu_used,
            memory_total_bytes: 1000,
            memory_used_bytes: mem_used,
            gpus: vec![],
            gpu_host: GpuHost::default(),
            camera: false,
        }
    }

    #[test]
    fn declared_totals_override_detected_ones() {
        let d = Declared::parse("gpu=2,memory=16GiB").unwrap();
        assert_eq!(
            d,
            Declared {
                cpu_millis: None,
                memory_bytes: Some(16 << 30),
                gpus: Some(2)
            }
        );
        let p = publish(&sample(1000, 100), &d);
        assert_eq!(p.capacity.total.gpus, 2);
        assert_eq!(p.capacity.available.gpus, 2);
        assert_eq!(p.capacity.total.cpu_millis, 4000);
        assert_eq!(p.capacity.available.cpu_millis, 3000);
        assert!(p.tags.gpu && p.tags.cpu && p.tags.memory);
        assert_eq!(
            Declared::parse("cpu=8,memory=1GiB").unwrap().cpu_millis,
            Some(8000)
        );
    }

    #[test]
    fn declared_capacity_errors_are_named() {
        assert!(
            Declared::parse("disk=1")
                .unwrap_err()
                .contains("unknown resource 'disk'")
        );
        assert!(Declared::parse("gpu=-1").unwrap_err().contains("gpu=-1"));
        assert!(
            Declared::parse("gpu=1,gpu=2")
                .unwrap_err()
                .contains("twice")
        );
        assert!(
            Declared::parse("memory")
                .unwrap_err()
                .contains("KEY=AMOUNT")
        );
        assert!(Declared::parse("memory=5XB").unwrap_err().contains("XB"));
    }

    #[test]
    fn small_fluctuations_do_not_republish() {
        let d = Declared::default();
        let base = publish(&sample(1000, 100), &d);
        assert!(!changed_meaningfully(
            &base,
            &publish(&sample(1100, 120), &d),
            5
        ));
        assert!(changed_meaningfully(
            &base,
            &publish(&sample(1200, 100), &d),
            5
        ));
        assert!(changed_meaningfully(
            &base,
            &publish(&sample(1000, 160), &d),
            5
        ));
        let mut cam = sample(1000, 100);
        cam.camera = true;
        assert!(changed_meaningfully(&base, &publish(&cam, &d), 5));
    }

    #[test]
    fn over_declared_use_leaves_nothing_available() {
        let p = publish(&sample(3000, 900), &Declared::parse("cpu=2").unwrap());
        assert_eq!(p.capacity.available.cpu_millis, 0);
    }
}
