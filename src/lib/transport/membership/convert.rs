//! `discovery.PeerNodeInfo` and friends <-> member records, with every limit
//! checked: a record that breaks one is refused, naming the field.

use crate::core::ids::NodeId;

mod digests;
mod records;
mod states;

pub use digests::{digest_to_pb, digests_from_pb};
pub use records::{record_from_pb, record_to_pb, records_from_pb, records_to_pb};
pub use states::{maintenance_from_pb, maintenance_to_pb};

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

#[cfg(test)]
mod tests;
