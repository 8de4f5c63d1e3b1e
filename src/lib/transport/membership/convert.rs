//! `discovery.PeerNodeInfo` and friends <-> member records, with every limit
//! checked: a record that breaks one is refused, naming the field.

use std::collections::BTreeMap;

use std::borrow::Borrow;

use crate::{
    core::{
        ids::NodeId,
        membership::record::{
            Amounts, Capacity, Digest, Gpu, Maintenance, MemberRecord, MemberState, Tags, Version,
        },
    },
    transport::pb::discovery as pb,
};

/// Limits on what a peer may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLimits {
    /// Records in one message (a push-pull sends at most 4096).
    pub max_records: usize,
    /// Digests in one message: one per member of the largest table.
    pub max_digests: usize,
    /// Bytes of a name, address, domain or scheduler address.
    pub max_text: usize,
    /// Labels per node.
    pub max_labels: usize,
    /// Bytes of a label key or value.
    pub max_label_len: usize,
    /// GPUs per node.
    pub max_gpus: usize,
    /// How far in the future a timestamp or incarnation may be, in nanoseconds.
    pub max_clock_skew_ns: i64,
    /// Largest version counter accepted.
    pub max_counter: u64,
}

impl Default for RecordLimits {
    fn default() -> Self {
        Self {
            max_records: 4096,
            max_digests: 65_536,
            max_text: 256,
            max_labels: 64,
            max_label_len: 256,
            max_gpus: 64,
            max_clock_skew_ns: 24 * 3600 * 1_000_000_000,
            max_counter: crate::core::membership::record::MAX_COUNTER,
        }
    }
}

/// A record or message that broke a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidRecord {
    /// Where, e.g. `nodes[3].node_id`.
    pub field: String,
    /// What was wrong.
    pub problem: String,
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> InvalidRecord {
    InvalidRecord {
        field: field.into(),
        problem: problem.into(),
    }
}

