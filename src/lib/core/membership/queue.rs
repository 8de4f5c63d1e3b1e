//! Pending membership updates, piggybacked on probes and gossip until each has
//! been sent enough times to reach everyone with high probability (SWIM's
//! infection-style dissemination; memberlist's transmit-limited queue).

use std::{
    cmp::Reverse,
    collections::{BTreeMap, HashMap},
};

use crate::ids::NodeId;

use super::record::{MemberRecord, SharedRecord};

/// Changes waiting to be pushed at once, coalesced: the newest of repeated
/// changes to one node is kept (confirmations by different suspecters are
/// kept apart), in the order they were learnt.
pub fn coalesce(mut records: Vec<SharedRecord>) -> Vec<SharedRecord> {
    records.reverse();
    let mut seen = std::collections::HashSet::new();
    records.retain(|r| seen.insert((r.id.clone(), r.suspected_by.clone())));
    records.reverse();
    records
}

#[derive(Debug)]
struct Item {
    record: SharedRecord,
    transmits: u32,
    seq: u64,
}

/// Send order: least transmitted first, then newest (seqs are unique).
type Key = (u32, Reverse<u64>);

/// Updates waiting to be disseminated, at most one per node (a newer record about a
/// node replaces the queued one). Indexed by node and by send order, so pushing
/// and taking cost O(log n) per update however long the queue is.
#[derive(Debug)]
pub struct UpdateQueue {
    items: HashMap<NodeId, Item>,
    order: BTreeMap<Key, NodeId>,
    capacity: usize,
    next_seq: u64,
    dropped: u64,
}

impl UpdateQueue {
    /// A queue holding at most `capacity` updates.
    pub fn new(capacity: usize) -> Self {
        Self {
            items: HashMap::new(),
            order: BTreeMap::new(),
            capacity: capacity.max(1),
            next_seq: 0,
            dropped: 0,
        }
    }

    /// Queues `record`, replacing any queued update about the same node. Past the
    /// capacity the most transmitted update is dropped (and counted).
    pub fn push(&mut self, record: impl Into<SharedRecord>) {
        let record = record.into();
        self.next_seq += 1;
        let seq = self.next_seq;
        if let Some(item) = self.items.get_mut(&record.id) {
            if let Some(id) = self.order.remove(&(item.transmits, Reverse(item.seq))) {
                self.order.insert((0, Reverse(seq)), id);
            }
            item.record = record;
            item.transmits = 0;
            item.seq = seq;
            return;
        }
        if self.items.len() >= self.capacity
            && let Some((_, worst)) = self.order.pop_last()
        {
            self.items.remove(&worst);
            self.dropped += 1;
        }
        let id = record.id.clone();
        self.order.insert((0, Reverse(seq)), id.clone());
        self.items.insert(
            id,
            Item {
                record,
                transmits: 0,
                seq,
            },
        );
    }

    /// Takes up to `max` updates, least transmitted (then newest) first, counting a
    /// transmission for each and retiring those that reach `limit`.
    pub fn take(&mut self, max: usize, limit: u32) -> Vec<SharedRecord> {
        self.take_within(max, max, 0, limit)
    }

    /// As [`Self::take`], but past the first `free` updates only while their
    /// sizes ([`MemberRecord::approx_wire_len`]) add up to at most `budget`
    /// bytes: a message packed with a backlog stays small whatever the
    /// records carry (labels, GPUs, certificates).
    pub fn take_within(
        &mut self,
        free: usize,
        max: usize,
        budget: usize,
        limit: u32,
    ) -> Vec<SharedRecord> {
        let mut taken = Vec::with_capacity(max.min(self.order.len()));
        let mut used = 0usize;
        while taken.len() < max {
            let Some((_, id)) = self.order.first_key_value() else {
                break;
            };
            if taken.len() >= free {
                let size = self
                    .items
                    .get(id)
                    .map_or(0, |item| item.record.approx_wire_len());
                if used.saturating_add(size) > budget {
                    break;
                }
                used += size;
            }
            let Some(entry) = self.order.pop_first() else {
                break;
            };
            taken.push(entry);
        }
        let mut out = Vec::with_capacity(taken.len());
        for ((transmits, seq), id) in taken {
            let Some(item) = self.items.get_mut(&id) else {
                continue;
            };
            out.push(item.record.clone());
            item.transmits = transmits + 1;
            if item.transmits < limit.max(1) {
                self.order.insert((item.transmits, seq), id);
            } else {
                self.items.remove(&id);
            }
        }
        out
    }

