//! Membership counters of one node, for `/metrics` and the bench.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::core::membership::events::EventKind;

/// Monotonic counters.
#[derive(Debug, Default)]
pub struct MembershipStats {
    /// Rounds run (one probe and one gossip push each).
    pub rounds: AtomicU64,
    /// Direct probes sent.
    pub probes: AtomicU64,
    /// Indirect probe requests sent.
    pub indirect_probes: AtomicU64,
    /// Indirect probes made on a peer's request.
    pub ping_req_served: AtomicU64,
    /// Indirect probe requests refused (target not a member at that address,
    /// or too many in flight), answered with a nack.
    pub ping_req_refused: AtomicU64,
    /// Gossip pushes sent.
    pub gossip_pushes: AtomicU64,
    /// Probes of nodes heard of second-hand, before listing them.
    pub verification_probes: AtomicU64,
    /// Alive or left records of other members dropped under TLS: not signed by
    /// the member, or renaming it.
    pub records_unauthenticated: AtomicU64,
    /// Push-pull exchanges started.
    pub push_pulls: AtomicU64,
    /// Calls refused because the caller was in another domain.
    pub refused_foreign_domain: AtomicU64,
    /// Calls refused as malformed or over a limit.
    pub refused_invalid: AtomicU64,
    /// Resource query hops answered.
    pub queries: AtomicU64,
    /// Queries refused because too many were in flight.
    pub refused_overloaded: AtomicU64,
    /// Calls refused over a peer's rate limit (gossip and queries).
    pub refused_rate_limited: AtomicU64,
    /// Events by kind, indexed as [`EventKind::ALL`].
    pub events: [AtomicU64; EventKind::ALL.len()],
    /// `--on-event` commands started.
    pub event_hook_runs: AtomicU64,
    /// `--on-event` commands that could not start or exited non-zero.
    pub event_hook_failures: AtomicU64,
    /// `--on-event` commands killed at their timeout.
    pub event_hook_timeouts: AtomicU64,
    /// Events skipped for `--on-event` commands that fell behind.
    pub event_hook_dropped: AtomicU64,
    /// Round trips of answered pings.
    pub probe_rtt: crate::runtime::latency::Latency,
    /// How long `--on-event` commands ran.
    pub event_hook_seconds: crate::runtime::latency::Latency,
}

impl MembershipStats {
    /// Adds one to `c`.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads `c`.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Counts one event.
    pub fn event(&self, kind: EventKind) {
        if let Some(i) = EventKind::ALL.iter().position(|k| *k == kind) {
            Self::inc(&self.events[i]);
        }
    }

    /// Events of `kind` so far.
    pub fn events_of(&self, kind: EventKind) -> u64 {
        EventKind::ALL
            .iter()
            .position(|k| *k == kind)
            .map_or(0, |i| Self::get(&self.events[i]))
    }
}
