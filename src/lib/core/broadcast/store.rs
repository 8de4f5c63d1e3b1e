//! Payloads kept to serve peers that ask for them: bounded by total bytes and by
//! age. At the byte bound the oldest payloads are dropped first (counted); a peer
//! that asks for a dropped payload asks another holder.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use bytes::Bytes;

use crate::{ids::MessageId, message::MessageMeta};

/// One stored message.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its metadata as received.
    pub meta: MessageMeta,
    /// The payload.
    pub payload: Bytes,
    /// Its CRC-32.
    pub crc32: u32,
}

/// What one entry costs beyond its payload (the id, metadata, map and queue
/// slots), charged against the byte bound so small payloads are bounded too.
pub const ENTRY_OVERHEAD_BYTES: u64 = 256;

fn cost(s: &Stored) -> u64 {
    s.payload.len() as u64 + ENTRY_OVERHEAD_BYTES + s.meta.topic.len() as u64
}

/// Stored payloads, oldest first.
#[derive(Debug)]
pub struct PayloadStore {
    items: HashMap<MessageId, Stored>,
    order: VecDeque<(Instant, MessageId)>,
    bytes: u64,
    max_bytes: u64,
    ttl: Duration,
    evicted: u64,
}

impl PayloadStore {
    /// A store of at most `max_bytes` of payload, each kept at most `ttl`.
    pub fn new(max_bytes: u64, ttl: Duration) -> Self {
        Self {
            items: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            max_bytes,
            ttl,
            evicted: 0,
        }
    }

    /// Keeps `s`, dropping the oldest payloads to make room. A payload larger than
    /// the whole store is not kept.
    pub fn insert(&mut self, s: Stored, now: Instant) {
        let len = cost(&s);
        if len > self.max_bytes || self.items.contains_key(&s.meta.id) {
            return;
        }
        self.expire(now);
        while self.bytes + len > self.max_bytes {
            if !self.pop_oldest() {
                break;
            }
            self.evicted += 1;
        }
        self.bytes += len;
        self.order.push_back((now, s.meta.id));
        self.items.insert(s.meta.id, s);
    }

    fn pop_oldest(&mut self) -> bool {
        let Some((_, id)) = self.order.pop_front() else {
            return false;
        };
        if let Some(s) = self.items.remove(&id) {
            self.bytes -= cost(&s);
        }
        true
    }

    /// The payload of `id`, if still kept.
    pub fn get(&self, id: &MessageId) -> Option<&Stored> {
        self.items.get(id)
    }

    /// Drops payloads older than the TTL.
    pub fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < self.ttl {
                break;
            }
            self.pop_oldest();
        }
    }

    /// Ids stored since `since`, newest last, at most `max`.
    pub fn recent(&self, since: Instant, max: usize) -> Vec<(MessageId, &Stored)> {
        let mut out: Vec<(MessageId, &Stored)> = self
            .order
            .iter()
            .rev()
            .take_while(|(at, _)| *at >= since)
            .take(max)
            .filter_map(|(_, id)| self.items.get(id).map(|s| (*id, s)))
            .collect();
        out.reverse();
        out
    }

    /// Bytes held: payloads plus [`ENTRY_OVERHEAD_BYTES`] per entry.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Payloads held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Payloads dropped early to make room.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::NodeId;

    fn stored(n: u128, len: usize) -> Stored {
        Stored {
            meta: MessageMeta {
                id: MessageId::from_u128(n),
                origin: NodeId::parse("o").unwrap(),
                hops: 0,
                ttl: 0,
                topic: String::new(),
                created_unix_ns: 0,
                auth: None,
                piece: None,
            },
            payload: Bytes::from(vec![0u8; len]),
            crc32: 0,
        }
    }

    #[test]
    fn stays_within_its_byte_bound_dropping_the_oldest() {
        let t0 = Instant::now();
        let each = 40 + ENTRY_OVERHEAD_BYTES;
        let mut s = PayloadStore::new(2 * each + 10, Duration::from_secs(60));
        s.insert(stored(1, 40), t0);
        s.insert(stored(2, 40), t0);
        s.insert(stored(3, 40), t0);
        assert_eq!(s.bytes(), 2 * each);
        assert!(s.get(&MessageId::from_u128(1)).is_none());
        assert!(s.get(&MessageId::from_u128(3)).is_some());
        assert_eq!(s.evicted(), 1);
        s.insert(stored(4, 1000), t0);
        assert!(s.get(&MessageId::from_u128(4)).is_none());
    }

    #[test]
    fn forgets_by_age() {
        let t0 = Instant::now();
        let mut s = PayloadStore::new(10_000, Duration::from_secs(10));
        s.insert(stored(1, 10), t0);
        s.insert(stored(2, 10), t0 + Duration::from_secs(5));
        assert_eq!(s.recent(t0 + Duration::from_secs(1), 10).len(), 1);
        s.expire(t0 + Duration::from_secs(10));
        assert_eq!(s.len(), 1);
    }
}
