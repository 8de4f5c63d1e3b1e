//! Which nodes satisfy a request, and in what order they are offered: for a
//! request of GPUs, the node where they fit most tightly first (fewest free
//! matching GPUs, best fit: a 1-GPU job does not split an idle 8-GPU node
//! while a 1-GPU node is free); then most available first (GPUs, then CPU,
//! then memory), then node id.

use std::cmp::Ordering;

use super::request::{GpuFilter, ResourceRequest};
use crate::membership::record::{Amounts, Maintenance, MemberRecord, MemberState};

/// The free GPUs of `r` that pass `filter`: counted device by device when
/// the node lists its devices; otherwise (GPUs declared, not read) its free
/// count, if `filter` asks nothing of a device.
pub fn matching_gpus(r: &MemberRecord, filter: &GpuFilter) -> i64 {
    if r.gpus.is_empty() {
        return if filter.is_empty() {
            available(r).gpus
        } else {
            0
        };
    }
    let n = r
        .gpus
        .iter()
        .filter(|g| g.is_free() && filter.matches(g))
        .count();
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// What a node has free; nothing when it has not published resources.
pub fn available(r: &MemberRecord) -> Amounts {
    r.capacity.map(|c| c.available).unwrap_or_default()
}

/// Whether `r` can take `req`: alive, maintenance normal, every required tag and
/// label, and at least the requested CPU, memory and GPUs free.
pub fn matches(r: &MemberRecord, req: &ResourceRequest) -> bool {
    if r.state != MemberState::Alive || r.maintenance != Maintenance::Normal {
        return false;
    }
    let t = &req.tags;
    if (t.cpu && !r.tags.cpu)
        || (t.gpu && !r.tags.gpu)
        || (t.memory && !r.tags.memory)
        || (t.camera && !r.tags.camera)
    {
        return false;
    }
    if req.labels.iter().any(|(k, v)| r.labels.get(k) != Some(v)) {
        return false;
    }
    let a = available(r);
    a.cpu_millis >= req.cpu_millis
        && a.memory_bytes >= req.memory_bytes
        && (req.gpus <= 0 && req.gpu.is_empty() || matching_gpus(r, &req.gpu) >= req.gpus.max(1))
}

/// The offer order: more free GPUs first, then more free CPU, then more free
/// memory, then node id (so the order is the same everywhere).
pub fn rank(a: &MemberRecord, b: &MemberRecord) -> Ordering {
    let (x, y) = (available(a), available(b));
    y.gpus
        .cmp(&x.gpus)
        .then(y.cpu_millis.cmp(&x.cpu_millis))
        .then(y.memory_bytes.cmp(&x.memory_bytes))
        .then_with(|| a.id.cmp(&b.id))
}

/// The records of `candidates` that match `req`, best first.
pub fn select<'a>(
    candidates: impl IntoIterator<Item = &'a MemberRecord>,
    req: &ResourceRequest,
) -> Vec<MemberRecord> {
    let mut out: Vec<MemberRecord> = candidates
        .into_iter()
        .filter(|r| matches(r, req))
        .cloned()
        .collect();
    sort_for(&mut out, req);
    out
}

