//! Wire forms of resource queries and hardware inventory.

use std::time::Duration;

use super::convert::{InvalidRecord, RecordLimits, node_id, records_from_pb, records_to_pb};
use crate::{
    core::{
        membership::record::Tags,
        resources::{
            inventory::{Disk, GpuProcess, Interface, Inventory},
            query::{Query, QueryAnswer},
            request::{GpuFilter, MAX_AMOUNT, MAX_MODEL_LEN, ResourceRequest},
        },
    },
    transport::pb::discovery as pb,
};

fn invalid(field: &str, problem: String) -> InvalidRecord {
    InvalidRecord {
        field: field.to_owned(),
        problem,
    }
}

/// The wire form of a query hop.
pub fn query_to_pb(q: &Query, now_unix_ns: i64) -> pb::ResourceQueryRequest {
    pb::ResourceQueryRequest {
        query_id: q.id.clone(),
        requester_node_id: q.from.to_string(),
        requester_address: q.from_address.clone(),
        requester_domain_id: q.domain.clone(),
        resource_request: Some(request_to_pb(&q.request)),
        required_tags: Some(tags_to_pb(q.request.tags)),
        timestamp: now_unix_ns,
        max_hops: i32::try_from(q.max_hops).unwrap_or(i32::MAX),
        ttl: i32::try_from(q.max_hops.saturating_sub(q.current_hops)).unwrap_or(i32::MAX),
        current_hops: i32::try_from(q.current_hops).unwrap_or(i32::MAX),
        gsp_required_labels: q.request.labels.clone().into_iter().collect(),
        gsp_timeout_ms: u32::try_from(q.timeout.as_millis()).unwrap_or(u32::MAX),
    }
}

/// The wire form of a request's amounts and GPU filter.
pub fn request_to_pb(r: &ResourceRequest) -> pb::ResourceRequest {
    pb::ResourceRequest {
        cpu: r.cpu_millis,
        memory: r.memory_bytes,
        gpu: r.gpus,
        gsp_gpu_memory: r.gpu.memory_bytes,
        gsp_gpu_model: r.gpu.model.clone(),
    }
}

/// The wire form of required tags.
pub fn tags_to_pb(t: Tags) -> pb::ResourceTags {
    pb::ResourceTags {
        cpu: t.cpu,
        gpu: t.gpu,
        memory: t.memory,
        camera: t.camera,
    }
}

/// A resource request from its wire parts, refusing negative or absurd amounts.
///
/// # Errors
/// A negative or too large amount, or too many labels, named.
pub fn request_from_pb(
    r: Option<&pb::ResourceRequest>,
    tags: Option<&pb::ResourceTags>,
    labels: impl IntoIterator<Item = (String, String)>,
    limits: &RecordLimits,
) -> Result<ResourceRequest, InvalidRecord> {
    let r = r.cloned().unwrap_or_default();
    for (name, v) in [("cpu", r.cpu), ("memory", r.memory), ("gpu", r.gpu)] {
        if !(0..=MAX_AMOUNT).contains(&v) {
            return Err(invalid(
                &format!("resource_request.{name}"),
                format!("{v} is negative or too large"),
            ));
        }
    }
    if r.gsp_gpu_model.len() > MAX_MODEL_LEN {
        return Err(invalid(
            "resource_request.gsp_gpu_model",
            format!(
                "{} bytes, over the limit of {MAX_MODEL_LEN}",
                r.gsp_gpu_model.len()
            ),
        ));
    }
    if r.gsp_gpu_model.chars().any(char::is_control) {
        return Err(invalid(
            "resource_request.gsp_gpu_model",
            "contains control characters".into(),
        ));
    }
    let labels: std::collections::BTreeMap<String, String> = labels.into_iter().collect();
    if labels.len() > limits.max_labels {
        return Err(invalid(
            "labels",
            format!(
                "{} labels, over the limit of {}",
                labels.len(),
                limits.max_labels
            ),
        ));
    }
    let t = tags.copied().unwrap_or_default();
    Ok(ResourceRequest {
        cpu_millis: r.cpu,
        memory_bytes: r.memory,
        gpus: r.gpu,
        gpu: GpuFilter {
            memory_bytes: r.gsp_gpu_memory,
            model: r.gsp_gpu_model,
        },
        tags: Tags {
            cpu: t.cpu,
            gpu: t.gpu,
            memory: t.memory,
            camera: t.camera,
        },
        labels,
    })
}

