//! clap value parsers for sizes and durations, with messages naming the problem.

use std::time::Duration;

use crate::core::units;

/// Parses a byte size such as `512KiB`.
///
/// # Errors
/// The text is not a size; the message says why.
pub(crate) fn size(s: &str) -> Result<u64, String> {
    units::parse_size(s).map_err(|e| e.to_string())
}

/// Parses a duration such as `1.5` (seconds) or `250ms`.
///
/// # Errors
/// The text is not a duration; the message says why.
pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    units::parse_duration(s).map_err(|e| e.to_string())
}
