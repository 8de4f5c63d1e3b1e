//! The member table and its merge rules: which record about a node wins, when a
//! node is removed, and how removed nodes are kept from coming back on stale
//! gossip.

mod index;

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use index::StrIndex;

use super::{
    events::{EventKind, MembershipEvent},
    record::{Digest, MemberRecord, MemberState, SharedRecord, Version},
};
use crate::{ids::NodeId, now::Now};

/// One known node.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The winning record.
    pub record: SharedRecord,
    /// When it entered its current state (monotonic).
    pub state_since: Instant,
    /// When this node last heard first-hand that it is up, unix nanoseconds.
    pub last_seen_unix_ns: i64,
}

/// What applying a record did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Not newer than what is known (or than a removed node's last version).
    Stale,
    /// A node seen for the first time.
    New,
    /// A newer record replaced the known one, which was in state `from`.
    Changed {
        /// The previous state.
        from: MemberState,
    },
    /// The same suspicion, raised by another node.
    Confirmed,
    /// The table is full; a new node was refused.
    TableFull,
    /// A node not known here, heard of second-hand: it waits for a probe of its
    /// own before it is listed.
    Unverified,
    /// A record about an alive member that only the member's word may make
    /// true (it is down, in another maintenance state, at another address):
    /// held until the member answers a check, or fails to.
    Held,
}

/// Members by id, plus tombstones of removed ones.
#[derive(Debug)]
pub struct MemberTable {
    entries: BTreeMap<NodeId, Entry>,
    tombstones: BTreeMap<NodeId, (Version, Instant)>,
    capacity: usize,
    /// [`Self::hash`], kept up to date as entries change (a push-pull opens
    /// with it; recomputing it cost O(members) per exchange).
    sum: u64,
    /// Members by the address they advertise, and by name: who holds an
    /// address or a name, in any state (a handful each, usually one).
    by_address: StrIndex,
    /// Built at the first [`Self::up_named`], then kept: only a node whose
    /// names are certified asks, and every other node (and a simulation of
    /// thousands of them) is spared an entry per member.
    by_name: Option<StrIndex>,
}

fn entry_hash(r: &MemberRecord) -> u64 {
    r.digest().stable_hash()
}

