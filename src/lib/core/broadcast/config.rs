//! Broadcast settings. `Default` is production-correct.

use std::time::Duration;

/// Default time a message id is remembered as seen (seed 001's long cache).
pub const DEFAULT_SEEN_TTL: Duration = Duration::from_secs(600);
/// Default cap on remembered ids.
pub const DEFAULT_SEEN_CAPACITY: usize = 262_144;
/// Default payload bytes kept to serve peers that ask.
pub const DEFAULT_STORE_BYTES: u64 = 256 << 20;
/// Default payload retention.
pub const DEFAULT_STORE_TTL: Duration = Duration::from_secs(600);
/// Default wait before pulling a message announced by a relay (not its origin),
/// giving the origin's own copy time to arrive first.
pub const DEFAULT_GRAFT_DELAY: Duration = Duration::from_millis(200);
/// Default hop limit of a broadcast.
pub const DEFAULT_TTL: u32 = 16;
/// Default cap on messages being pulled at once.
pub const DEFAULT_MAX_PULLS: usize = 8192;
/// Default cap on broadcasts this node tracks as origin.
pub const DEFAULT_MAX_TRACKED: usize = 4096;
/// Default attempts to pull one message before giving up.
pub const DEFAULT_MAX_PULL_ATTEMPTS: u32 = 6;

/// Where a node relays what it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relay {
    /// To this many random peers.
    Fanout(usize),
    /// To every peer.
    All,
}

/// Broadcast settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastConfig {
    /// How long a delivered id is remembered (duplicates within it are refused).
    pub seen_ttl: Duration,
    /// Most ids remembered; the oldest are forgotten early beyond it (counted).
    pub seen_capacity: usize,
    /// Payload bytes kept for peers that ask.
    pub store_bytes: u64,
    /// How long a payload is kept.
    pub store_ttl: Duration,
    /// Wait before pulling a message a relay announced (Plumtree's graft timer);
    /// announcements from the origin itself are pulled at once.
    pub graft_delay: Duration,
    /// Where a node that received a message announces it (the origin pushes the
    /// payload to every live member itself).
    pub relay: Relay,
    /// Time a pull waits before asking again: this plus [`Self::pull_per_mib`] per MiB.
    pub pull_base: Duration,
    /// Extra pull wait per MiB of payload.
    pub pull_per_mib: Duration,
    /// Attempts per pull.
    pub max_pull_attempts: u32,
    /// Messages pulled at once, at most.
    pub max_pulls: usize,
    /// Broadcasts tracked as origin, at most.
    pub max_tracked: usize,
    /// How often a node tells one random peer which messages it holds, so a peer
    /// that missed some (a partition, a crash) pulls them.
    pub digest_interval: Duration,
    /// Ids per digest, at most (the newest).
    pub digest_max_ids: usize,
}

impl Default for BroadcastConfig {
    fn default() -> Self {
        Self {
            seen_ttl: DEFAULT_SEEN_TTL,
            seen_capacity: DEFAULT_SEEN_CAPACITY,
            store_bytes: DEFAULT_STORE_BYTES,
            store_ttl: DEFAULT_STORE_TTL,
            graft_delay: DEFAULT_GRAFT_DELAY,
            relay: Relay::Fanout(3),
            pull_base: Duration::from_millis(250),
            pull_per_mib: Duration::from_millis(100),
            max_pull_attempts: DEFAULT_MAX_PULL_ATTEMPTS,
            max_pulls: DEFAULT_MAX_PULLS,
            max_tracked: DEFAULT_MAX_TRACKED,
            digest_interval: Duration::from_secs(2),
            digest_max_ids: 1024,
        }
    }
}

impl BroadcastConfig {
    /// How long to wait for a payload of `size` bytes once asked for.
    pub fn pull_timeout(&self, size: u64) -> Duration {
        self.pull_base
            + self
                .pull_per_mib
                .mul_f64(size as f64 / f64::from(1u32 << 20))
    }
}
