//! Lifeguard's suspicion timeout: it starts long and shrinks as independent peers
//! confirm the suspicion, so a lone slow observer cannot kill a healthy node but
//! a node that many see fail is declared dead quickly.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use crate::ids::NodeId;

/// One running suspicion.
#[derive(Debug, Clone)]
pub struct Suspicion {
    start: Instant,
    min: Duration,
    max: Duration,
    wanted: usize,
    suspecters: HashSet<NodeId>,
}

impl Suspicion {
    /// A suspicion raised by `by` at `start`, with timeout bounds and the number of
    /// confirmations after which it runs at `min`.
    pub fn new(by: NodeId, start: Instant, min: Duration, max: Duration, wanted: usize) -> Self {
        Self {
            start,
            min,
            max: max.max(min),
            wanted,
            suspecters: HashSet::from([by]),
        }
    }

    /// Records that `by` also suspects the node; returns whether it was new.
    pub fn confirm(&mut self, by: NodeId) -> bool {
        self.suspecters.insert(by)
    }

    /// When the suspicion began.
    pub fn started(&self) -> Instant {
        self.start
    }

    /// Independent confirmations beyond the first suspecter.
    pub fn confirmations(&self) -> usize {
        self.suspecters.len().saturating_sub(1)
    }

    /// The current timeout: `max - (max - min) * ln(c + 1) / ln(k + 1)`, never
    /// below `min`.
    pub fn timeout(&self) -> Duration {
        if self.wanted == 0 {
            return self.min;
        }
        let c = self.confirmations().min(self.wanted) as f64;
        let frac = (c + 1.0).ln() / (self.wanted as f64 + 1.0).ln();
        let span = self.max.saturating_sub(self.min);
        self.max.saturating_sub(span.mul_f64(frac)).max(self.min)
    }

    /// When the node is declared dead unless it refutes first.
    pub fn deadline(&self) -> Instant {
        self.start + self.timeout()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: u32) -> NodeId {
        NodeId::parse(&format!("n{i}")).unwrap()
    }

    #[test]
    fn shrinks_from_max_to_min_with_confirmations() {
        let t0 = Instant::now();
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(6));
        let mut s = Suspicion::new(n(0), t0, min, max, 3);
        assert_eq!(s.timeout(), max);
        let mut last = s.timeout();
        for i in 1..=3 {
            assert!(s.confirm(n(i)));
            assert!(s.timeout() < last);
            last = s.timeout();
        }
        assert_eq!(s.timeout(), min);
        // Repeats and extra confirmations change nothing.
        assert!(!s.confirm(n(1)));
        s.confirm(n(9));
        assert_eq!(s.timeout(), min);
        assert_eq!(s.deadline(), t0 + min);
    }
}
