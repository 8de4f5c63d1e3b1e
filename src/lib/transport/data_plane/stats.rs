//! Data plane counters, shared by the server and the links, read by reports and metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters of one node's data plane.
#[derive(Debug, Default)]
pub struct DataPlaneStats {
    /// Whole messages received and delivered.
    pub messages_received: AtomicU64,
    /// Payload bytes of those messages.
    pub payload_bytes_received: AtomicU64,
    /// Messages refused for exceeding the payload limit.
    pub rejected_too_large: AtomicU64,
    /// Messages refused for a checksum mismatch.
    pub rejected_checksum: AtomicU64,
    /// Messages refused by the node (duplicates are not counted here).
    pub rejected_by_node: AtomicU64,
    /// Streams cut off for breaking the protocol.
    pub protocol_errors: AtomicU64,
    /// Inbound streams accepted.
    pub streams_accepted: AtomicU64,
    /// Links closed because the peer stopped acknowledging.
    pub peers_cut_off: AtomicU64,
    /// Messages sent on links.
    pub messages_sent: AtomicU64,
    /// Payload bytes put on links.
    pub payload_bytes_sent: AtomicU64,
}

impl DataPlaneStats {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
