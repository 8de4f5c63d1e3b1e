//! Reading the state: anti-entropy digests, records, listings, counters and
//! the timings local health stretches.

use std::time::Duration;

use super::{Counters, MemberView, Membership, Urgent};
use crate::{
    ids::NodeId,
    membership::{
        events::MembershipEvent,
        record::{Digest, MemberRecord, MemberState, SharedRecord},
    },
    now::Now,
};

impl Membership {
    /// Digests of every member, for anti-entropy.
    pub fn digests(&self) -> Vec<Digest> {
        self.table.digests()
    }

    /// Hash of the whole table; equal tables, equal hashes.
    pub fn table_hash(&self) -> u64 {
        self.table.hash()
    }

    /// What a peer with `remote` digests lacks, and which ids to ask it for.
    pub fn diff(&self, remote: &[Digest]) -> (Vec<SharedRecord>, Vec<NodeId>) {
        self.table.diff(remote)
    }

    /// What this node holds against a member that sent its own `record` when
    /// that member was removed here at a version no older: the record, dead at
    /// the removed version. A member back from a long partition learns from it
    /// that it was declared dead and refutes; until then its records are refused
    /// as stale.
    pub fn removed_claim(&self, record: &MemberRecord) -> Option<MemberRecord> {
        if self.table.get(&record.id).is_some() {
            return None;
        }
        let v = self
            .table
            .tombstone_version(&record.id)
            .filter(|v| *v >= record.version)?;
        let mut r = record.clone();
        r.version = v;
        r.state = MemberState::Dead;
        r.suspected_by = None;
        Some(r)
    }

    /// The records of `ids` that are known.
    pub fn records_for(&self, ids: &[NodeId]) -> Vec<SharedRecord> {
        ids.iter()
            .filter_map(|id| self.table.get(id).map(|e| e.record.clone()))
            .collect()
    }

    /// Every record, by reference (no copies; for scans such as resource queries).
    pub fn records(&self) -> impl Iterator<Item = &MemberRecord> {
        self.table.entries().map(|e| &*e.record)
    }

    /// Every record.
    pub fn all_records(&self) -> Vec<SharedRecord> {
        self.table.entries().map(|e| e.record.clone()).collect()
    }

    /// The record of `id`.
    pub fn get(&self, id: &NodeId) -> Option<&MemberRecord> {
        self.table.get(id).map(|e| &*e.record)
    }

    /// Every member, for listing.
    pub fn members(&self, now: Now) -> Vec<MemberView> {
        self.table
            .entries()
            .map(|e| MemberView {
                local: e.record.id == self.local.id,
                record: MemberRecord::clone(&e.record),
                last_seen_unix_ns: if e.record.id == self.local.id {
                    now.unix_ns
                } else {
                    e.last_seen_unix_ns
                },
                in_state_for: now.instant.saturating_duration_since(e.state_since),
            })
            .collect()
    }

    /// Members known (the local node included).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Always false: the local node is a member.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Members up (alive or suspect), the local node included.
    pub fn up_count(&self) -> usize {
        self.table.up_count()
    }

    /// Removed nodes remembered.
    pub fn tombstone_count(&self) -> usize {
        self.table.tombstone_count()
    }

    /// Events since the last call.
    pub fn take_events(&mut self) -> Vec<MembershipEvent> {
        std::mem::take(&mut self.events)
    }

    /// Records whose state changed since the last call (including this node's own
    /// after a refutation): what to push at once.
    pub fn take_urgent(&mut self) -> Vec<SharedRecord> {
        std::mem::take(&mut self.urgent)
            .into_iter()
            .filter_map(|u| match u {
                Urgent::Changed(id) => self.table.get(&id).map(|e| e.record.clone()),
                Urgent::Confirmation(r) => Some(r),
            })
            .collect()
    }

    /// Protocol counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Updates dropped at the queue's capacity.
    pub fn updates_dropped(&self) -> u64 {
        self.queue.dropped()
    }

    /// Lifeguard's local health multiplier: 0 when healthy.
    pub fn local_health(&self) -> u32 {
        self.health
    }

    /// Direct probe timeout, stretched while this node is unhealthy.
    pub fn probe_timeout(&self) -> Duration {
        self.config.probe_timeout * (self.health + 1)
    }

    /// Round length, stretched while this node is unhealthy.
    pub fn probe_interval(&self) -> Duration {
        self.config.gossip_interval * (self.health + 1)
    }
}
