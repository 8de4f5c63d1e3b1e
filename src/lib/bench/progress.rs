//! Progress reporting seam: the library reports, the CLI decides how to show it.

/// Receives progress of a bench run.
pub trait Progress: Send + Sync {
    /// A new phase with `total` steps begins.
    fn phase(&self, label: &str, total: u64);
    /// `n` more steps are done.
    fn advance(&self, n: u64);
    /// The run is over.
    fn finish(&self);
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn phase(&self, _label: &str, _total: u64) {}
    fn advance(&self, _n: u64) {}
    fn finish(&self) {}
}

/// What one iteration measured (gsp or raw TCP).
#[derive(Debug, Clone, Default)]
pub struct IterationOutcome {
    /// Send-to-ACK latency of every message, nanoseconds.
    pub ack_latencies_ns: Vec<u64>,
    /// First send to last ACK.
    pub convergence: std::time::Duration,
    /// Messages ACKed.
    pub messages: u64,
    /// Payload bytes moved.
    pub bytes: u64,
}

impl IterationOutcome {
    /// Payload bytes per second over the convergence time.
    pub fn throughput(&self) -> f64 {
        let secs = self.convergence.as_secs_f64();
        if secs > 0.0 {
            self.bytes as f64 / secs
        } else {
            0.0
        }
    }
}
