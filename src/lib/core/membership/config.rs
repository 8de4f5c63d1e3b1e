//! Membership protocol settings. `Default` is production-correct (LAN);
//! `for_test()` gives fast rounds for simulations.

use std::time::Duration;

/// Default probe and gossip round.
pub const DEFAULT_GOSSIP_INTERVAL: Duration = Duration::from_secs(1);
/// Default helpers asked to probe indirectly when a direct probe fails.
pub const DEFAULT_INDIRECT_PROBES: usize = 3;
/// Default peers sent pending updates each round (iarnet's `fanout`).
pub const DEFAULT_FANOUT: usize = 3;
/// Default retransmissions per update: `mult * ceil(log10(n + 1))`.
pub const DEFAULT_RETRANSMIT_MULT: u32 = 4;
/// Default minimum suspicion timeout in rounds, times `max(1, log10(n))`.
pub const DEFAULT_SUSPICION_MULT: f64 = 2.5;
/// Default ratio of the starting (longest) suspicion timeout to the minimum.
pub const DEFAULT_SUSPICION_MAX_MULT: f64 = 3.0;
/// Default independent confirmations that shrink a suspicion to its minimum.
pub const DEFAULT_SUSPICION_CONFIRMATIONS: usize = 3;
/// Default time a dead or left node stays listed before removal (iarnet's `node_ttl`).
pub const DEFAULT_NODE_TTL: Duration = Duration::from_secs(180);
/// Default time a removed node's last version is remembered, so stale gossip
/// cannot bring it back.
pub const DEFAULT_TOMBSTONE_TTL: Duration = Duration::from_secs(3600);
/// Default push-pull anti-entropy period.
pub const DEFAULT_ANTI_ENTROPY_INTERVAL: Duration = Duration::from_secs(10);
/// Longest period of the attempt to reach one dead node (Fabric's reconnect);
/// it is 5 rounds, between 1 s and this.
pub const DEFAULT_RECONNECT_INTERVAL: Duration = Duration::from_secs(10);
/// Shortest reconnect period.
pub const MIN_RECONNECT_INTERVAL: Duration = Duration::from_secs(1);
/// Default cap on members (and on tombstones); a full table fits one message.
pub const DEFAULT_MAX_MEMBERS: usize = 4096;
/// Default cap on updates carried by one probe or gossip message.
pub const DEFAULT_MAX_PIGGYBACK: usize = 8;
/// Default cap on pending updates.
pub const DEFAULT_MAX_QUEUED_UPDATES: usize = 1024;
/// Default cap on nodes heard of second-hand and waiting to be verified.
pub const DEFAULT_MAX_CANDIDATES: usize = 256;
/// Default cap on such nodes introduced by one source (a caller's address or
/// certificate identity).
pub const DEFAULT_MAX_CANDIDATES_PER_SOURCE: usize = 32;
/// Default time, in rounds, a node waits to be verified before it is forgotten.
pub const DEFAULT_CANDIDATE_TTL_ROUNDS: u32 = 30;
/// Default longest wait between attempts on a seed.
pub const DEFAULT_JOIN_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Default ceiling of the local health multiplier (Lifeguard).
pub const DEFAULT_MAX_LOCAL_HEALTH: u32 = 8;

/// SWIM + Lifeguard settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MembershipConfig {
    /// Round length: one probe and one gossip push per round.
    pub gossip_interval: Duration,
    /// Time a direct probe waits for its ack, before local-health scaling.
    pub probe_timeout: Duration,
    /// Helpers asked to probe a node that missed a direct probe.
    pub indirect_probes: usize,
    /// Peers pushed pending updates each round.
    pub fanout: usize,
    /// Retransmission multiplier for piggybacked updates.
    pub retransmit_mult: u32,
    /// Minimum suspicion timeout in rounds (times `max(1, log10(n))`).
    pub suspicion_mult: f64,
    /// Starting suspicion timeout as a multiple of the minimum.
    pub suspicion_max_mult: f64,
    /// Independent confirmations after which suspicion runs at its minimum.
    pub suspicion_confirmations: usize,
    /// How long dead and left nodes stay listed.
    pub node_ttl: Duration,
    /// How long removed nodes' versions are remembered.
    pub tombstone_ttl: Duration,
    /// Push-pull period.
    pub anti_entropy_interval: Duration,
    /// Dead-node reconnect period.
    pub reconnect_interval: Duration,
    /// Cap on members; new nodes beyond it are refused and counted.
    pub max_members: usize,
    /// Cap on updates per message.
    pub max_piggyback: usize,
    /// Cap on pending updates; the most retransmitted are dropped past it.
    pub max_queued_updates: usize,
    /// Ceiling of the local health multiplier.
    pub max_local_health: u32,
    /// Cap on nodes heard of second-hand and waiting for a probe of their own;
    /// further unknown nodes are dropped (counted) until room frees up.
    pub max_candidates: usize,
    /// Cap on those introduced by one source; further ones from it are dropped
    /// (counted), so one liar cannot crowd out real joiners.
    pub max_candidates_per_source: usize,
    /// How long such a node may wait for its verification to conclude.
    pub candidate_ttl: Duration,
    /// Every alive record about another member that reaches this core was
    /// checked against that member's own signature, so an unknown node is
    /// listed at once, without a verification probe or a second member host:
    /// a mass join costs no N^2 probes. Simulations only (`gsp bench
    /// membership-sim --tls`): a node certificate names a node but not its
    /// id, so one certificate could sign records of any number of made-up
    /// ids, and nodes keep verifying until certificates bind the id.
    pub records_signed: bool,
    /// Every record's name is its node certificate's (mutual TLS: the
    /// runtime checks each record's signature against a certificate of that
    /// name), so one name is one member: an unknown node named like an up
    /// member is refused, and a certificate holder cannot list made-up ids
    /// under its name.
    pub names_certified: bool,
    /// Longest wait between attempts on a seed that does not answer.
    pub join_backoff_max: Duration,
    /// Whether the periodic push-pull runs (iarnet's `use_anti_entropy`);
    /// joins, reconnects and the churn rounds' push-pulls run regardless.
    pub periodic_anti_entropy: bool,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        Self::with_interval(DEFAULT_GOSSIP_INTERVAL)
    }
}

