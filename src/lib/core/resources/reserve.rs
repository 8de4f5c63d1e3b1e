//! Resources held by running jobs: what a node publishes as available is what
//! neither its measured use nor its reservations take, and a job is admitted
//! only if what it asks for is available. Measured use and reservations
//! overlap (a job's process shows in the use it reserved), so available is
//! total minus the larger of the two, per resource.

use std::collections::BTreeSet;

use super::request::GpuFilter;
use crate::membership::record::{Amounts, Capacity, Gpu};

/// `n` devices of `devices` for a job: free, not held (by UUID in `held`),
/// passing `filter`; the lowest index first (instances of one MIG GPU in
/// their order).
///
/// # Errors
/// Fewer than `n` fit, saying how many.
pub fn pick_gpus<'a>(
    devices: &'a [Gpu],
    held: &BTreeSet<String>,
    n: usize,
    filter: &GpuFilter,
) -> Result<Vec<&'a Gpu>, String> {
    let mut fit: Vec<&Gpu> = devices
        .iter()
        .filter(|g| g.is_free() && !held.contains(&g.uuid) && filter.matches(g))
        .collect();
    if fit.len() < n {
        let free = devices
            .iter()
            .filter(|g| g.is_free() && !held.contains(&g.uuid))
            .count();
        let what = if filter.is_empty() {
            String::new()
        } else {
            let mut w = Vec::new();
            if filter.memory_bytes > 0 {
                w.push(format!(
                    "{} free",
                    crate::units::HumanBytes(filter.memory_bytes)
                ));
            }
            if !filter.model.is_empty() {
                w.push(format!("model {:?}", filter.model));
            }
            format!(" with {}", w.join(" and "))
        };
        return Err(format!(
            "{n} GPUs{what} asked, {} of this node's {} GPUs fit ({free} free)",
            fit.len(),
            devices.len()
        ));
    }
    fit.truncate(n);
    Ok(fit)
}

/// `capacity` with `reserved` taken into account.
pub fn with_reserved(mut capacity: Capacity, reserved: Amounts) -> Capacity {
    let free = |total: i64, used: i64, held: i64| (total - used.max(held)).max(0);
    let (t, u) = (capacity.total, capacity.used);
    capacity.available = Amounts {
        cpu_millis: free(t.cpu_millis, u.cpu_millis, reserved.cpu_millis),
        memory_bytes: free(t.memory_bytes, u.memory_bytes, reserved.memory_bytes),
        gpus: free(t.gpus, u.gpus, reserved.gpus),
    };
    capacity
}

/// One resource of [`Amounts`].
type Field = fn(&Amounts) -> i64;

/// What `want` lacks on a node with `capacity` (measured) and `reserved`
/// (held by running jobs), in words; `None` if it fits.
pub fn shortfall(capacity: Capacity, reserved: Amounts, want: Amounts) -> Option<String> {
    let now = with_reserved(capacity, reserved).available;
    let mut short = Vec::new();
    // Fits if reserving it leaves each asked resource not below zero, i.e.
    // total - max(used, reserved + want) >= 0 computed without clamping.
    // Saturating: a request of i64::MAX must not wrap into "fits".
    let fits = |total: i64, used: i64, held: i64, w: i64| {
        w <= 0 || total.saturating_sub(used.max(held.saturating_add(w))) >= 0
    };
    let (t, u) = (capacity.total, capacity.used);
    let per_resource: [(Field, &str, &str); 3] = [
        (|a| a.gpus, "", " free GPUs"),
        (|a| a.cpu_millis, "m", " free CPU"),
        (|a| a.memory_bytes, "", " free memory bytes"),
    ];
    for (field, unit, what) in per_resource {
        if !fits(field(&t), field(&u), field(&reserved), field(&want)) {
            short.push(format!(
                "{}{unit}{what}, {}{unit} asked ({}{unit} reserved by running jobs)",
                field(&now),
                field(&want),
                field(&reserved)
            ));
        }
    }
    (!short.is_empty()).then(|| short.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(gpus: i64, busy: i64) -> Capacity {
        let total = Amounts {
            cpu_millis: 4000,
            memory_bytes: 1 << 30,
            gpus,
        };
        let used = Amounts {
            cpu_millis: 1000,
            memory_bytes: 0,
            gpus: busy,
        };
        Capacity {
            total,
            used,
            available: Amounts::default(),
        }
    }

    fn gpus(n: i64) -> Amounts {
        Amounts {
            gpus: n,
            ..Amounts::default()
        }
    }

    #[test]
    fn a_reserved_gpu_is_not_available_to_the_next_job() {
        assert_eq!(with_reserved(cap(1, 0), gpus(0)).available.gpus, 1);
        assert_eq!(shortfall(cap(1, 0), gpus(0), gpus(1)), None);
        assert_eq!(with_reserved(cap(1, 0), gpus(1)).available.gpus, 0);
        let why = shortfall(cap(1, 0), gpus(1), gpus(1)).expect("no second GPU");
        assert_eq!(why, "0 free GPUs, 1 asked (1 reserved by running jobs)");
    }

    #[test]
    fn use_and_reservations_overlap() {
        // The job that reserved the GPU is the one keeping it busy.
        assert_eq!(with_reserved(cap(2, 1), gpus(1)).available.gpus, 1);
        // CPU: 1000m used, 2000m reserved: 2000m free of 4000m.
        let c = with_reserved(
            cap(0, 0),
            Amounts {
                cpu_millis: 2000,
                ..Amounts::default()
            },
        );
        assert_eq!(c.available.cpu_millis, 2000);
        let want = Amounts {
            cpu_millis: 2500,
            ..Amounts::default()
        };
        assert!(
            shortfall(
                cap(0, 0),
                Amounts {
                    cpu_millis: 2000,
                    ..Amounts::default()
                },
                want
            )
            .is_some()
        );
        assert_eq!(shortfall(cap(0, 0), Amounts::default(), want), None);
    }

    #[test]
    fn absurd_requests_do_not_wrap_into_fitting() {
        assert!(shortfall(cap(1, 0), gpus(1), gpus(i64::MAX)).is_some());
        assert!(shortfall(cap(1, 0), gpus(0), gpus(i64::MAX)).is_some());
    }
}
