//! Broadcast counters of one node, for `/metrics`, `gsp bench broadcast` and tests.

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters.
#[derive(Debug, Default)]
pub struct BroadcastStats {
    /// Broadcasts started here.
    pub originated: AtomicU64,
    /// Broadcasts delivered here (each once), own ones included.
    pub delivered: AtomicU64,
    /// Broadcast payloads received again and dropped.
    pub duplicates: AtomicU64,
    /// Broadcast payloads refused (node disabled).
    pub refused: AtomicU64,
    /// Broadcast payload sends put on a link (relays, answers to wants).
    pub payload_sends: AtomicU64,
    /// Broadcast payload bytes put on links, retries included: the numerator of
    /// the payload-copy ratio.
    pub payload_bytes_sent: AtomicU64,
    /// Swarm piece sends put on a link (origin's, forwards, reroutes), retries
    /// included; their bytes count in `payload_bytes_sent`.
    pub piece_sends: AtomicU64,
    /// Payload sends retried after a timeout or a closed link.
    pub send_retries: AtomicU64,
    /// Payload sends abandoned (retries exhausted, refused, peer unknown).
    pub send_failures: AtomicU64,
    /// Payload sends dropped because [`super::MAX_SENDS_IN_FLIGHT`] were in flight.
    pub sends_dropped: AtomicU64,
    /// Control frames (announcements, wants, digests) queued.
    pub control_sent: AtomicU64,
    /// Control frames received.
    pub control_received: AtomicU64,
    /// Runs of the timer loop (pulls, assembly stalls, deadlines, batched
    /// announcements): one a tick while any of them waits, one a second
    /// otherwise.
    pub timer_runs: AtomicU64,
    /// Receipts received as origin.
    pub receipts_received: AtomicU64,
    /// Deliveries a local subscriber lost because its queue was full.
    pub local_drops: AtomicU64,
    /// On-message command runs started.
    pub handler_runs: AtomicU64,
    /// On-message command runs that failed (non-zero exit, could not start).
    pub handler_failures: AtomicU64,
    /// On-message command runs killed at their timeout.
    pub handler_timeouts: AtomicU64,
    /// Malformed broadcast traffic refused (bad receipts, bad control frames).
    pub malformed: AtomicU64,
    /// Relayed broadcasts refused under TLS: unsigned, or not signed by their
    /// origin's node certificate.
    pub unauthenticated: AtomicU64,
    /// How long on-message commands ran.
    pub handler_seconds: crate::runtime::latency::Latency,
    /// As origin: send to the last receipt, for broadcasts every expected
    /// member delivered.
    pub convergence_seconds: crate::runtime::latency::Latency,
}

/// Adds one to `c`.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n` to `c`.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Reads `c`.
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}
