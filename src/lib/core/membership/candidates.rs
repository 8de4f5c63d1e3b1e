//! Nodes heard of only second-hand. A record about a node this one does not know
//! is not listed on anyone's word: it waits here until the node itself answers a
//! probe at the record's address, so made-up records never count as alive, never
//! reach `gsp peers` or queries, and never load the failure detector.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use super::{ProbeTarget, record::MemberRecord};
use crate::core::ids::NodeId;

/// What offering a record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// Queued for verification (new, or a newer record of a waiting node).
    Queued,
    /// Not newer than the record already waiting.
    Stale,
    /// The set is full; the record was dropped (counted by the caller).
    Full,
}

#[derive(Debug, Clone)]
struct Candidate {
    record: MemberRecord,
    since: Instant,
    /// A verification probe is in flight.
    probing: bool,
}

/// A bounded set of nodes waiting to be verified.
#[derive(Debug)]
pub struct Candidates {
    entries: BTreeMap<NodeId, Candidate>,
    capacity: usize,
    ttl: Duration,
}

impl Candidates {
    /// At most `capacity` waiting nodes, each forgotten `ttl` after it was first
    /// offered if its verification never concluded.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            entries: BTreeMap::new(),
            capacity,
            ttl,
        }
    }

    /// Offers a record of an unknown node.
    pub fn offer(&mut self, record: MemberRecord, now: Instant) -> Offered {
        if let Some(c) = self.entries.get_mut(&record.id) {
            if record.supersedes(&c.record) {
                c.record = record;
                return Offered::Queued;
            }
            return Offered::Stale;
        }
        if self.entries.len() >= self.capacity {
            return Offered::Full;
        }
        self.entries.insert(
            record.id.clone(),
            Candidate {
                record,
                since: now,
                probing: false,
            },
        );
        Offered::Queued
    }

    /// Up to `max` waiting nodes not yet being probed, in id order; they are
    /// marked as being probed until [`Self::remove`] is called for them.
    pub fn take_unprobed(&mut self, max: usize) -> Vec<ProbeTarget> {
        self.entries
            .values_mut()
            .filter(|c| !c.probing)
            .take(max)
            .map(|c| {
                c.probing = true;
                ProbeTarget {
                    id: c.record.id.clone(),
                    address: c.record.address.clone(),
                }
            })
            .collect()
    }

    /// Whether some waiting node is not being probed yet.
    pub fn has_unprobed(&self) -> bool {
        self.entries.values().any(|c| !c.probing)
    }

    /// Takes `id` out of the set, with its newest record.
    pub fn remove(&mut self, id: &NodeId) -> Option<MemberRecord> {
        self.entries.remove(id).map(|c| c.record)
    }

    /// Forgets nodes waiting longer than the TTL; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let before = self.entries.len();
        let ttl = self.ttl;
        self.entries
            .retain(|_, c| now.saturating_duration_since(c.since) < ttl);
        before - self.entries.len()
    }

    /// Nodes waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::membership::record::{MemberState, testing::record};

    #[test]
    fn the_set_is_bounded_and_newer_records_replace_waiting_ones() {
        let t0 = Instant::now();
        let mut c = Candidates::new(2, Duration::from_secs(5));
        assert_eq!(
            c.offer(record("a", 1, MemberState::Alive), t0),
            Offered::Queued
        );
        assert_eq!(
            c.offer(record("b", 1, MemberState::Alive), t0),
            Offered::Queued
        );
        assert_eq!(
            c.offer(record("c", 1, MemberState::Alive), t0),
            Offered::Full
        );
        assert_eq!(
            c.offer(record("a", 1, MemberState::Alive), t0),
            Offered::Stale
        );
        assert_eq!(
            c.offer(record("a", 3, MemberState::Alive), t0),
            Offered::Queued
        );
        let a = NodeId::parse("a").unwrap();
        assert_eq!(c.remove(&a).unwrap().version.counter, 3);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn each_node_is_handed_out_for_probing_once_and_unconcluded_ones_expire() {
        let t0 = Instant::now();
        let mut c = Candidates::new(8, Duration::from_secs(5));
        c.offer(record("a", 1, MemberState::Alive), t0);
        c.offer(record("b", 1, MemberState::Alive), t0);
        assert_eq!(c.take_unprobed(1).len(), 1);
        assert!(c.has_unprobed());
        assert_eq!(c.take_unprobed(8).len(), 1);
        assert!(!c.has_unprobed());
        assert!(c.take_unprobed(8).is_empty());
        assert_eq!(c.expire(t0 + Duration::from_secs(4)), 0);
        assert_eq!(c.expire(t0 + Duration::from_secs(5)), 2);
        assert!(c.is_empty());
    }
}
