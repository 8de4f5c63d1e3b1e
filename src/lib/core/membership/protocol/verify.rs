//! Nodes heard of second-hand: listed only once they answer a probe of their own.

use super::Membership;
use crate::{
    ids::NodeId,
    membership::{
        ProbeTarget,
        candidates::{Offered, Source},
        record::{MemberRecord, MemberState, SharedRecord},
        table::Applied,
    },
    now::Now,
};

impl Membership {
    /// Merges a record heard first-hand: the node answered a probe at the
    /// record's address. Lists it if it was unknown.
    pub fn admit(&mut self, record: impl Into<SharedRecord>, now: Now) -> Applied {
        let record = record.into();
        if record.id == self.local.id || self.table.get(&record.id).is_some() {
            return self.apply(record, now);
        }
        self.candidates.remove(&record.id);
        if self.holder_conflict(&record) {
            return Applied::Stale;
        }
        self.merge(record, now)
    }

    /// Whether listing `record` (a node not listed here) would make it a
    /// second up member at an address an up member advertises, or, with
    /// certified names ([`MembershipConfig::names_certified`]), under a name an
    /// up member holds: counted, and refused. One host:port is one member
    /// (a restart under a new incarnation is the same member, newer), so a
    /// host that answers probes as any id it is asked about still lists one
    /// member per socket it listens on; a node restarted with a new id at the
    /// old address is listed once the old id is no longer up there.
    ///
    /// [`MembershipConfig::names_certified`]: crate::membership::config::MembershipConfig::names_certified
    fn holder_conflict(&mut self, record: &MemberRecord) -> bool {
        if !record.state.is_up() {
            return false;
        }
        if self
            .table
            .up_at_address(&record.address, &record.id)
            .is_some()
        {
            self.counters.refused_address_taken += 1;
            return true;
        }
        if self.config.names_certified && self.table.up_named(&record.name, &record.id).is_some() {
            self.counters.refused_name_taken += 1;
            return true;
        }
        false
    }

    pub(super) fn offer_unknown(
        &mut self,
        record: SharedRecord,
        source: Option<Source<'_>>,
        now: Now,
    ) -> Applied {
        if !record.state.is_up() {
            self.counters.unknown_down_ignored += 1;
            return Applied::Stale;
        }
        if let Some(v) = self.table.tombstone_version(&record.id)
            && record.version <= v
        {
            if record.version == v {
                // Up at the very version this node buried it at: the member
                // never heard it was declared dead here (a partition that
                // outlasted the node TTL). Saying so again lets the claim reach
                // it, and its refutation brings it back everywhere.
                let mut claim = MemberRecord::clone(&record);
                claim.state = MemberState::Dead;
                claim.suspected_by = None;
                self.queue.push(claim);
            }
            self.counters.stale_ignored += 1;
            return Applied::Stale;
        }
        if self.holder_conflict(&record) {
            return Applied::Stale;
        }
        if self.table.len() >= self.config.max_members {
            self.counters.refused_table_full += 1;
            return Applied::TableFull;
        }
        if self.config.records_signed {
            // Taken as signed by the node itself (a simulation model: no
            // runtime sets this, see `MembershipConfig::records_signed`):
            // listed as a first-hand record is, and spread on as one.
            self.counters.admitted_signed += 1;
            return self.merge(record, now);
        }
        let id = record.id.clone();
        match self
            .candidates
            .offer_as(record, source, now.instant, self.syncing)
        {
            Offered::Queued => Applied::Unverified,
            // Two member hosts are spreading it already: listed, but not
            // queued for gossip again (after a mass join, queueing every
            // vouched-for member kept gossip going 2.4x longer at 1,000 nodes).
            Offered::Vouched => match self.candidates.take(&id) {
                Some((record, _)) if self.holder_conflict(&record) => Applied::Stale,
                Some((record, _)) => {
                    self.counters.candidates_vouched += 1;
                    let was = std::mem::replace(&mut self.syncing, true);
                    let applied = self.merge(record, now);
                    self.syncing = was;
                    applied
                }
                None => Applied::Stale,
            },
            Offered::Stale => Applied::Stale,
            Offered::VouchLimited => {
                self.counters.candidates_vouch_limited += 1;
                Applied::Unverified
            }
            Offered::Full | Offered::SourceFull => {
                self.counters.candidates_dropped += 1;
                Applied::TableFull
            }
        }
    }

    /// Up to `max` unknown nodes to probe, each once: the caller reports back
    /// with [`Self::candidate_answered`] or [`Self::candidate_silent`].
    pub fn take_unverified(&mut self, max: usize, now: Now) -> Vec<ProbeTarget> {
        self.candidates.take_unprobed(max, now.instant)
    }

    /// Whether unknown nodes are waiting for a verification probe.
    pub fn has_unverified(&self, now: Now) -> bool {
        self.candidates.has_unprobed(now.instant)
    }

    /// Unknown nodes waiting for verification.
    pub fn unverified_count(&self) -> usize {
        self.candidates.len()
    }

    /// An unknown node answered its probe as itself: list it.
    pub fn candidate_answered(&mut self, id: &NodeId, now: Now) {
        if let Some((record, quiet)) = self.candidates.take(id) {
            if self.holder_conflict(&record) {
                // Another member took its address (or name) while it waited.
                return;
            }
            self.counters.candidates_verified += 1;
            let was = std::mem::replace(&mut self.syncing, quiet);
            self.merge(record, now);
            self.syncing = was;
            self.table.heard_from(id, now);
        }
    }

    /// An unknown node did not answer its probe as itself: it is probed again
    /// a round later, and forgotten after a few misses.
    pub fn candidate_silent(&mut self, id: &NodeId, now: Now) {
        let retry_at = now.instant + self.config.gossip_interval;
        if self.candidates.missed(id, retry_at) {
            self.counters.candidates_refused += 1;
        }
    }
}
