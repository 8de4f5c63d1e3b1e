//! Round trips and refusals of the record conversions.

use proptest::prelude::*;

use super::*;
use crate::{
    core::{
        ids::NodeId,
        membership::record::{
            Amounts, Capacity, Gpu, Maintenance, MemberRecord, MemberState, Version,
        },
    },
    transport::pb::discovery as pb,
};

fn sample() -> MemberRecord {
    let mut r = MemberRecord::new(
        NodeId::parse("node-a").unwrap(),
        "a".into(),
        "10.0.0.1:50005".into(),
        "dom".into(),
        1_700_000_000_000_000_000,
    );
    r.capacity = Some(Capacity {
        total: Amounts {
            cpu_millis: 8000,
            memory_bytes: 1 << 34,
            gpus: 2,
        },
        used: Amounts {
            cpu_millis: 1000,
            memory_bytes: 1 << 30,
            gpus: 0,
        },
        available: Amounts {
            cpu_millis: 7000,
            memory_bytes: (1 << 34) - (1 << 30),
            gpus: 2,
        },
    });
    r.labels.insert("zone".into(), "eu".into());
    r.exec = true;
    r.gpus.push(Gpu {
        index: 1,
        uuid: "GPU-8f3c1a2b-0000-4000-8000-000000000001".into(),
        name: "A100".into(),
        memory_total_bytes: 80 << 30,
        memory_used_bytes: 0,
        utilization_pct: 3,
        mig_parent: String::new(),
        processes: 2,
        foreign_processes: 1,
        busy: true,
        held: false,
    });
    r.maintenance = Maintenance::Maintenance;
    r.state = MemberState::Suspect;
    r.suspected_by = Some(NodeId::parse("node-b").unwrap());
    r.updated_unix_ns = 1_700_000_000_000_000_001;
    r
}

const NOW: i64 = 1_800_000_000_000_000_000;

#[test]
fn records_round_trip() {
    let r = sample();
    let back = record_from_pb(record_to_pb(&r, 5), "n", &RecordLimits::default(), NOW).unwrap();
    assert_eq!(back, r);
}

proptest! {
    #[test]
    fn any_valid_record_round_trips(
        counter in 0u64..1 << 40,
        inc in 0u64..1_700_000_000_000_000_000,
        state in 0usize..4,
        labels in proptest::collection::btree_map("[a-z]{1,8}", "[a-z0-9]{0,8}", 0..5),
        cpu in 0i64..1 << 40,
    ) {
        let mut r = sample();
        r.version = Version { incarnation: inc, counter };
        r.state = [MemberState::Alive, MemberState::Suspect, MemberState::Dead, MemberState::Left][state];
        r.labels = labels;
        if let Some(c) = r.capacity.as_mut() { c.total.cpu_millis = cpu; }
        let back = record_from_pb(record_to_pb(&r, 0), "n", &RecordLimits::default(), NOW).unwrap();
        prop_assert_eq!(back, r);
    }
}

#[test]
fn bad_records_are_refused_naming_the_field() {
    let limits = RecordLimits::default();
    let mut p = record_to_pb(&sample(), 0);
    p.node_id = String::new();
    let e = record_from_pb(p, "nodes[0]", &limits, NOW).unwrap_err();
    assert_eq!(e.field, "nodes[0].node_id");

    let mut p = record_to_pb(&sample(), 0);
    p.address = "no-port".into();
    assert_eq!(
        record_from_pb(p, "n", &limits, NOW).unwrap_err().field,
        "n.address"
    );

    let mut p = record_to_pb(&sample(), 0);
    p.version = u64::MAX;
    assert_eq!(
        record_from_pb(p, "n", &limits, NOW).unwrap_err().field,
        "n.version"
    );

    let mut p = record_to_pb(&sample(), 0);
    p.gsp_incarnation = u64::MAX;
    assert_eq!(
        record_from_pb(p, "n", &limits, NOW).unwrap_err().field,
        "n.gsp_incarnation"
    );

    let mut p = record_to_pb(&sample(), 0);
    p.last_updated = -5;
    assert_eq!(
        record_from_pb(p, "n", &limits, NOW).unwrap_err().field,
        "n.last_updated"
    );

    let mut p = record_to_pb(&sample(), 0);
    p.resource_capacity
        .as_mut()
        .unwrap()
        .total
        .as_mut()
        .unwrap()
        .cpu = -1;
    assert_eq!(
        record_from_pb(p, "n", &limits, NOW).unwrap_err().field,
        "n.resource_capacity.total.cpu"
    );

    let many = vec![record_to_pb(&sample(), 0); limits.max_records + 1];
    let e = records_from_pb::<MemberRecord>(many, "nodes", &limits, NOW).unwrap_err();
    assert!(e.problem.contains("over the limit"), "{e}");
}

#[test]
fn iarnet_records_without_gsp_fields_are_understood() {
    let p = pb::PeerNodeInfo {
        node_id: "node.abc123".into(),
        node_name: "node.1".into(),
        address: "192.168.1.100:50005".into(),
        domain_id: "domain.xyz".into(),
        status: pb::NodeStatus::Online.into(),
        last_seen: 1,
        last_updated: 1,
        version: 3,
        ..Default::default()
    };
    let r = record_from_pb(p, "n", &RecordLimits::default(), NOW).unwrap();
    assert_eq!(r.state, MemberState::Alive);
    assert_eq!(
        r.version,
        Version {
            incarnation: 0,
            counter: 3
        }
    );
    assert_eq!(r.protocol, 0);
}
