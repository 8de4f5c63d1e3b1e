//! Records for unit tests: `id` at version (1, `counter`) in `state`, and
//! with free resources.

use super::{Amounts, Capacity, MemberRecord, MemberState, Tags};
use crate::ids::NodeId;

/// Node `id` (also its name), address `id:1`, domain `d`.
pub(crate) fn record(id: &str, counter: u64, state: MemberState) -> MemberRecord {
    let mut r = MemberRecord::new(
        NodeId::parse(id).expect("test id"),
        id.into(),
        format!("{id}:1"),
        "d".into(),
        1,
    );
    r.version.counter = counter;
    r.state = state;
    r
}

/// `r` with `cpu` millicores, `mem` bytes and `gpus` all free, tags to match.
pub(crate) fn with_free(mut r: MemberRecord, cpu: i64, mem: i64, gpus: i64) -> MemberRecord {
    let a = Amounts {
        cpu_millis: cpu,
        memory_bytes: mem,
        gpus,
    };
    r.capacity = Some(Capacity {
        total: a,
        used: Amounts::default(),
        available: a,
    });
    r.tags = Tags {
        cpu: cpu > 0,
        gpu: gpus > 0,
        memory: mem > 0,
        camera: false,
    };
    r
}
