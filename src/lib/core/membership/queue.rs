//! Pending membership updates, piggybacked on probes and gossip until each has
//! been sent enough times to reach everyone with high probability (SWIM's
//! infection-style dissemination; memberlist's transmit-limited queue).

use crate::core::ids::NodeId;

use super::record::MemberRecord;

#[derive(Debug)]
struct Item {
    record: MemberRecord,
    transmits: u32,
    seq: u64,
}

/// Updates waiting to be disseminated, at most one per node (a newer record about a
/// node replaces the queued one).
#[derive(Debug)]
pub struct UpdateQueue {
    items: Vec<Item>,
    capacity: usize,
    next_seq: u64,
    dropped: u64,
}

impl UpdateQueue {
    /// A queue holding at most `capacity` updates.
    pub fn new(capacity: usize) -> Self {
        Self {
            items: Vec::new(),
            capacity: capacity.max(1),
            next_seq: 0,
            dropped: 0,
        }
    }

    /// Queues `record`, replacing any queued update about the same node. Past the
    /// capacity the most transmitted update is dropped (and counted).
    pub fn push(&mut self, record: MemberRecord) {
        self.next_seq += 1;
        if let Some(item) = self.items.iter_mut().find(|i| i.record.id == record.id) {
            item.record = record;
            item.transmits = 0;
            item.seq = self.next_seq;
            return;
        }
        if self.items.len() >= self.capacity
            && let Some(worst) = self
                .items
                .iter()
                .enumerate()
                .max_by_key(|(_, i)| (i.transmits, std::cmp::Reverse(i.seq)))
                .map(|(idx, _)| idx)
        {
            self.items.swap_remove(worst);
            self.dropped += 1;
        }
        self.items.push(Item {
            record,
            transmits: 0,
            seq: self.next_seq,
        });
    }

    /// Takes up to `max` updates, least transmitted (then newest) first, counting a
    /// transmission for each and retiring those that reach `limit`.
    pub fn take(&mut self, max: usize, limit: u32) -> Vec<MemberRecord> {
        self.items
            .sort_by_key(|i| (i.transmits, std::cmp::Reverse(i.seq)));
        let n = max.min(self.items.len());
        let out: Vec<MemberRecord> = self.items[..n].iter().map(|i| i.record.clone()).collect();
        for item in &mut self.items[..n] {
            item.transmits += 1;
        }
        self.items.retain(|i| i.transmits < limit.max(1));
        out
    }

    /// The queued update about `id`, if any.
    pub fn get(&self, id: &NodeId) -> Option<&MemberRecord> {
        self.items
            .iter()
            .find(|i| &i.record.id == id)
            .map(|i| &i.record)
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
        crate::core::membership::record::testing::record(
            id,
            counter,
            crate::core::membership::record::MemberState::Alive,
        )
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
