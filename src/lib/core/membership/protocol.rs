//! One node's protocol state: the member table plus what drives SWIM and Lifeguard
//! (probe order, suspicions, local health, pending updates).

use std::{collections::BTreeMap, time::Duration};

use super::{
    candidates::{Candidates, Source},
    claims,
    config::MembershipConfig,
    events::{EventKind, MembershipEvent},
    queue::UpdateQueue,
    record::{MemberRecord, MemberState, RecordSigner, SharedRecord},
    suspicion::Suspicion,
    table::{Applied, MemberTable},
};
use crate::core::{ids::NodeId, now::Now};

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

/// How often [`Membership::tick`] looks for members to remove.
const REAP_EVERY: Duration = Duration::from_secs(1);

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

    /// Merges one record learnt from a peer (second-hand: whoever sent it may not
    /// be the node it is about).
    ///
    /// A node not known here is not listed on a peer's word: an alive record of
    /// it waits until the node answers a probe of its own (see
    /// [`Self::take_unverified`]); a claim that it is down is ignored. A claim
    /// that a known member is suspect, dead or gone never raises its version:
    /// only the member itself does that, so a liar cannot put a claim out of the
    /// member's reach.
    pub fn apply(&mut self, record: impl Into<SharedRecord>, now: Now) -> Applied {
        self.apply_from(record.into(), None, now)
    }

    /// [`Self::apply`] for a record that `source` (the caller's certificate
    /// identity or address) delivered: one source may have at most
    /// `max_candidates_per_source` unknown nodes waiting for verification.
    pub fn apply_from(
        &mut self,
        record: SharedRecord,
        source: Option<Source<'_>>,
        now: Now,
    ) -> Applied {
        if record.id == self.local.id {
            return self.apply_about_self(&record, now);
        }
        let Some(known) = self.table.get(&record.id) else {
            return self.offer_unknown(record, source, now);
        };
        if record.state == MemberState::Alive
            && known.record.state == MemberState::Dead
            && record.version == known.record.version
        {
            // Someone still sees the member up at the very version it died at
            // here: the member never heard of that verdict (a healed
            // partition). Saying it again lets the claim reach the member,
            // which refutes, instead of waiting for a reconnect attempt.
            self.queue.push(known.record.clone());
        }
        let (mut record, clamped) = claims::at_known_version(&known.record, record);
        if clamped {
            self.counters.claims_clamped += 1;
        }
        if force::is_forced_leave(&record) && known.record.state.is_up() {
            // Someone was told the member is gone, but here it is up: weighed
            // as a death claim, so a running member hears it and refutes.
            SharedRecord::make_mut(&mut record).state = MemberState::Dead;
        }
        if record.state == MemberState::Dead
            && known.record.state.is_up()
            && !self.has_own_doubts(&record.id, now)
        {
            let record = SharedRecord::make_mut(&mut record);
            // Someone else's verdict, and nothing here agrees: a stale claim
            // from the far side of a healed partition, or from a node that
            // could not reach the member. Taken as a suspicion: the member
            // hears of it (buddy system) and refutes, or this node's own timer
            // and last probe find it dead.
            record.state = MemberState::Suspect;
            self.counters.death_claims_doubted += 1;
        }
        self.merge(record, now)
    }

    /// Whether this node itself has reason to believe `id` down: it has
    /// suspected it for a gossip round at least, and heard nothing of it being
    /// up since the suspicion began.
    fn has_own_doubts(&self, id: &NodeId, now: Now) -> bool {
        let (Some(s), Some(e)) = (self.suspicions.get(id), self.table.get(id)) else {
            return false;
        };
        let age = now.instant.saturating_duration_since(s.started());
        let silent_ns = now.unix_ns.saturating_sub(e.last_seen_unix_ns);
        let silent = u128::try_from(silent_ns).unwrap_or(0);
        age >= self.config.gossip_interval && silent >= age.as_nanos()
    }

    fn merge(&mut self, record: SharedRecord, now: Now) -> Applied {
        let id = record.id.clone();
        let old_maintenance = self.table.get(&id).map(|e| e.record.maintenance);
        let (applied, event) = self.table.apply(SharedRecord::clone(&record), now);
        match &applied {
            Applied::New | Applied::Changed { .. } => {
                // Maintenance changes spread as fast as state changes: the cluster
                // should stop sending a drained node work within seconds.
                let changed_state = match &applied {
                    Applied::Changed { from } => {
                        *from != record.state || old_maintenance != Some(record.maintenance)
                    }
                    _ => true,
                };
                let was_down = match &applied {
                    Applied::Changed { from } => !from.is_up(),
                    _ => true,
                };
                if record.state.is_up() && was_down {
                    self.probe_newcomers.push(id.clone());
                }
                if changed_state {
                    if !self.syncing {
                        self.mark_urgent(&id);
                    }
                    self.last_change = Some(now.instant);
                }
                if record.state == MemberState::Suspect {
                    let by = record.suspected_by.clone().unwrap_or_else(|| id.clone());
                    self.start_suspicion(id, by, now);
                } else {
                    self.suspicions.remove(&id);
                }
                if !self.syncing {
                    self.queue.push(record);
                }
            }
            Applied::Confirmed => {
                if let (Some(s), Some(by)) =
                    (self.suspicions.get_mut(&id), record.suspected_by.clone())
                    && s.confirm(by)
                {
                    // A confirmation shortens every timer only while fewer than the
                    // wanted number are known: spread those at once.
                    if s.confirmations() <= self.config.suspicion_confirmations {
                        self.urgent
                            .push(Urgent::Confirmation(SharedRecord::clone(&record)));
                    }
                    self.queue.push(record);
                }
            }
            Applied::Stale => {
                self.counters.stale_ignored += 1;
                let limit = self.config.retransmit_limit(self.table.len());
                self.queue.heard_again(&record, limit);
            }
            Applied::TableFull => self.counters.refused_table_full += 1,
            Applied::Unverified => {}
        }
        if let Some(e) = event {
            self.events.push(e);
        }
        applied
    }

    /// Someone says something about this node. A claim that it is suspect, dead or
    /// gone at its current version (or a record of its id newer than its own, from
    /// a clone or a clock step) is refuted by publishing a newer alive version.
    fn apply_about_self(&mut self, record: &MemberRecord, now: Now) -> Applied {
        let claims_down =
            record.state != MemberState::Alive && record.version >= self.local.version;
        let newer = record.version > self.local.version;
        if !(claims_down || newer) {
            return Applied::Stale;
        }
        // Refutation always wins: the answer is newer than the claim, whatever
        // (acceptable) version the claim carries.
        let mut r = MemberRecord::clone(&self.local);
        r.version = self.local.version.max(record.version).next(now.unix_ns);
        r.state = MemberState::Alive;
        r.suspected_by = None;
        r.updated_unix_ns = now.unix_ns;
        self.counters.refutations += 1;
        self.mark_urgent(&r.id);
        // Lifeguard: being suspected suggests this node is the slow one.
        self.health = (self.health + 1).min(self.config.max_local_health);
        self.set_local(r, now);
        Applied::Changed {
            from: MemberState::Alive,
        }
    }

    /// [`Self::apply_all_from`] for records a push-pull brought: merged, but
    /// not queued for gossip nor pushed at once (see `syncing`).
    pub fn apply_synced(
        &mut self,
        records: impl IntoIterator<Item = impl Into<SharedRecord>>,
        source: Option<Source<'_>>,
        now: Now,
    ) -> usize {
        let was = std::mem::replace(&mut self.syncing, true);
        let n = self.apply_all_from(records, source, now);
        self.syncing = was;
        n
    }

    /// Merges records; returns how many changed the table.
    pub fn apply_all(
        &mut self,
        records: impl IntoIterator<Item = impl Into<SharedRecord>>,
        now: Now,
    ) -> usize {
        self.apply_all_from(records, None, now)
    }

    /// [`Self::apply_all`] for records `source` delivered (see [`Self::apply_from`]).
    pub fn apply_all_from(
        &mut self,
        records: impl IntoIterator<Item = impl Into<SharedRecord>>,
        source: Option<Source<'_>>,
        now: Now,
    ) -> usize {
        records
            .into_iter()
            .map(|r| self.apply_from(r.into(), source, now))
            .filter(|a| matches!(a, Applied::New | Applied::Changed { .. }))
            .count()
    }

    /// A probe of `id` was answered.
    pub fn probe_succeeded(&mut self, id: &NodeId, now: Now) {
        self.table.heard_from(id, now);
        self.health = self.health.saturating_sub(1);
    }

    /// A probe of `id` failed, directly and through every helper. `missed_nacks`
    /// says helpers did not even answer, which points at this node (Lifeguard).
    pub fn probe_failed(&mut self, id: &NodeId, missed_nacks: bool, now: Now) {
        if missed_nacks {
            self.health = (self.health + 1).min(self.config.max_local_health);
        }
        let Some(entry) = self.table.get(id) else {
            return;
        };
        if !entry.record.state.is_up() {
            return;
        }
        let mut suspect = MemberRecord::clone(&entry.record);
        suspect.state = MemberState::Suspect;
        suspect.suspected_by = Some(self.local.id.clone());
        self.apply(suspect, now);
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
        let room = self.config.max_piggyback.saturating_sub(out.len());
        for r in self.queue.take(room, limit) {
            if !out.iter().any(|o| o.id == r.id) {
                out.push(r);
            }
        }
        out
    }

    /// Whether updates are waiting to be disseminated.
    pub fn has_pending_updates(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Updates waiting to be disseminated.
    pub fn pending_updates(&self) -> usize {
        self.queue.len()
    }

    /// Advances timers. Returns the suspects whose suspicion expired: the caller
    /// probes each one last time and reports back with [`Self::expired_suspect_answered`]
    /// or [`Self::expired_suspect_silent`]. Nodes dead or left for the node TTL are
    /// removed.
    pub fn tick(&mut self, now: Now) -> Vec<ProbeTarget> {
        let expired: Vec<NodeId> = self
            .suspicions
            .iter()
            .filter(|(_, s)| s.deadline() <= now.instant)
            .map(|(id, _)| id.clone())
            .collect();
        let mut due = Vec::new();
        for id in expired {
            self.suspicions.remove(&id);
            if let Some(e) = self.table.get(&id)
                && e.record.state == MemberState::Suspect
            {
                due.push(ProbeTarget {
                    id,
                    address: e.record.address.clone(),
                });
            }
        }
        self.counters.candidates_refused += self.candidates.expire(now.instant) as u64;
        // Removal works in seconds to hours: a scan of the table once a second
        // is enough, and keeps a round's cost independent of the table's size.
        if self
            .last_reap
            .is_some_and(|at| now.instant.saturating_duration_since(at) < REAP_EVERY)
        {
            return due;
        }
        self.last_reap = Some(now.instant);
        let removed = self.table.reap(
            &self.local.id,
            self.config.node_ttl,
            self.config.tombstone_ttl,
            now,
        );
        for e in &removed {
            self.suspicions.remove(&e.id);
        }
        self.events.extend(removed);
        due
    }

    /// An expired suspect answered its last probe: it is up, so its suspicion starts
    /// over (its refutation is on its way) instead of turning into a death.
    pub fn expired_suspect_answered(&mut self, id: &NodeId, now: Now) {
        self.table.heard_from(id, now);
        if let Some(e) = self.table.get(id)
            && e.record.state == MemberState::Suspect
            && !self.suspicions.contains_key(id)
        {
            let by = e
                .record
                .suspected_by
                .clone()
                .unwrap_or_else(|| self.local.id.clone());
            self.start_suspicion(id.clone(), by, now);
        }
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

    /// Starts (or restarts) the suspicion timer of `id`, first raised by `by`,
    /// sized for the current cluster.
    fn start_suspicion(&mut self, id: NodeId, by: NodeId, now: Now) {
        let (min, max) = self.config.suspicion_bounds(self.table.up_count());
        self.suspicions.insert(
            id,
            Suspicion::new(
                by,
                now.instant,
                min,
                max,
                self.config.suspicion_confirmations,
            ),
        );
    }

    /// An expired suspect did not answer its last probe either: it is dead.
    pub fn expired_suspect_silent(&mut self, id: &NodeId, now: Now) {
        let Some(e) = self.table.get(id) else {
            return;
        };
        if e.record.state != MemberState::Suspect || self.suspicions.contains_key(id) {
            return;
        }
        let mut dead = MemberRecord::clone(&e.record);
        dead.state = MemberState::Dead;
        dead.suspected_by = None;
        self.counters.suspicions_expired += 1;
        // This node's own verdict: merged as is, not weighed like a claim.
        self.merge(dead.into(), now);
    }

    /// Announces a graceful leave: publishes a newer version in state left.
    pub fn leave(&mut self, now: Now) -> MemberRecord {
        let mut r = MemberRecord::clone(&self.local);
        r.version = r.version.next(now.unix_ns);
        r.state = MemberState::Left;
        r.updated_unix_ns = now.unix_ns;
        self.events
            .push(MembershipEvent::new(EventKind::Left, &r, now.unix_ns));
        self.set_local(r.clone(), now);
        r
    }
}

#[path = "protocol_force.rs"]
pub mod force;
#[path = "swim.rs"]
pub mod swim;
#[path = "protocol_targets.rs"]
mod targets;
#[path = "protocol_verify.rs"]
mod verify;
#[path = "protocol_view.rs"]
mod view;

#[cfg(test)]
#[path = "protocol_force_tests.rs"]
mod force_tests;
#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
#[cfg(test)]
#[path = "protocol_tests_heal.rs"]
mod tests_heal;
