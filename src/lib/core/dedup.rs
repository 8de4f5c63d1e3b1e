//! A bounded, expiring "seen" set: the first sighting of a key is admitted, every
//! later one within the TTL is refused. At capacity the oldest key is forgotten
//! early (and counted), so memory stays bounded under a flood.

use std::{
    collections::{HashMap, VecDeque},
    hash::Hash,
    time::{Duration, Instant},
};

/// Remembers keys for `ttl`, at most `capacity` at once.
#[derive(Debug)]
pub struct DedupCache<K> {
    expires: HashMap<K, Instant>,
    order: VecDeque<(Instant, K)>,
    capacity: usize,
    ttl: Duration,
    evicted_early: u64,
}

impl<K: Clone + Eq + Hash> DedupCache<K> {
    /// A cache of at most `capacity` keys, each remembered for `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            expires: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            ttl,
            evicted_early: 0,
        }
    }

    /// Records `key`; returns whether it is new (not seen within the TTL).
    pub fn insert(&mut self, key: K, now: Instant) -> bool {
        self.expire(now);
        if self.expires.contains_key(&key) {
            return false;
        }
        if self.expires.len() >= self.capacity
            && let Some((_, oldest)) = self.order.pop_front()
        {
            self.expires.remove(&oldest);
            self.evicted_early += 1;
        }
        let until = now + self.ttl;
        self.expires.insert(key.clone(), until);
        self.order.push_back((until, key));
        true
    }

    /// Whether `key` was seen within the TTL.
    pub fn contains(&self, key: &K, now: Instant) -> bool {
        self.expires.get(key).is_some_and(|t| *t > now)
    }

    /// Forgets keys whose TTL has passed.
    pub fn expire(&mut self, now: Instant) {
        while let Some((until, _)) = self.order.front() {
            if *until > now {
                break;
            }
            if let Some((_, k)) = self.order.pop_front() {
                self.expires.remove(&k);
            }
        }
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.expires.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.expires.is_empty()
    }

    /// Keys forgotten before their TTL because the cache was full.
    pub fn evicted_early(&self) -> u64 {
        self.evicted_early
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn admits_once_per_ttl_and_stays_bounded() {
        let t0 = Instant::now();
        let mut c = DedupCache::new(2, Duration::from_secs(10));
        assert!(c.insert("a", t0));
        assert!(!c.insert("a", t0 + Duration::from_secs(9)));
        assert!(c.insert("a", t0 + Duration::from_secs(10)));
        assert!(c.insert("b", t0 + Duration::from_secs(10)));
        assert!(c.insert("c", t0 + Duration::from_secs(10)));
        assert_eq!(c.len(), 2);
        assert_eq!(c.evicted_early(), 1);
    }

    proptest! {
        /// Within capacity and TTL, no key is ever admitted twice.
        #[test]
        fn never_admits_twice(keys in proptest::collection::vec(0u16..50, 0..300), steps in proptest::collection::vec(0u64..3, 0..300)) {
            let t0 = Instant::now();
            let mut c = DedupCache::new(64, Duration::from_secs(1000));
            let mut admitted = std::collections::HashSet::new();
            let mut now = t0;
            for (i, k) in keys.iter().enumerate() {
                now += Duration::from_millis(*steps.get(i).unwrap_or(&0));
                if c.insert(*k, now) {
                    prop_assert!(admitted.insert(*k), "key {} admitted twice", k);
                }
            }
        }
    }
}
