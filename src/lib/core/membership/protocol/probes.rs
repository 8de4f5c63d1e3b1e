//! What probes find and what time does: probe outcomes, suspicion timers
//! that expire into a last probe and then a death, and the removal of members
//! dead or left for long enough.

use std::time::Duration;

use super::{Membership, ProbeTarget};
use crate::{
    ids::NodeId,
    membership::{
        record::{MemberRecord, MemberState},
        suspicion::Suspicion,
    },
    now::Now,
};

/// How often [`Membership::tick`] looks for members to remove.
const REAP_EVERY: Duration = Duration::from_secs(1);

impl Membership {
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
        // This node's own verdict: merged as is, not held like a claim.
        self.merge(suspect.into(), now);
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

    /// Starts (or restarts) the suspicion timer of `id`, first raised by `by`,
    /// sized for the current cluster.
    pub(super) fn start_suspicion(&mut self, id: NodeId, by: NodeId, now: Now) {
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
}