/// A query hop from the wire; `default_timeout` applies when the sender set none.
///
/// # Errors
/// A malformed id or an invalid request, named.
pub fn query_from_pb(
    r: pb::ResourceQueryRequest,
    limits: &RecordLimits,
    default_timeout: Duration,
) -> Result<Query, InvalidRecord> {
    if r.query_id.is_empty() || r.query_id.len() > limits.max_text {
        return Err(invalid("query_id", "must be 1-256 bytes".into()));
    }
    let request = request_from_pb(
        r.resource_request.as_ref(),
        r.required_tags.as_ref(),
        r.gsp_required_labels,
        limits,
    )?;
    Ok(Query {
        id: r.query_id,
        from: node_id("requester_node_id", &r.requester_node_id)?,
        from_address: r.requester_address,
        domain: r.requester_domain_id,
        request,
        max_hops: u32::try_from(r.max_hops).unwrap_or(0),
        current_hops: u32::try_from(r.current_hops).unwrap_or(0),
        timeout: if r.gsp_timeout_ms == 0 {
            default_timeout
        } else {
            Duration::from_millis(u64::from(r.gsp_timeout_ms)).min(Duration::from_secs(300))
        },
    })
}

/// The wire form of an answer.
pub fn answer_to_pb(
    a: &QueryAnswer,
    query_id: &str,
    responder_address: &str,
    now_unix_ns: i64,
) -> pb::ResourceQueryResponse {
    pb::ResourceQueryResponse {
        query_id: query_id.to_owned(),
        responder_node_id: a
            .responder
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        responder_address: responder_address.to_owned(),
        available_nodes: records_to_pb(&a.nodes),
        timestamp: now_unix_ns,
        is_final: true,
        gsp_hops_used: a.hops_used,
    }
}

/// An answer from the wire.
///
/// # Errors
/// Too many or invalid records.
pub fn answer_from_pb(
    r: pb::ResourceQueryResponse,
    limits: &RecordLimits,
    now_unix_ns: i64,
) -> Result<QueryAnswer, InvalidRecord> {
    Ok(QueryAnswer {
        responder: node_id("responder_node_id", &r.responder_node_id).ok(),
        nodes: records_from_pb(r.available_nodes, "available_nodes", limits, now_unix_ns)?,
        hops_used: r.gsp_hops_used,
    })
}

/// The wire form of an inventory.
pub fn inventory_to_pb(i: &Inventory) -> pb::GspInventory {
    pb::GspInventory {
        cpu_model: i.cpu_model.clone(),
        cpu_physical_cores: i.cpu_physical_cores,
        cpu_logical_cores: i.cpu_logical_cores,
        arch: i.arch.clone(),
        os: i.os.clone(),
        kernel: i.kernel.clone(),
        hostname: i.hostname.clone(),
        disks: i
            .disks
            .iter()
            .map(|d| pb::GspDisk {
                name: d.name.clone(),
                mount_point: d.mount_point.clone(),
                file_system: d.file_system.clone(),
                total_bytes: d.total_bytes,
                available_bytes: d.available_bytes,
            })
            .collect(),
        interfaces: i
            .interfaces
            .iter()
            .map(|n| pb::GspInterface {
                name: n.name.clone(),
                mac: n.mac.clone(),
                addresses: n.addresses.clone(),
            })
            .collect(),
        gpu_driver: i.gpu_driver.clone(),
        cuda_version: i.cuda_version.clone(),
        gpu_processes: i
            .gpu_processes
            .iter()
            .map(|p| pb::GspGpuProcess {
                gpu_uuid: p.gpu_uuid.clone(),
                pid: p.pid,
                used_bytes: p.used_bytes,
                job_id: p.job_id.clone(),
            })
            .collect(),
    }
}

/// Processes listed at most in an inventory from the wire.
const MAX_GPU_PROCESSES: usize = 1024;

