//! A latency histogram in seconds (prometheus-client's), shared by the
//! counters structs: buckets from 0.5 ms doubling to about 65 s, wide enough
//! for a loopback probe and a 64 MiB broadcast over a slow link alike.

use std::time::Duration;

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// Observations of one latency, in seconds.
#[derive(Debug, Clone)]
pub struct Latency(Histogram);

impl Default for Latency {
    fn default() -> Self {
        Self(Histogram::new(exponential_buckets(0.0005, 2.0, 18)))
    }
}

impl Latency {
    /// Records one.
    pub fn observe(&self, d: Duration) {
        self.0.observe(d.as_secs_f64());
    }

    /// The histogram, for `/metrics`.
    pub fn histogram(&self) -> &Histogram {
        &self.0
    }
}