    /// `record` came in again from a peer, unchanged: others are spreading it
    /// too, so it counts as one transmission of the queued copy (Demers et
    /// al.'s rumour mongering with feedback). After a mass join every node
    /// holds the same hundreds of updates; without this each sent every one
    /// `limit` times, long after everyone had them.
    pub fn heard_again(&mut self, record: &MemberRecord, limit: u32) {
        let Some(item) = self.items.get_mut(&record.id) else {
            return;
        };
        if item.record.version != record.version || item.record.state != record.state {
            return;
        }
        let Some(id) = self.order.remove(&(item.transmits, Reverse(item.seq))) else {
            return;
        };
        item.transmits += 1;
        if item.transmits < limit.max(1) {
            self.order.insert((item.transmits, Reverse(item.seq)), id);
        } else {
            self.items.remove(&id);
        }
    }

    /// The queued update about `id`, if any.
    pub fn get(&self, id: &NodeId) -> Option<&MemberRecord> {
        self.items.get(id).map(|i| &*i.record)
    }

    /// Updates waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Updates dropped at the capacity so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, counter: u64) -> MemberRecord {
        crate::membership::record::testing::record(
            id,
            counter,
            crate::membership::record::MemberState::Alive,
        )
    }

    #[test]
    fn past_the_free_count_updates_are_taken_within_the_byte_budget() {
        let mut q = UpdateQueue::new(64);
        for i in 0..20 {
            q.push(rec(&format!("n{i:02}"), 1));
        }
        let one = rec("n00", 1).approx_wire_len();
        // The free ones go whatever the budget; then as many as fit in it.
        assert_eq!(q.take_within(3, 20, 0, 4).len(), 3);
        assert_eq!(q.take_within(3, 20, 2 * one, 4).len(), 5);
        // The count still caps.
        assert_eq!(q.take_within(3, 4, usize::MAX, 4).len(), 4);
        // Nothing taken past the budget was counted as sent: 20 updates, each
        // still owed its transmissions.
        assert_eq!(q.len(), 20);
    }

    #[test]
    fn newer_records_replace_queued_ones() {
        let mut q = UpdateQueue::new(8);
        q.push(rec("a", 1));
        q.push(rec("a", 2));
        assert_eq!(q.len(), 1);
        assert_eq!(q.take(8, 4)[0].version.counter, 2);
    }

    #[test]
    fn each_update_is_sent_limit_times_then_retired() {
        let mut q = UpdateQueue::new(8);
        q.push(rec("a", 1));
        for _ in 0..3 {
            assert_eq!(q.take(8, 3).len(), 1);
        }
        assert!(q.take(8, 3).is_empty());
    }

    #[test]
    fn least_sent_go_first_and_capacity_drops_the_most_sent() {
        let mut q = UpdateQueue::new(2);
        q.push(rec("a", 1));
        q.take(1, 10); // a sent once
        q.push(rec("b", 1));
        assert_eq!(q.take(1, 10)[0].id.as_str(), "b");
        q.take(1, 10); // b, now sent twice; push c evicts the most sent
        q.push(rec("c", 1));
        assert_eq!(q.len(), 2);
        assert_eq!(q.dropped(), 1);
        assert!(q.get(&NodeId::parse("c").unwrap()).is_some());
        assert!(q.get(&NodeId::parse("a").unwrap()).is_some());
        assert!(q.get(&NodeId::parse("b").unwrap()).is_none());
    }
}
