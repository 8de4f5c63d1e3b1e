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

/// Default fanout of the swarm's trees (and number of trees a payload is
/// striped over). Measured on 16 network namespaces at 200 Mbit/s: 2 beats
/// 3 and 4 (fewer flows share each link; see docs/performance.md).
pub const DEFAULT_SWARM_FANOUT: usize = 2;
/// Default peer count beyond which large payloads go as a swarm.
pub const DEFAULT_SWARM_MIN_PEERS: usize = 8;
/// Default smallest payload sent as a swarm of pieces.
pub const DEFAULT_SWARM_MIN_BYTES: u64 = 256 << 10;
/// Default piece length (a larger one is used when the forwarding lists are
/// long, so they stay a small part of each piece).
pub const DEFAULT_PIECE_BYTES: u64 = 256 << 10;
/// Default cap on broadcasts being assembled from pieces at once.
pub const DEFAULT_MAX_ASSEMBLIES: usize = 64;

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
    /// Payloads of at least this many bytes, to more than
    /// [`Self::swarm_min_peers`] peers, travel as a swarm of pieces; smaller
    /// ones the origin pushes to every member itself.
    pub swarm_min_bytes: u64,
    /// Peers beyond which a large payload goes as a swarm: below it the
    /// origin's direct copies take one hop, and its upload is still small.
    pub swarm_min_peers: usize,
    /// Fanout of the swarm's trees, and how many trees the pieces are spread
    /// over: the origin uploads about one copy of the payload, and so does each
    /// forwarding node.
    pub swarm_fanout: usize,
    /// Piece length, at least.
    pub piece_bytes: u64,
    /// Bytes of node ids a piece's forwarding list may take; a cluster whose
    /// list is longer gets the direct push. Keep it under the data plane's
    /// chunk size.
    pub swarm_max_list_bytes: usize,
    /// Broadcasts being assembled from pieces at once, at most; a piece of
    /// another is refused (its sender routes around this node, which pulls the
    /// whole later).
    pub max_assemblies: usize,
    /// Bytes of partial broadcasts held at once, at most (the same refusal).
    pub assembly_bytes: u64,
    /// Time without a new piece after which a partial broadcast is pulled whole.
    pub swarm_stall: Duration,
    /// Retries of a payload send or a receipt message after the first
    /// attempt (timeouts, closed links; see `state/outbox.rs`).
    pub send_retries: u32,
    /// Wait before the first retry; doubles per retry.
    pub retry_backoff: Duration,
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
            swarm_min_bytes: DEFAULT_SWARM_MIN_BYTES,
            swarm_min_peers: DEFAULT_SWARM_MIN_PEERS,
            swarm_fanout: DEFAULT_SWARM_FANOUT,
            piece_bytes: DEFAULT_PIECE_BYTES,
            swarm_max_list_bytes: 512 << 10,
            max_assemblies: DEFAULT_MAX_ASSEMBLIES,
            assembly_bytes: DEFAULT_STORE_BYTES,
            swarm_stall: Duration::from_secs(2),
            send_retries: 4,
            retry_backoff: Duration::from_millis(100),
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
