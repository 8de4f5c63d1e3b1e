//! Per-peer token buckets: each peer may make `rate` calls per second with
//! bursts of `burst`. The table of peers is bounded; at the bound the peer idle
//! longest is forgotten (it starts again with a full bucket). Pure: callers
//! pass the time.

use std::{collections::HashMap, time::Instant};

/// Limits of one kind of call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateConfig {
    /// Calls per second a peer may keep up; 0 turns the limit off.
    pub rate: f64,
    /// Calls a peer may make at once after being quiet.
    pub burst: f64,
    /// Peers tracked at most.
    pub max_peers: usize,
}

impl RateConfig {
    /// `rate` per second with a burst of twice that, for up to 4096 peers.
    pub fn per_second(rate: f64) -> Self {
        Self {
            rate,
            burst: (rate * 2.0).max(1.0),
            max_peers: 4096,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every peer.
#[derive(Debug)]
pub struct RateLimiter {
    config: RateConfig,
    buckets: HashMap<String, Bucket>,
    evicted: u64,
}

impl RateLimiter {
    /// An empty limiter.
    pub fn new(config: RateConfig) -> Self {
        Self {
            config,
            buckets: HashMap::new(),
            evicted: 0,
        }
    }

    /// Whether `peer` may make a call at `now` (taking a token if so).
    pub fn allow(&mut self, peer: &str, now: Instant) -> bool {
        self.allow_scaled(peer, 1, now)
    }

    /// Like [`Self::allow`] for a peer that stands for `scale` callers (a host
    /// running several nodes): its rate and burst are `scale` times the
    /// configured ones.
    pub fn allow_scaled(&mut self, peer: &str, scale: usize, now: Instant) -> bool {
        let mut c = self.config;
        #[expect(clippy::cast_precision_loss, reason = "scale is a member count")]
        let k = scale.max(1) as f64;
        c.rate *= k;
        c.burst *= k;
        if c.rate <= 0.0 {
            return true;
        }
        if !self.buckets.contains_key(peer)
            && self.buckets.len() >= c.max_peers.max(1)
            && let Some(idle) = self
                .buckets
                .iter()
                .min_by_key(|(_, b)| b.at)
                .map(|(k, _)| k.clone())
        {
            self.buckets.remove(&idle);
            self.evicted += 1;
        }
        let b = self.buckets.entry(peer.to_owned()).or_insert(Bucket {
            tokens: c.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * c.rate).min(c.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Peers forgotten at the table's bound so far.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Peers tracked now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no peer is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_peer_gets_its_burst_then_its_rate() {
        let mut l = RateLimiter::new(RateConfig {
            rate: 10.0,
            burst: 5.0,
            max_peers: 8,
        });
        let t0 = Instant::now();
        let allowed = (0..20).filter(|_| l.allow("a", t0)).count();
        assert_eq!(allowed, 5);
        // 0.5 s later: 5 more tokens.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!((0..20).filter(|_| l.allow("a", t1)).count(), 5);
        // Another peer is not affected.
        assert!(l.allow("b", t1));
    }

    #[test]
    fn the_peer_table_is_bounded() {
        let mut l = RateLimiter::new(RateConfig {
            rate: 1.0,
            burst: 1.0,
            max_peers: 3,
        });
        let t0 = Instant::now();
        for i in 0..10u64 {
            assert!(l.allow(&format!("p{i}"), t0 + Duration::from_millis(i)));
        }
        assert_eq!(l.len(), 3);
        assert_eq!(l.evicted(), 7);
    }

    #[test]
    fn rate_zero_is_off() {
        let mut l = RateLimiter::new(RateConfig::per_second(0.0));
        let t0 = Instant::now();
        assert!((0..10_000).all(|_| l.allow("a", t0)));
        assert!(l.is_empty());
    }
}
