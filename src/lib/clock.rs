//! The clocks, read in one place. The pure cores never read a clock: the
//! runtime and the transport read it here and pass `now` in. The monotonic
//! side is tokio's clock, so tests with paused time control it.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::core::now::Now;

/// Wall-clock unix nanoseconds (0 before 1970, saturating far in the future).
pub fn unix_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// [`unix_ns`], unsigned (incarnations are).
pub fn unix_ns_u64() -> u64 {
    u64::try_from(unix_ns()).unwrap_or(0)
}

/// The current time on both clocks.
pub fn now() -> Now {
    Now {
        instant: tokio::time::Instant::now().into_std(),
        unix_ns: unix_ns(),
    }
}
