//! Taking in what peers say: records merged into the table, claims about
//! members weighed against what this node knows, claims about this node
//! refuted.

use super::{Membership, Urgent, force};
use crate::membership::events::EventKind;
use crate::{
    ids::NodeId,
    membership::{
        candidates::Source,
        claims,
        record::{MemberRecord, MemberState, SharedRecord},
        table::Applied,
    },
    now::Now,
};

impl Membership {
    /// Merges one record learnt from a peer (second-hand: whoever sent it may not
    /// be the node it is about).
    ///
    /// A node not known here is not listed on a peer's word: an alive record of
    /// it waits until the node answers a probe of its own (see
    /// [`Self::take_unverified`]); a claim that it is down is ignored. A claim
    /// that a known member is suspect, dead or gone never raises its version:
    /// only the member itself does that, so a liar cannot put a claim out of the
    /// member's reach. And an alive member is not listed down, drained or moved
    /// on a peer's word: such a record is held until the member is asked
    /// ([`Applied::Held`], see `protocol/checks.rs`).
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
        if record == known.record {
            // The record listed here, heard again: the common case once a
            // cluster has settled, and by far the most common during a mass
            // join (each record arrives about five times per node at 1,000
            // nodes). Stale by every rule below, which would look it up
            // twice more to say so.
            return self.heard_stale(&record);
        }
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
        let (record, clamped) = claims::at_known_version(&known.record, record);
        if clamped {
            self.counters.claims_clamped += 1;
        }
        if claims::needs_members_word(&known.record, &record) {
            return self.hold_claim(record, now);
        }
        self.weigh(record, now)
    }

    /// Merges a record about a member, weighed as a claim where it is one: a
    /// force-leave of a member up here counts as a death claim (a running
    /// member hears it and refutes), and a death claim this node has no
    /// doubts of its own about counts as a suspicion.
    pub(super) fn weigh(&mut self, mut record: SharedRecord, now: Now) -> Applied {
        let up_here = self
            .table
            .get(&record.id)
            .is_some_and(|e| e.record.state.is_up());
        if force::is_forced_leave(&record) && up_here {
            // Someone was told the member is gone, but here it is up: weighed
            // as a death claim, so a running member hears it and refutes.
            SharedRecord::make_mut(&mut record).state = MemberState::Dead;
        }
        if record.state == MemberState::Dead && up_here && !self.has_own_doubts(&record.id, now) {
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

    pub(super) fn merge(&mut self, record: SharedRecord, now: Now) -> Applied {
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
                self.heard_stale(&record);
            }
            Applied::TableFull => self.counters.refused_table_full += 1,
            Applied::Unverified | Applied::Held => {}
        }
        if let Some(e) = event {
            if e.kind == EventKind::AliveAgain {
                self.cycle.upkeep.note_heal();
            }
            self.events.push(e);
        }
        applied
    }

    /// A record not newer than the one listed: counted, and one more
    /// transmission of the queued copy (see [`super::queue::UpdateQueue::heard_again`]).
    fn heard_stale(&mut self, record: &MemberRecord) -> Applied {
        self.counters.stale_ignored += 1;
        let limit = self.config.retransmit_limit(self.table.len());
        self.queue.heard_again(record, limit);
        Applied::Stale
    }

    /// Someone says something about this node. A claim that it is suspect, dead or
    /// gone at its current version (or a record of its id newer than its own, from
    /// a clone or a clock step) is refuted by publishing a newer alive version.
    fn apply_about_self(&mut self, record: &MemberRecord, now: Now) -> Applied {
        if self.local.state == MemberState::Left {
            // Leaving: nothing to refute any more.
            return Applied::Stale;
        }
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
}
