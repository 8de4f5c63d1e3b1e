//! The JSON shape of a member, shared by `gsp peers --json` and the HTTP side port:
//! iarnet's node fields (seed 000) plus gsp's.

use std::{
    collections::BTreeMap,
    time::{Duration, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

use crate::core::{
    membership::{
        MemberView,
        record::{Amounts, Capacity, Gpu, Tags},
    },
    resources::inventory::Inventory,
};

/// Total, used and available amounts of one resource.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct UsageJson {
    /// What the node has.
    pub total: i64,
    /// What is in use.
    pub used: i64,
    /// What is free.
    pub available: i64,
}

/// iarnet's resource tags.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "mirrors iarnet's resource_tags"
)]
pub struct TagsJson {
    /// Has CPU.
    pub cpu: bool,
    /// Has a GPU.
    pub gpu: bool,
    /// Has memory.
    pub memory: bool,
    /// Has a video device.
    pub camera: bool,
}

/// One member as scripts see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeJson {
    /// Stable id.
    pub node_id: String,
    /// Name.
    pub node_name: String,
    /// `host:port`.
    pub address: String,
    /// Domain.
    pub domain_id: String,
    /// iarnet's status: online, offline, error.
    pub status: String,
    /// CPU millicores; null when the node has not published resources.
    pub cpu: Option<UsageJson>,
    /// Memory bytes.
    pub memory: Option<UsageJson>,
    /// GPU count.
    pub gpu: Option<UsageJson>,
    /// Capability tags.
    pub resource_tags: TagsJson,
    /// When this node last heard first-hand from it, RFC 3339 UTC.
    pub last_seen: String,
    /// gsp: alive, suspect, dead, left.
    pub state: String,
    /// gsp: restart generation (a decimal string: see [`int_string`]).
    #[serde(with = "int_string")]
    pub incarnation: u64,
    /// gsp: change counter within the incarnation.
    pub version: u64,
    /// gsp: free-form labels.
    pub labels: BTreeMap<String, String>,
    /// gsp: normal, maintenance, disabled.
    pub maintenance: String,
    /// gsp: whether it runs jobs sent with `gsp run` (started with `--exec`).
    #[serde(default)]
    pub exec: bool,
    /// gsp: when the node published this record, RFC 3339 UTC.
    pub last_updated: String,
    /// gsp: milliseconds in the current state.
    pub in_state_ms: u64,
    /// gsp: whether this is the node that answered.
    pub local: bool,
    /// gsp: the GPU devices (a GPU, or each MIG instance of one), as the
    /// node last published them.
    #[serde(default)]
    pub gpus: Vec<GpuJson>,
    /// gsp: hardware inventory (`gsp peers --detailed` only; null otherwise).
    pub inventory: Option<Inventory>,
}

/// One GPU device of a member.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GpuJson {
    /// NVML's index of the GPU (a MIG instance: its GPU's).
    pub index: u32,
    /// `GPU-…`, or `MIG-…` for a MIG instance.
    pub uuid: String,
    /// Model name.
    pub name: String,
    /// Memory, bytes.
    pub memory_total_bytes: u64,
    /// Memory in use, bytes.
    pub memory_used_bytes: u64,
    /// Memory not in use, bytes.
    pub memory_free_bytes: u64,
    /// Utilization, percent.
    pub utilization_pct: u32,
    /// A MIG instance's GPU UUID; empty for a GPU.
    pub mig_parent: String,
    /// Processes using it.
    pub processes: u32,
    /// Of those, the ones gsp did not start.
    pub foreign_processes: u32,
    /// In use outside gsp's jobs.
    pub busy: bool,
    /// Held by a gsp job.
    pub held: bool,
    /// Free for a job: neither busy nor held.
    pub free: bool,
}

impl GpuJson {
    /// The JSON shape of a device.
    pub fn of(g: &Gpu) -> Self {
        Self {
            index: g.index,
            uuid: g.uuid.clone(),
            name: g.name.clone(),
            memory_total_bytes: g.memory_total_bytes,
            memory_used_bytes: g.memory_used_bytes,
            memory_free_bytes: g.memory_free_bytes(),
            utilization_pct: g.utilization_pct,
            mig_parent: g.mig_parent.clone(),
            processes: g.processes,
            foreign_processes: g.foreign_processes,
            busy: g.busy,
            held: g.held,
            free: g.is_free(),
        }
    }
}

/// Unix nanoseconds as RFC 3339 UTC (seconds); the epoch for negative values.
pub fn rfc3339(unix_ns: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_nanos(u64::try_from(unix_ns).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

fn usage(c: Option<&Capacity>, pick: fn(&Amounts) -> i64) -> Option<UsageJson> {
    c.map(|c| UsageJson {
        total: pick(&c.total),
        used: pick(&c.used),
        available: pick(&c.available),
    })
}

fn tags(t: Tags) -> TagsJson {
    TagsJson {
        cpu: t.cpu,
        gpu: t.gpu,
        memory: t.memory,
        camera: t.camera,
    }
}

impl NodeJson {
    /// The JSON shape of a listed member.
    pub fn from_view(m: &MemberView) -> Self {
        let r = &m.record;
        let cap = r.capacity.as_ref();
        Self {
            node_id: r.id.to_string(),
            node_name: r.name.clone(),
            address: r.address.clone(),
            domain_id: r.domain.clone(),
            status: r.state.status().to_owned(),
            cpu: usage(cap, |a| a.cpu_millis),
            memory: usage(cap, |a| a.memory_bytes),
            gpu: usage(cap, |a| a.gpus),
            resource_tags: tags(r.tags),
            last_seen: rfc3339(m.last_seen_unix_ns),
            state: r.state.as_str().to_owned(),
            incarnation: r.version.incarnation,
            version: r.version.counter,
            labels: r.labels.clone(),
            maintenance: r.maintenance.as_str().to_owned(),
            exec: r.exec,
            last_updated: rfc3339(r.updated_unix_ns),
            in_state_ms: u64::try_from(m.in_state_for.as_millis()).unwrap_or(u64::MAX),
            local: m.local,
            gpus: r.gpus.iter().map(GpuJson::of).collect(),
            inventory: None,
        }
    }
}

/// Members in listing order: the local node first, then by name and id.
pub fn sorted(mut members: Vec<MemberView>) -> Vec<MemberView> {
    members.sort_by(|a, b| {
        b.local
            .cmp(&a.local)
            .then_with(|| a.record.name.cmp(&b.record.name))
            .then_with(|| a.record.id.cmp(&b.record.id))
    });
    members
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(1_705_314_600_000_000_000), "2024-01-15T10:30:00Z");
        assert_eq!(rfc3339(-1), "1970-01-01T00:00:00Z");
    }
}

/// 64-bit integers that can exceed 2^53 (incarnations, unix nanoseconds) as
/// decimal strings in JSON: jq and JavaScript hold numbers as doubles and
/// would silently round them. Reads either form back.
pub mod int_string {
    use std::{fmt::Display, str::FromStr};

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    /// Writes `v` as a string.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    /// Reads a string or a number.
    ///
    /// # Errors
    /// Neither, or out of range.
    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr + Deserialize<'de>,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either<T> {
            Text(String),
            Number(T),
        }
        match Either::<T>::deserialize(d)? {
            Either::Text(s) => s.parse().map_err(D::Error::custom),
            Either::Number(n) => Ok(n),
        }
    }
}
