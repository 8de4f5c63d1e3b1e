//! One node's protocol state: the member table plus what drives SWIM and Lifeguard
//! (probe order, suspicions, local health, pending updates).

use std::{collections::BTreeMap, time::Duration};

use super::{
    candidates::Candidates,
    config::MembershipConfig,
    events::{EventKind, MembershipEvent},
    queue::UpdateQueue,
    record::{MemberRecord, MemberState, RecordSigner, SharedRecord},
    suspicion::Suspicion,
    table::MemberTable,
};
use crate::{ids::NodeId, now::Now};

/// While updates back up, a message carries this share of the queue (one
/// quarter), when that is more than `max_piggyback`.
pub(super) const BACKLOG_SHARE: usize = 4;
/// A message carries at most this many times `max_piggyback` updates (64 at
/// the default 8, far under the 4,096 records a message may hold).
pub(super) const MAX_PACK_FACTOR: usize = 8;
/// The updates a message carries beyond `max_piggyback` add up to at most
/// this many bytes: 64 plain records are about 16 KiB, but records with many
/// labels or a certificate (mutual TLS) are several KiB each, and a packed
/// message is sent every round while the backlog lasts.
pub(super) const PACK_BYTES: usize = 32 << 10;

/// Protocol counters, for metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counters {
    /// New nodes refused because the table was full.
    pub refused_table_full: u64,
    /// Records ignored as not newer than what was known.
    pub stale_ignored: u64,
    /// Times this node refuted a suspicion or death claim about itself.
    pub refutations: u64,
    /// Suspicions that expired into a death.
    pub suspicions_expired: u64,
    /// Claims by others that a member is down at a version newer than the one
    /// known here, taken at the known version instead (only a node itself can
    /// raise its version).
    pub claims_clamped: u64,
    /// Claims that an unknown node is down, ignored.
    pub unknown_down_ignored: u64,
    /// Claims by others that a member is dead, taken as a suspicion because
    /// this node had no reason of its own to think it down (see
    /// [`Membership::apply_from`]).
    pub death_claims_doubted: u64,
    /// Unknown nodes dropped because the set waiting for verification was full.
    pub candidates_dropped: u64,
    /// Unknown nodes admitted after answering a probe of their own.
    pub candidates_verified: u64,
    /// Unknown nodes admitted because a second member host introduced them.
    pub candidates_vouched: u64,
    /// Unknown nodes listed at once on their own signature
    /// ([`MembershipConfig::records_signed`]).
    pub admitted_signed: u64,
    /// Vouches not granted: the introducer or the voucher had used its share
    /// of vouched listings in the window; the node must answer a probe.
    pub candidates_vouch_limited: u64,
    /// Unknown nodes that did not answer their verification probe (or answered
    /// as another node), or waited too long: never listed.
    pub candidates_refused: u64,
    /// Round probes that failed directly and through every helper.
    pub probe_failures: u64,
    /// Members this node marked left on an operator's word (`gsp force-leave`).
    pub forced_leaves: u64,
    /// Records about an alive member that would list it down, or change its
    /// maintenance state or address, held until the member is asked (one
    /// check per member per round, whatever the claims' rate).
    pub claims_held: u64,
    /// Checks the member answered: the claims held for it were dropped.
    pub claims_refuted: u64,
    /// Checks the member did not answer: the claim held for it was weighed,
    /// with this node's own failed probe behind it.
    pub claims_unanswered: u64,
    /// Unknown nodes refused because an up member already advertises their
    /// address (one member per host:port).
    pub refused_address_taken: u64,
    /// Unknown nodes refused because an up member already holds their
    /// certified name (one member per node certificate).
    pub refused_name_taken: u64,
}

/// Something to push at once rather than at the next round.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Urgent {
    /// A member's state changed: push its record as it is when sent.
    Changed(NodeId),
    /// Another node confirmed a suspicion: push that node's suspect record.
    Confirmation(SharedRecord),
}

