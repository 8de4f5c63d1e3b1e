//! Claims checked with the member they are about. A record from a peer that
//! would list an alive member down (suspect, dead, left), drained or moved is
//! not merged on that peer's word: the member is probed (a check, run by the
//! SWIM cycle like a round's probe, asking for its own record), and
//! - if it answers, its own record is merged first-hand and the claims held
//!   for it are dropped;
//! - if neither it nor the helpers reach it, the claim is weighed with this
//!   node's own failed probe behind it: a down claim makes it suspect here, its
//!   own leave (it is gone) makes it left, a newer record of it is merged.
//!
//! One check per member per round, however many claims arrive: a stranger
//! repeating a forged claim costs each node it reaches one probe of the victim
//! a round, and never lists the victim down. Claims held are one per member
//! (the strongest), so the set is bounded by the member table.

use std::time::Instant;

use super::{Membership, force, swim::Action};
use crate::{
    ids::NodeId,
    membership::{
        ProbeTarget,
        record::{MemberState, SharedRecord},
        table::Applied,
    },
    now::Now,
};

/// One member's claims and checks.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    /// The strongest claim heard since the last check began (`None`: none
    /// waiting; the entry only paces the next check).
    record: Option<SharedRecord>,
    /// A check of the member is in flight.
    checking: bool,
    /// No check starts before this: one per member per round.
    not_before: Instant,
}

impl Membership {
    /// Holds `record` (a claim about an alive member, see
    /// [`super::super::claims::needs_members_word`]) until the member is asked.
    pub(super) fn hold_claim(&mut self, record: SharedRecord, now: Now) -> Applied {
        self.counters.claims_held += 1;
        let c = self.claims.entry(record.id.clone()).or_insert(Claim {
            record: None,
            checking: false,
            not_before: now.instant,
        });
        if c.record.as_ref().is_none_or(|held| record.supersedes(held)) {
            c.record = Some(record);
        }
        Applied::Held
    }

    /// Claims held, waiting for a check or in one.
    pub fn claims_waiting(&self) -> usize {
        self.claims.values().filter(|c| c.record.is_some()).count()
    }

    /// Whether a held claim's check may start now (it is due and a probe slot
    /// is free): the runtime then feeds [`super::swim::Input::Changed`].
    pub fn has_claims_due(&self, now: Now) -> bool {
        self.cycle.in_flight() < super::swim::MAX_PROBES_IN_FLIGHT
            && self.claims.values().any(|c| Self::due(c, now))
    }

    fn due(c: &Claim, now: Now) -> bool {
        c.record.is_some() && !c.checking && c.not_before <= now.instant
    }

    /// Starts the checks that are due, as many as probe slots allow; forgets
    /// the pacing of members checked over a round ago.
    pub(super) fn start_checks(&mut self, now: Now, out: &mut Vec<Action>) {
        if self.claims.is_empty() {
            return;
        }
        self.claims
            .retain(|_, c| c.record.is_some() || c.checking || c.not_before > now.instant);
        let due: Vec<NodeId> = self
            .claims
            .iter()
            .filter(|(_, c)| Self::due(c, now))
            .map(|(id, _)| id.clone())
            .collect();
        let round = self.probe_interval();
        for id in due {
            let target = match self.table.get(&id) {
                Some(e) if e.record.state == MemberState::Alive => ProbeTarget {
                    id: id.clone(),
                    address: e.record.address.clone(),
                },
                // Down here by now (this node's own probe, or the member's
                // own word): the claim is weighed like any other.
                Some(_) => {
                    if let Some(r) = self.claims.remove(&id).and_then(|c| c.record) {
                        self.weigh(r, now);
                    }
                    continue;
                }
                None => {
                    self.claims.remove(&id);
                    continue;
                }
            };
            if !self.start_probe(target, super::swim::Purpose::Check, round, now, out) {
                return;
            }
            if let Some(c) = self.claims.get_mut(&id) {
                c.checking = true;
            }
        }
    }

    /// The member answered its check: the claims held for it are dropped (its
    /// own record, if its answer carried one, was merged first-hand).
    pub(super) fn claim_answered(&mut self, id: &NodeId, now: Now) {
        self.probe_succeeded(id, now);
        let next = now.instant + self.config.gossip_interval;
        if let Some(c) = self.claims.get_mut(id) {
            c.checking = false;
            c.not_before = next;
            if c.record.take().is_some() {
                self.counters.claims_refuted += 1;
            }
        }
    }

    /// Nobody reached the member for its check: the claim held is weighed
    /// with this node's failed probe behind it.
    pub(super) fn claim_unanswered(&mut self, id: &NodeId, now: Now) {
        let next = now.instant + self.config.gossip_interval;
        let Some(record) = self.claims.get_mut(id).and_then(|c| {
            c.checking = false;
            c.not_before = next;
            c.record.take()
        }) else {
            return;
        };
        self.counters.claims_unanswered += 1;
        match record.state {
            // Gone, by its own account (or a forgery nobody can refute: the
            // member cannot be reached): listed left, not suspected first.
            MemberState::Left if !force::is_forced_leave(&record) => {
                self.merge(record, now);
            }
            // A newer record of it (drained, or moved away from the address
            // that no longer answers).
            MemberState::Alive => {
                self.merge(record, now);
            }
            _ => {
                self.probe_failed(id, false, now);
                self.weigh(record, now);
            }
        }
    }

    /// Merges what `from` answered to this node's direct probe: the records
    /// it gives about itself are first-hand (it answered at its address, as
    /// itself), so they are merged without a check; the rest like any peer's.
    pub fn apply_answer(&mut self, from: &NodeId, updates: Vec<SharedRecord>, now: Now) {
        let (own, rest): (Vec<_>, Vec<_>) = updates.into_iter().partition(|r| &r.id == from);
        for r in own {
            let first_hand = r.id != self.local.id
                && self.table.get(&r.id).is_some()
                && matches!(r.state, MemberState::Alive | MemberState::Left)
                && r.suspected_by.is_none();
            if first_hand {
                self.merge(r, now);
            } else {
                self.apply(r, now);
            }
        }
        self.apply_all(rest, now);
    }
}