fn text(field: &str, s: &str, limits: &RecordLimits) -> Result<(), InvalidRecord> {
    if s.len() > limits.max_text {
        return Err(invalid(
            field,
            format!("{} bytes, over the limit of {}", s.len(), limits.max_text),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(invalid(field, "contains a control character"));
    }
    Ok(())
}

/// Parses a node id field.
///
/// # Errors
/// Empty, too long or malformed.
pub fn node_id(field: &str, s: &str) -> Result<NodeId, InvalidRecord> {
    NodeId::parse(s).map_err(|e| invalid(field, e.to_string()))
}

fn amounts(field: &str, r: Option<&pb::ResourceInfo>) -> Result<Amounts, InvalidRecord> {
    let Some(r) = r else {
        return Ok(Amounts::default());
    };
    for (name, v) in [("cpu", r.cpu), ("memory", r.memory), ("gpu", r.gpu)] {
        if v < 0 {
            return Err(invalid(
                format!("{field}.{name}"),
                format!("negative amount {v}"),
            ));
        }
    }
    Ok(Amounts {
        cpu_millis: r.cpu,
        memory_bytes: r.memory,
        gpus: r.gpu,
    })
}

fn state_from_pb(info: &pb::PeerNodeInfo) -> MemberState {
    match pb::GspMemberState::try_from(info.gsp_state) {
        Ok(pb::GspMemberState::Alive) => MemberState::Alive,
        Ok(pb::GspMemberState::Suspect) => MemberState::Suspect,
        Ok(pb::GspMemberState::Dead) => MemberState::Dead,
        Ok(pb::GspMemberState::Left) => MemberState::Left,
        // iarnet records carry only the coarse status.
        Ok(pb::GspMemberState::Unspecified) | Err(_) => match pb::NodeStatus::try_from(info.status)
        {
            Ok(pb::NodeStatus::Offline) => MemberState::Dead,
            Ok(pb::NodeStatus::Error) => MemberState::Suspect,
            _ => MemberState::Alive,
        },
    }
}

/// The wire form of a maintenance state.
pub fn maintenance_to_pb(m: Maintenance) -> pb::GspMaintenance {
    match m {
        Maintenance::Normal => pb::GspMaintenance::Normal,
        Maintenance::Maintenance => pb::GspMaintenance::Maintenance,
        Maintenance::Disabled => pb::GspMaintenance::Disabled,
    }
}

/// The maintenance state of a wire value; `None` for a number this version
/// does not know.
pub fn maintenance_from_pb(v: i32) -> Option<Maintenance> {
    match pb::GspMaintenance::try_from(v).ok()? {
        pb::GspMaintenance::Normal => Some(Maintenance::Normal),
        pb::GspMaintenance::Maintenance => Some(Maintenance::Maintenance),
        pb::GspMaintenance::Disabled => Some(Maintenance::Disabled),
    }
}

/// Validates and converts one record. `field` prefixes error paths; `now_unix_ns`
/// bounds timestamps and incarnations.
///
/// # Errors
/// The first field that breaks a limit.
pub fn record_from_pb(
    info: pb::PeerNodeInfo,
    field: &str,
    limits: &RecordLimits,
    now_unix_ns: i64,
) -> Result<MemberRecord, InvalidRecord> {
    let f = |name: &str| format!("{field}.{name}");
    let id = node_id(&f("node_id"), &info.node_id)?;
    text(&f("node_name"), &info.node_name, limits)?;
    text(&f("domain_id"), &info.domain_id, limits)?;
    text(&f("scheduler_address"), &info.scheduler_address, limits)?;
    text(&f("address"), &info.address, limits)?;
    let port_ok = info
        .address
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !port_ok {
        return Err(invalid(
            f("address"),
            format!("'{}' is not host:port", info.address),
        ));
    }
    let horizon = now_unix_ns.saturating_add(limits.max_clock_skew_ns);
    for (name, v) in [
        ("last_seen", info.last_seen),
        ("last_updated", info.last_updated),
    ] {
        if v < 0 || v > horizon {
            return Err(invalid(
                f(name),
                format!("timestamp {v} is negative or in the future"),
            ));
        }
    }
    if i64::try_from(info.gsp_incarnation).map_or(true, |i| i > horizon) {
        return Err(invalid(
            f("gsp_incarnation"),
            format!("{} is in the future", info.gsp_incarnation),
        ));
    }
    if info.version > limits.max_counter {
        return Err(invalid(
            f("version"),
            format!("{} is absurdly large", info.version),
        ));
    }
    if info.gsp_labels.len() > limits.max_labels {
        return Err(invalid(
            f("gsp_labels"),
            format!(
                "{} labels, over the limit of {}",
                info.gsp_labels.len(),
                limits.max_labels
            ),
        ));
    }
    for (k, v) in &info.gsp_labels {
        if k.is_empty() || k.len() > limits.max_label_len || v.len() > limits.max_label_len {
            return Err(invalid(
                f("gsp_labels"),
                format!("label '{k}' is empty or too long"),
            ));
        }
    }
    if info.gsp_gpus.len() > limits.max_gpus {
        return Err(invalid(
            f("gsp_gpus"),
            format!(
                "{} GPUs, over the limit of {}",
                info.gsp_gpus.len(),
                limits.max_gpus
            ),
        ));
    }
    let suspected_by = if info.gsp_suspected_by.is_empty() {
        None
    } else {
        Some(node_id(&f("gsp_suspected_by"), &info.gsp_suspected_by)?)
    };
    let capacity = match &info.resource_capacity {
        Some(c) => Some(Capacity {
            total: amounts(&f("resource_capacity.total"), c.total.as_ref())?,
            used: amounts(&f("resource_capacity.used"), c.used.as_ref())?,
            available: amounts(&f("resource_capacity.available"), c.available.as_ref())?,
        }),
        None => None,
    };
    let tags = info.resource_tags.map_or_else(Tags::default, |t| Tags {
        cpu: t.cpu,
        gpu: t.gpu,
        memory: t.memory,
        camera: t.camera,
    });
    let state = state_from_pb(&info);
    Ok(MemberRecord {
        id,
        name: info.node_name,
        address: info.address,
        domain: info.domain_id,
        version: Version {
            incarnation: info.gsp_incarnation,
            counter: info.version,
        },
        state,
        suspected_by,
        capacity,
        tags,
        gpus: info
            .gsp_gpus
            .into_iter()
            .map(|g| Gpu {
                name: g.name,
                memory_total_bytes: g.memory_total_bytes,
                memory_used_bytes: g.memory_used_bytes,
                utilization_pct: g.utilization_pct,
            })
            .collect(),
        labels: info.gsp_labels.into_iter().collect::<BTreeMap<_, _>>(),
        // A state this version does not know (a newer peer's) reads as normal.
        maintenance: maintenance_from_pb(info.gsp_maintenance).unwrap_or_default(),
        scheduler_address: info.scheduler_address,
        updated_unix_ns: info.last_updated,
        protocol: info.gsp_protocol,
        proof: crate::transport::convert::origin_auth(info.gsp_signature, info.gsp_certificate),
    })
}

/// Validates and converts the records of one message, refusing it whole when any
/// record is invalid or there are too many.
///
/// # Errors
/// Too many records, or the first invalid one.
pub fn records_from_pb<R: From<MemberRecord>>(
    infos: Vec<pb::PeerNodeInfo>,
    field: &str,
    limits: &RecordLimits,
    now_unix_ns: i64,
) -> Result<Vec<R>, InvalidRecord> {
    if infos.len() > limits.max_records {
        return Err(invalid(
            field,
            format!(
                "{} records, over the limit of {}",
                infos.len(),
                limits.max_records
            ),
        ));
    }
    infos
        .into_iter()
        .enumerate()
        .map(|(i, info)| {
            record_from_pb(info, &format!("{field}[{i}]"), limits, now_unix_ns).map(R::from)
        })
        .collect()
}

fn amounts_to_pb(a: Amounts) -> pb::ResourceInfo {
    pb::ResourceInfo {
        cpu: a.cpu_millis,
        memory: a.memory_bytes,
        gpu: a.gpus,
    }
}

fn state_to_pb(s: MemberState) -> (pb::GspMemberState, pb::NodeStatus) {
    match s {
        MemberState::Alive => (pb::GspMemberState::Alive, pb::NodeStatus::Online),
        MemberState::Suspect => (pb::GspMemberState::Suspect, pb::NodeStatus::Error),
        MemberState::Dead => (pb::GspMemberState::Dead, pb::NodeStatus::Offline),
        MemberState::Left => (pb::GspMemberState::Left, pb::NodeStatus::Offline),
    }
}

/// The wire form of a record; `last_seen_unix_ns` fills iarnet's `last_seen`.
pub fn record_to_pb(r: &MemberRecord, last_seen_unix_ns: i64) -> pb::PeerNodeInfo {
    let (state, status) = state_to_pb(r.state);
    pb::PeerNodeInfo {
        node_id: r.id.to_string(),
        node_name: r.name.clone(),
        address: r.address.clone(),
        domain_id: r.domain.clone(),
        resource_capacity: r.capacity.map(|c| pb::ResourceCapacity {
            total: Some(amounts_to_pb(c.total)),
            used: Some(amounts_to_pb(c.used)),
            available: Some(amounts_to_pb(c.available)),
        }),
        resource_tags: Some(pb::ResourceTags {
            cpu: r.tags.cpu,
            gpu: r.tags.gpu,
            memory: r.tags.memory,
            camera: r.tags.camera,
        }),
        status: status.into(),
        last_seen: last_seen_unix_ns,
        last_updated: r.updated_unix_ns,
        version: r.version.counter,
        gossip_count: 0,
        scheduler_address: r.scheduler_address.clone(),
        gsp_incarnation: r.version.incarnation,
        gsp_state: state.into(),
        gsp_maintenance: maintenance_to_pb(r.maintenance).into(),
        gsp_labels: r.labels.clone().into_iter().collect(),
        gsp_gpus: r
            .gpus
            .iter()
            .map(|g| pb::GspGpu {
                name: g.name.clone(),
                memory_total_bytes: g.memory_total_bytes,
                memory_used_bytes: g.memory_used_bytes,
                utilization_pct: g.utilization_pct,
            })
            .collect(),
        gsp_suspected_by: r
            .suspected_by
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        gsp_protocol: r.protocol,
        gsp_inventory: None,
        gsp_signature: r
            .proof
            .as_ref()
            .map(|p| p.signature.clone())
            .unwrap_or_default(),
        gsp_certificate: r
            .proof
            .as_ref()
            .map(|p| p.certificate.clone())
            .unwrap_or_default(),
    }
}

/// Records for a message (iarnet's `last_seen` set to when each was published).
pub fn records_to_pb<R: Borrow<MemberRecord>>(records: &[R]) -> Vec<pb::PeerNodeInfo> {
    records
        .iter()
        .map(|r| {
            let r = r.borrow();
            record_to_pb(r, r.updated_unix_ns)
        })
        .collect()
}

/// The wire form of a digest.
pub fn digest_to_pb(d: &Digest) -> pb::GspNodeDigest {
    pb::GspNodeDigest {
        node_id: d.id.to_string(),
        incarnation: d.version.incarnation,
        version: d.version.counter,
        state: state_to_pb(d.state).0.into(),
    }
}

/// Parses digests.
///
/// # Errors
/// Too many, or a malformed node id.
pub fn digests_from_pb(
    ds: Vec<pb::GspNodeDigest>,
    limits: &RecordLimits,
) -> Result<Vec<Digest>, InvalidRecord> {
    if ds.len() > limits.max_digests {
        return Err(invalid(
            "gsp_digests",
            format!(
                "{} digests, over the limit of {}",
                ds.len(),
                limits.max_digests
            ),
        ));
    }
    ds.into_iter()
        .enumerate()
        .map(|(i, d)| {
            let state = match pb::GspMemberState::try_from(d.state) {
                Ok(pb::GspMemberState::Suspect) => MemberState::Suspect,
                Ok(pb::GspMemberState::Dead) => MemberState::Dead,
                Ok(pb::GspMemberState::Left) => MemberState::Left,
                _ => MemberState::Alive,
            };
            Ok(Digest {
                id: node_id(&format!("gsp_digests[{i}].node_id"), &d.node_id)?,
                version: Version {
                    incarnation: d.incarnation,
                    counter: d.version,
                },
                state,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

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
        r.gpus.push(Gpu {
            name: "A100".into(),
            memory_total_bytes: 80 << 30,
            memory_used_bytes: 0,
            utilization_pct: 3,
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
}