impl MembershipConfig {
    /// Defaults scaled to a round of `interval` (probe timeout is half a round).
    pub fn with_interval(interval: Duration) -> Self {
        Self {
            gossip_interval: interval,
            probe_timeout: interval / 2,
            indirect_probes: DEFAULT_INDIRECT_PROBES,
            fanout: DEFAULT_FANOUT,
            retransmit_mult: DEFAULT_RETRANSMIT_MULT,
            suspicion_mult: DEFAULT_SUSPICION_MULT,
            suspicion_max_mult: DEFAULT_SUSPICION_MAX_MULT,
            suspicion_confirmations: DEFAULT_SUSPICION_CONFIRMATIONS,
            node_ttl: DEFAULT_NODE_TTL,
            tombstone_ttl: DEFAULT_TOMBSTONE_TTL,
            anti_entropy_interval: DEFAULT_ANTI_ENTROPY_INTERVAL,
            // After a partition heals, nothing reaches the far side until some
            // node tries a dead member; at 0.2 s rounds a 10 s period left the
            // sides apart for up to 10 s.
            reconnect_interval: (interval * 5)
                .clamp(MIN_RECONNECT_INTERVAL, DEFAULT_RECONNECT_INTERVAL),
            max_members: DEFAULT_MAX_MEMBERS,
            max_piggyback: DEFAULT_MAX_PIGGYBACK,
            max_queued_updates: DEFAULT_MAX_QUEUED_UPDATES,
            max_local_health: DEFAULT_MAX_LOCAL_HEALTH,
            max_candidates: DEFAULT_MAX_CANDIDATES,
            max_candidates_per_source: DEFAULT_MAX_CANDIDATES_PER_SOURCE,
            candidate_ttl: interval * DEFAULT_CANDIDATE_TTL_ROUNDS,
            records_signed: false,
            names_certified: false,
            join_backoff_max: DEFAULT_JOIN_BACKOFF_MAX,
            periodic_anti_entropy: true,
        }
    }

    /// Fast settings for simulations: 200 ms rounds, short TTLs.
    pub fn for_test() -> Self {
        Self {
            node_ttl: Duration::from_secs(10),
            tombstone_ttl: Duration::from_secs(60),
            anti_entropy_interval: Duration::from_secs(2),
            reconnect_interval: Duration::from_secs(2),
            ..Self::with_interval(Duration::from_millis(200))
        }
    }

    /// Minimum and maximum suspicion timeouts for a cluster of `n` members.
    pub fn suspicion_bounds(&self, n: usize) -> (Duration, Duration) {
        let scale = (n.max(1) as f64).log10().max(1.0);
        let min = self.gossip_interval.mul_f64(self.suspicion_mult * scale);
        (min, min.mul_f64(self.suspicion_max_mult.max(1.0)))
    }

    /// Times an update is piggybacked in a cluster of `n` members.
    pub fn retransmit_limit(&self, n: usize) -> u32 {
        let log = ((n + 1) as f64).log10().ceil();
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "log10 of a usize is small and positive"
        )]
        let log = log as u32;
        self.retransmit_mult * log.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspicion_scales_with_log_of_cluster_size() {
        let c = MembershipConfig::with_interval(Duration::from_millis(200));
        let (min5, max5) = c.suspicion_bounds(5);
        assert_eq!(min5, Duration::from_millis(500));
        assert_eq!(max5, Duration::from_millis(1500));
        let (min100, _) = c.suspicion_bounds(100);
        assert_eq!(min100, Duration::from_secs(1));
    }

    #[test]
    fn retransmits_grow_with_log_of_cluster_size() {
        let c = MembershipConfig::default();
        assert_eq!(c.retransmit_limit(1), 4);
        assert_eq!(c.retransmit_limit(50), 8);
        assert_eq!(c.retransmit_limit(100), 12);
    }
}