impl MemberTable {
    /// A table holding at most `capacity` members (and as many tombstones).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            capacity: capacity.max(1),
            sum: 0,
            by_address: StrIndex::default(),
            by_name: None,
        }
    }

    /// Keeps the address and name indexes true as `old` becomes `new`.
    fn reindex(&mut self, old: Option<&MemberRecord>, new: Option<&MemberRecord>) {
        let id = match (old, new) {
            (Some(r), _) | (None, Some(r)) => r.id.clone(),
            (None, None) => return,
        };
        let (old_addr, new_addr) = (old.map(|r| &*r.address), new.map(|r| &*r.address));
        if old_addr != new_addr {
            if let Some(a) = old_addr {
                self.by_address.remove(a, &id);
            }
            if let Some(a) = new_addr {
                self.by_address.add(a, &id);
            }
        }
        let (old_name, new_name) = (old.map(|r| &*r.name), new.map(|r| &*r.name));
        if let Some(by_name) = &mut self.by_name
            && old_name != new_name
        {
            if let Some(n) = old_name {
                by_name.remove(n, &id);
            }
            if let Some(n) = new_name {
                by_name.add(n, &id);
            }
        }
    }

    /// A member other than `id` that is up and advertises `address`.
    pub fn up_at_address(&self, address: &str, id: &NodeId) -> Option<&NodeId> {
        self.up_holder(self.by_address.get(address), id, |r| &*r.address == address)
    }

    /// A member other than `id` that is up and is named `name`. The first
    /// call indexes every member by name; later changes keep the index.
    pub fn up_named(&mut self, name: &str, id: &NodeId) -> Option<&NodeId> {
        if self.by_name.is_none() {
            let mut index = StrIndex::default();
            for (member, e) in &self.entries {
                index.add(&e.record.name, member);
            }
            self.by_name = Some(index);
        }
        let holders = self.by_name.as_ref().map_or(&[][..], |ix| ix.get(name));
        self.up_holder(holders, id, |r| &*r.name == name)
    }

    fn up_holder<'a>(
        &'a self,
        ids: &'a [NodeId],
        id: &NodeId,
        holds: impl Fn(&MemberRecord) -> bool,
    ) -> Option<&'a NodeId> {
        ids.iter().find(|x| {
            *x != id
                && self
                    .entries
                    .get(*x)
                    .is_some_and(|e| e.record.state.is_up() && holds(&e.record))
        })
    }

    /// Inserts or replaces a record unconditionally (the local node's own record).
    pub fn put(&mut self, record: impl Into<SharedRecord>, now: Now) {
        let record = record.into();
        let since = match self.entries.get(&record.id) {
            Some(e) if e.record.state == record.state => e.state_since,
            _ => now.instant,
        };
        self.sum = self.sum.wrapping_add(entry_hash(&record));
        let old = self.entries.insert(
            record.id.clone(),
            Entry {
                record: SharedRecord::clone(&record),
                state_since: since,
                last_seen_unix_ns: now.unix_ns,
            },
        );
        if let Some(old) = &old {
            self.sum = self.sum.wrapping_sub(entry_hash(&old.record));
        }
        self.reindex(old.as_ref().map(|e| &*e.record), Some(&record));
    }

    /// Merges a record about another node. Returns what happened and, for state
    /// changes, the event to report.
    pub fn apply(
        &mut self,
        record: impl Into<SharedRecord>,
        now: Now,
    ) -> (Applied, Option<MembershipEvent>) {
        let record = record.into();
        let Some(entry) = self.entries.get_mut(&record.id) else {
            return self.apply_unknown(record, now);
        };
        if record.supersedes(&entry.record) {
            let from = entry.record.state;
            let kind = EventKind::for_transition(Some(from), record.state).map(|k| {
                if k == EventKind::Updated && entry.record.maintenance != record.maintenance {
                    EventKind::Maintenance
                } else {
                    k
                }
            });
            if from != record.state {
                entry.state_since = now.instant;
            }
            if record.state == MemberState::Alive {
                entry.last_seen_unix_ns = now.unix_ns;
            }
            self.sum = self
                .sum
                .wrapping_sub(entry_hash(&entry.record))
                .wrapping_add(entry_hash(&record));
            let old = std::mem::replace(&mut entry.record, record);
            let event = kind.map(|k| MembershipEvent::new(k, &entry.record, now.unix_ns));
            let new = SharedRecord::clone(&entry.record);
            self.reindex(Some(&old), Some(&new));
            return (Applied::Changed { from }, event);
        }
        if record.version == entry.record.version
            && record.state == MemberState::Suspect
            && entry.record.state == MemberState::Suspect
            && record.suspected_by.is_some()
            && record.suspected_by != entry.record.suspected_by
        {
            return (Applied::Confirmed, None);
        }
        (Applied::Stale, None)
    }

    fn apply_unknown(
        &mut self,
        record: SharedRecord,
        now: Now,
    ) -> (Applied, Option<MembershipEvent>) {
        if let Some((version, _)) = self.tombstones.get(&record.id)
            && record.version <= *version
        {
            return (Applied::Stale, None);
        }
        if self.entries.len() >= self.capacity {
            return (Applied::TableFull, None);
        }
        self.tombstones.remove(&record.id);
        // A node first heard of as dead or left is listed as such (Fabric learns dead
        // members too), so that the table does not depend on the order records arrive.
        let event = EventKind::for_transition(None, record.state)
            .filter(|_| record.state.is_up())
            .map(|k| MembershipEvent::new(k, &record, now.unix_ns));
        self.sum = self.sum.wrapping_add(entry_hash(&record));
        self.reindex(None, Some(&record));
        self.entries.insert(
            record.id.clone(),
            Entry {
                record,
                state_since: now.instant,
                last_seen_unix_ns: now.unix_ns,
            },
        );
        (Applied::New, event)
    }

    fn tombstone(&mut self, id: NodeId, version: Version, at: Instant) {
        if self.tombstones.len() >= self.capacity
            && !self.tombstones.contains_key(&id)
            && let Some(oldest) = self
                .tombstones
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone())
        {
            self.tombstones.remove(&oldest);
        }
        self.tombstones.insert(id, (version, at));
    }

    /// Records first-hand evidence that `id` is up.
    pub fn heard_from(&mut self, id: &NodeId, now: Now) {
        if let Some(e) = self.entries.get_mut(id) {
            e.last_seen_unix_ns = now.unix_ns;
        }
    }

    /// Removes dead and left nodes that have been so for `ttl`, keeping their last
    /// version as a tombstone; forgets tombstones older than `tombstone_ttl`.
    pub fn reap(
        &mut self,
        local: &NodeId,
        ttl: Duration,
        tombstone_ttl: Duration,
        now: Now,
    ) -> Vec<MembershipEvent> {
        let expired: Vec<NodeId> = self
            .entries
            .iter()
            .filter(|(id, e)| {
                !e.record.state.is_up()
                    && now.instant.saturating_duration_since(e.state_since) >= ttl
                    && *id != local
            })
            .map(|(id, _)| id.clone())
            .collect();
        let mut events = Vec::with_capacity(expired.len());
        for id in expired {
            if let Some(e) = self.entries.remove(&id) {
                self.sum = self.sum.wrapping_sub(entry_hash(&e.record));
                self.reindex(Some(&e.record), None);
                events.push(MembershipEvent::new(
                    EventKind::Removed,
                    &e.record,
                    now.unix_ns,
                ));
                self.tombstone(id, e.record.version, now.instant);
            }
        }
        self.tombstones
            .retain(|_, (_, at)| now.instant.saturating_duration_since(*at) < tombstone_ttl);
        events
    }

    /// Removes `id` now (an operator's prune), keeping its version as a
    /// tombstone; returns the removal event, or None if it was not listed.
    pub fn remove(&mut self, id: &NodeId, now: Now) -> Option<MembershipEvent> {
        let e = self.entries.remove(id)?;
        self.sum = self.sum.wrapping_sub(entry_hash(&e.record));
        self.reindex(Some(&e.record), None);
        self.tombstone(id.clone(), e.record.version, now.instant);
        Some(MembershipEvent::new(
            EventKind::Removed,
            &e.record,
            now.unix_ns,
        ))
    }

    /// The entry for `id`.
    pub fn get(&self, id: &NodeId) -> Option<&Entry> {
        self.entries.get(id)
    }

    /// Every entry.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// Members known, the local node included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Members believed up (alive or suspect), the local node included.
    pub fn up_count(&self) -> usize {
        self.entries
            .values()
            .filter(|e| e.record.state.is_up())
            .count()
    }

    /// Tombstones held.
    pub fn tombstone_count(&self) -> usize {
        self.tombstones.len()
    }

    /// A digest of every member.
    pub fn digests(&self) -> Vec<Digest> {
        self.entries.values().map(|e| e.record.digest()).collect()
    }

    /// Order-independent sum of every member's digest hash; equal tables have
    /// equal hashes.
    pub fn hash(&self) -> u64 {
        debug_assert_eq!(
            self.sum,
            self.entries
                .values()
                .fold(0u64, |acc, e| acc.wrapping_add(entry_hash(&e.record))),
            "the running table hash drifted"
        );
        self.sum
    }

    /// The version a removed member had, while its tombstone lasts.
    pub fn tombstone_version(&self, id: &NodeId) -> Option<Version> {
        self.tombstones.get(id).map(|(v, _)| *v)
    }

    /// Compares a peer's digests with this table: the records the peer lacks or
    /// has older, and the ids of the records this table lacks or has older.
    pub fn diff(&self, remote: &[Digest]) -> (Vec<SharedRecord>, Vec<NodeId>) {
        let theirs: HashMap<&NodeId, &Digest> = remote.iter().map(|d| (&d.id, d)).collect();
        let mut send = Vec::new();
        for e in self.entries.values() {
            match theirs.get(&e.record.id) {
                Some(d) if !e.record.digest().supersedes(d) => {}
                _ => send.push(e.record.clone()),
            }
        }
        let want = remote
            .iter()
            .filter(|d| match self.entries.get(&d.id) {
                Some(e) => d.supersedes(&e.record.digest()),
                None => self
                    .tombstones
                    .get(&d.id)
                    .is_none_or(|(v, _)| d.version > *v),
            })
            .map(|d| d.id.clone())
            .collect();
        (send, want)
    }
}

#[cfg(test)]
mod tests;