/// A node to probe this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    /// Its id (sent, so a different node now at the address can say so).
    pub id: NodeId,
    /// Where to reach it.
    pub address: String,
}

/// A member as listed by `gsp peers`.
#[derive(Debug, Clone)]
pub struct MemberView {
    /// The record.
    pub record: MemberRecord,
    /// Whether it is this node.
    pub local: bool,
    /// When this node last heard first-hand that it is up, unix nanoseconds.
    pub last_seen_unix_ns: i64,
    /// How long it has been in its state.
    pub in_state_for: Duration,
}

/// The protocol state of one node.
#[derive(Debug)]
pub struct Membership {
    config: MembershipConfig,
    local: SharedRecord,
    table: MemberTable,
    /// Nodes heard of second-hand, listed only once they answer a probe.
    candidates: Candidates,
    /// Claims about alive members waiting for the member's word (see
    /// [`checks`]), and when each member was last asked.
    claims: BTreeMap<NodeId, checks::Claim>,
    queue: UpdateQueue,
    suspicions: BTreeMap<NodeId, Suspicion>,
    health: u32,
    probe_order: Vec<NodeId>,
    probe_next: usize,
    /// Members that came up since the probe order was built; slotted into the
    /// rest of the current pass at random places, so they are probed this pass.
    probe_newcomers: Vec<NodeId>,
    events: Vec<MembershipEvent>,
    /// Members whose state just changed (or this node, after a refutation): their
    /// records are worth pushing at once rather than at the next round.
    urgent: Vec<Urgent>,
    counters: Counters,
    /// Signs every record this node publishes about itself (under TLS).
    signer: Option<std::sync::Arc<dyn RecordSigner>>,
    /// Probes in flight and the round schedule (see [`swim`]).
    cycle: swim::Cycle,
    /// When dead and left members were last looked for removal.
    last_reap: Option<std::time::Instant>,
    /// When a member last joined or changed state here (see [`swim`]'s sync).
    last_change: Option<std::time::Instant>,
    /// Records being merged came in a push-pull: the peer had them, and the
    /// push-pulls of the churn rounds spread them; queueing them for gossip
    /// made a joiner re-send its seed's whole table, many times over.
    syncing: bool,
}

impl Membership {
    /// State for a node starting with `local` as its record.
    pub fn new(config: MembershipConfig, local: MemberRecord, now: Now) -> Self {
        let local = SharedRecord::new(local);
        let mut table = MemberTable::new(config.max_members);
        table.put(local.clone(), now);
        let mut queue = UpdateQueue::new(config.max_queued_updates);
        queue.push(local.clone());
        let candidates = Candidates::new(
            config.max_candidates,
            config.max_candidates_per_source,
            config.candidate_ttl,
        );
        Self {
            config,
            local,
            table,
            candidates,
            claims: BTreeMap::new(),
            queue,
            suspicions: BTreeMap::new(),
            health: 0,
            probe_order: Vec::new(),
            probe_next: 0,
            probe_newcomers: Vec::new(),
            events: Vec::new(),
            urgent: Vec::new(),
            counters: Counters::default(),
            signer: None,
            cycle: swim::Cycle::default(),
            last_reap: None,
            last_change: None,
            syncing: false,
        }
    }

    /// Signs this node's records from now on, starting with the current one
    /// (published again, signed).
    pub fn set_signer(&mut self, signer: std::sync::Arc<dyn RecordSigner>, now: Now) {
        self.signer = Some(signer);
        let r = MemberRecord::clone(&self.local);
        self.set_local(r, now);
    }

    /// The settings.
    pub fn config(&self) -> &MembershipConfig {
        &self.config
    }

    /// This node's own record.
    pub fn local(&self) -> &SharedRecord {
        &self.local
    }

