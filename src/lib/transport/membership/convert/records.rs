//! Member records <-> `discovery.PeerNodeInfo`: one record or a message's
//! worth, validated field by field on the way in.

use std::{borrow::Borrow, collections::BTreeMap};

use super::{
    InvalidRecord, RecordLimits, invalid, node_id,
    states::{maintenance_from_pb, maintenance_to_pb, state_from_pb, state_to_pb},
    text,
};
use crate::{
    core::membership::record::{Amounts, Capacity, Gpu, MemberRecord, Tags, Version},
    transport::pb::discovery as pb,
};

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
    for (i, g) in info.gsp_gpus.iter().enumerate() {
        text(&f(&format!("gsp_gpus[{i}].name")), &g.name, limits)?;
        text(&f(&format!("gsp_gpus[{i}].uuid")), &g.uuid, limits)?;
        text(
            &f(&format!("gsp_gpus[{i}].mig_parent")),
            &g.mig_parent,
            limits,
        )?;
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
                index: g.index,
                uuid: g.uuid,
                mig_parent: g.mig_parent,
                processes: g.processes,
                foreign_processes: g.foreign_processes,
                busy: g.busy,
                held: g.held,
            })
            .collect(),
        labels: info.gsp_labels.into_iter().collect::<BTreeMap<_, _>>(),
        // A state this version does not know (a newer peer's) reads as normal.
        maintenance: maintenance_from_pb(info.gsp_maintenance).unwrap_or_default(),
        scheduler_address: info.scheduler_address,
        updated_unix_ns: info.last_updated,
        protocol: info.gsp_protocol,
        exec: info.gsp_exec,
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
                index: g.index,
                uuid: g.uuid.clone(),
                mig_parent: g.mig_parent.clone(),
                processes: g.processes,
                foreign_processes: g.foreign_processes,
                busy: g.busy,
                held: g.held,
            })
            .collect(),
        gsp_suspected_by: r
            .suspected_by
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        gsp_protocol: r.protocol,
        gsp_exec: r.exec,
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