/// Sorts matches of `req` in the offer order (see the module's doc).
pub fn sort_for(nodes: &mut [MemberRecord], req: &ResourceRequest) {
    if req.gpus > 0 || !req.gpu.is_empty() {
        // Best fit: the node with the fewest GPUs that would do first.
        nodes.sort_by(|a, b| {
            matching_gpus(a, &req.gpu)
                .cmp(&matching_gpus(b, &req.gpu))
                .then_with(|| rank(a, b))
        });
    } else {
        nodes.sort_by(rank);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::membership::record::{Tags, testing};

    fn node(id: &str, cpu: i64, mem: i64, gpus: i64) -> MemberRecord {
        testing::with_free(testing::record(id, 0, MemberState::Alive), cpu, mem, gpus)
    }

    #[test]
    fn maintenance_and_non_alive_nodes_never_match() {
        let req = ResourceRequest::default();
        let mut r = node("a", 1000, 1, 0);
        assert!(matches(&r, &req));
        r.maintenance = Maintenance::Maintenance;
        assert!(!matches(&r, &req));
        r.maintenance = Maintenance::Normal;
        for s in [MemberState::Suspect, MemberState::Dead, MemberState::Left] {
            r.state = s;
            assert!(!matches(&r, &req));
        }
    }

    #[test]
    fn labels_and_amounts_are_required() {
        let mut r = node("a", 4000, 8 << 30, 1);
        r.labels.insert("zone".into(), "eu".into());
        let mut req = ResourceRequest {
            gpus: 1,
            cpu_millis: 4000,
            ..Default::default()
        };
        assert!(matches(&r, &req));
        req.labels.insert("zone".into(), "us".into());
        assert!(!matches(&r, &req));
        req.labels.insert("zone".into(), "eu".into());
        req.gpus = 2;
        assert!(!matches(&r, &req));
    }

    #[test]
    fn a_gpu_request_goes_where_it_fits_most_tightly() {
        let eight = node("eight", 64_000, 512 << 30, 8);
        let one = node("one", 8_000, 64 << 30, 1);
        let two = node("two", 8_000, 64 << 30, 2);
        let names = |req: &ResourceRequest| -> Vec<String> {
            select([&eight, &one, &two], req)
                .into_iter()
                .map(|r| r.name)
                .collect()
        };
        let gpus = |n| ResourceRequest {
            gpus: n,
            ..Default::default()
        };
        assert_eq!(names(&gpus(1)), ["one", "two", "eight"]);
        assert_eq!(names(&gpus(2)), ["two", "eight"]);
        // Without GPUs asked for, the most available node first.
        assert_eq!(names(&gpus(0)), ["eight", "two", "one"]);
    }

    fn arb_node() -> impl Strategy<Value = MemberRecord> {
        (
            "[a-z]{1,6}",
            0i64..8,
            0i64..8,
            0i64..3,
            any::<[bool; 4]>(),
            0u8..3,
            0u8..4,
        )
            .prop_map(|(id, cpu, mem, gpu, tags, maint, state)| {
                let mut r = node(&id, cpu * 1000, mem << 30, gpu);
                r.tags = Tags {
                    cpu: tags[0],
                    gpu: tags[1],
                    memory: tags[2],
                    camera: tags[3],
                };
                r.maintenance = [
                    Maintenance::Normal,
                    Maintenance::Maintenance,
                    Maintenance::Disabled,
                ][usize::from(maint)];
                r.state = [
                    MemberState::Alive,
                    MemberState::Suspect,
                    MemberState::Dead,
                    MemberState::Left,
                ][usize::from(state)];
                r
            })
    }

    proptest! {
        /// A node with at least as much of everything free never ranks below one
        /// with less.
        #[test]
        fn more_available_never_ranks_below_less(a in arb_node(), b in arb_node()) {
            let (x, y) = (available(&a), available(&b));
            if x.gpus >= y.gpus && x.cpu_millis >= y.cpu_millis && x.memory_bytes >= y.memory_bytes && x != y {
                prop_assert_eq!(rank(&a, &b), Ordering::Less);
            }
        }

        /// Required tags are always honoured, and only alive, normal nodes match.
        #[test]
        fn results_honour_tags_state_and_maintenance(nodes in proptest::collection::vec(arb_node(), 0..20), tags in any::<[bool; 4]>(), gpus in 0i64..3) {
            let req = ResourceRequest {
                gpus,
                tags: Tags { cpu: tags[0], gpu: tags[1], memory: tags[2], camera: tags[3] },
                ..Default::default()
            };
            let out = select(&nodes, &req);
            for r in &out {
                prop_assert_eq!(r.state, MemberState::Alive);
                prop_assert_eq!(r.maintenance, Maintenance::Normal);
                prop_assert!(!req.tags.gpu || r.tags.gpu);
                prop_assert!(!req.tags.camera || r.tags.camera);
                prop_assert!(available(r).gpus >= gpus);
            }
            // Asked for GPUs: best fit first (fewest free GPUs that would do),
            // then by rank; otherwise by rank alone.
            for w in out.windows(2) {
                let (a, b) = (matching_gpus(&w[0], &req.gpu), matching_gpus(&w[1], &req.gpu));
                if gpus > 0 {
                    prop_assert!(a <= b);
                }
                if gpus == 0 || a == b {
                    prop_assert_ne!(rank(&w[0], &w[1]), Ordering::Greater);
                }
            }
        }
    }
}