    /// Changes this node's record and publishes it under a new version.
    pub fn update_local(&mut self, now: Now, change: impl FnOnce(&mut MemberRecord)) {
        let mut r = MemberRecord::clone(&self.local);
        change(&mut r);
        r.id = self.local.id.clone();
        r.version = self.local.version.next(now.unix_ns);
        r.updated_unix_ns = now.unix_ns;
        let kind = if r.maintenance == self.local.maintenance {
            EventKind::Updated
        } else {
            self.mark_urgent(&r.id);
            EventKind::Maintenance
        };
        self.events
            .push(MembershipEvent::new(kind, &r, now.unix_ns));
        self.set_local(r, now);
    }

    fn set_local(&mut self, mut r: MemberRecord, now: Now) {
        r.proof = None;
        r.proof = self.signer.as_ref().and_then(|s| s.sign_record(&r));
        let r = SharedRecord::new(r);
        self.local = SharedRecord::clone(&r);
        self.table.put(SharedRecord::clone(&r), now);
        self.queue.push(r);
    }

    /// Updates to carry on a probe or gossip message. A message to a node held
    /// suspect, dead or forced out here carries that claim first, so it can
    /// refute at once (Lifeguard's buddy system).
    pub fn piggyback(&mut self, to: Option<&NodeId>) -> Vec<SharedRecord> {
        let mut out = Vec::new();
        if let Some(id) = to
            && let Some(e) = self.table.get(id)
            && (matches!(e.record.state, MemberState::Suspect | MemberState::Dead)
                || force::is_forced_leave(&e.record))
        {
            out.push(e.record.clone());
        }
        let limit = self.config.retransmit_limit(self.table.len());
        let free = self.config.max_piggyback.saturating_sub(out.len());
        let room = self.piggyback_room().saturating_sub(out.len());
        for r in self.queue.take_within(free, room, PACK_BYTES, limit) {
            if !out.iter().any(|o| o.id == r.id) {
                out.push(r);
            }
        }
        out
    }

    /// Updates one message carries: `max_piggyback`, or while a backlog
    /// waits (after a mass join every node queues hundreds), a
    /// [`BACKLOG_SHARE`]th of it, up to [`MAX_PACK_FACTOR`] times as many and
    /// [`PACK_BYTES`] beyond the usual, as memberlist fills each packet to its
    /// MTU. The same transmissions in
    /// fewer rounds: simulated, 2,000 nodes' queues emptied 4 rounds after
    /// the join instead of 34, with the same idle traffic.
    fn piggyback_room(&self) -> usize {
        let base = self.config.max_piggyback;
        base.max(self.queue.len() / BACKLOG_SHARE)
            .min(base.saturating_mul(MAX_PACK_FACTOR))
    }

    /// Whether updates are waiting to be disseminated.
    pub fn has_pending_updates(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Updates waiting to be disseminated.
    pub fn pending_updates(&self) -> usize {
        self.queue.len()
    }

    /// Queues `id`'s record to be pushed at once (once, however often it changes
    /// before the spreader takes it).
    fn mark_urgent(&mut self, id: &NodeId) {
        if !self
            .urgent
            .iter()
            .any(|u| matches!(u, Urgent::Changed(x) if x == id))
        {
            self.urgent.push(Urgent::Changed(id.clone()));
        }
    }

    /// Announces a graceful leave: publishes its current version in state
    /// left (left outranks alive at one version). Not a newer one: peers take
    /// a record in any state but alive at the version they know (only the
    /// member raises its version, and a record saying it left may come from
    /// anyone), so a leave at a newer version would be listed at two versions.
    pub fn leave(&mut self, now: Now) -> MemberRecord {
        let mut r = MemberRecord::clone(&self.local);
        r.state = MemberState::Left;
        r.updated_unix_ns = now.unix_ns;
        self.events
            .push(MembershipEvent::new(EventKind::Left, &r, now.unix_ns));
        self.set_local(r.clone(), now);
        r
    }
}

mod checks;
pub mod force;
mod merge;
mod probes;
pub mod swim;
mod targets;
mod verify;
mod view;

#[cfg(test)]
mod force_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_forged;
#[cfg(test)]
mod tests_heal;