/// Text from a peer's inventory as it may be shown: at most 256 bytes (cut
/// at a character boundary), control characters (a terminal's escape
/// sequences) replaced by `?`.
fn clean(s: String) -> String {
    if s.len() <= 256 && !s.chars().any(char::is_control) {
        return s;
    }
    let mut end = s.len().min(256);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end]
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// An inventory from the wire (lists capped at 64 entries, GPU processes at
/// 1,024; text cleaned, see [`clean`]).
pub fn inventory_from_pb(p: pb::GspInventory) -> Inventory {
    Inventory {
        cpu_model: clean(p.cpu_model),
        cpu_physical_cores: p.cpu_physical_cores,
        cpu_logical_cores: p.cpu_logical_cores,
        arch: clean(p.arch),
        os: clean(p.os),
        kernel: clean(p.kernel),
        hostname: clean(p.hostname),
        disks: p
            .disks
            .into_iter()
            .take(64)
            .map(|d| Disk {
                name: clean(d.name),
                mount_point: clean(d.mount_point),
                file_system: clean(d.file_system),
                total_bytes: d.total_bytes,
                available_bytes: d.available_bytes,
            })
            .collect(),
        interfaces: p
            .interfaces
            .into_iter()
            .take(64)
            .map(|n| Interface {
                name: clean(n.name),
                mac: clean(n.mac),
                addresses: n.addresses.into_iter().take(64).map(clean).collect(),
            })
            .collect(),
        gpu_driver: clean(p.gpu_driver),
        cuda_version: clean(p.cuda_version),
        gpu_processes: p
            .gpu_processes
            .into_iter()
            .take(MAX_GPU_PROCESSES)
            .map(|g| GpuProcess {
                gpu_uuid: clean(g.gpu_uuid),
                pid: g.pid,
                used_bytes: g.used_bytes,
                job_id: clean(g.job_id),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ids::NodeId;

    #[test]
    fn a_peers_inventory_cannot_write_escapes_to_the_terminal() {
        let inv = inventory_from_pb(pb::GspInventory {
            cpu_model: "\u{1b}]0;pwned\u{7}\u{1b}[2J".to_owned(),
            gpu_driver: "x".repeat(10_000),
            gpu_processes: vec![pb::GspGpuProcess {
                job_id: "job\r\nfake line".to_owned(),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert_eq!(inv.cpu_model, "?]0;pwned??[2J");
        assert_eq!(inv.gpu_driver.len(), 256);
        assert_eq!(inv.gpu_processes[0].job_id, "job??fake line");
    }

    #[test]
    fn queries_round_trip_and_bad_amounts_are_named() {
        let q = Query {
            id: "q1".into(),
            from: NodeId::parse("a").unwrap(),
            from_address: "h:1".into(),
            domain: "d".into(),
            request: ResourceRequest {
                cpu_millis: 2000,
                memory_bytes: 1 << 30,
                gpus: 1,
                gpu: GpuFilter {
                    memory_bytes: 30 << 30,
                    model: "H100".into(),
                },
                tags: Tags {
                    gpu: true,
                    ..Tags::default()
                },
                labels: [("zone".to_owned(), "eu".to_owned())].into(),
            },
            max_hops: 3,
            current_hops: 1,
            timeout: Duration::from_millis(1500),
        };
        let back =
            query_from_pb(query_to_pb(&q, 0), &RecordLimits::default(), Duration::ZERO).unwrap();
        assert_eq!(back.request, q.request);
        assert_eq!(
            (back.max_hops, back.current_hops, back.timeout),
            (3, 1, q.timeout)
        );

        let mut p = query_to_pb(&q, 0);
        p.resource_request.as_mut().unwrap().gpu = -1;
        let e = query_from_pb(p, &RecordLimits::default(), Duration::ZERO).unwrap_err();
        assert_eq!(e.field, "resource_request.gpu");

        let mut p = query_to_pb(&q, 0);
        p.resource_request.as_mut().unwrap().gsp_gpu_model = "x".repeat(MAX_MODEL_LEN + 1);
        let e = query_from_pb(p, &RecordLimits::default(), Duration::ZERO).unwrap_err();
        assert_eq!(e.field, "resource_request.gsp_gpu_model");
    }
}
