//! The current time as the core sees it: a monotonic instant for timers and a
//! wall clock for what is shown to people and stamped on records. Always passed
//! in, never read, so simulations control it.

use std::time::Instant;

/// A moment, on both clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time, for timeouts.
    pub instant: Instant,
    /// Wall clock, unix nanoseconds.
    pub unix_ns: i64,
}
