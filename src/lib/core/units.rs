//! Parsing and printing of byte sizes (`512KiB`) and durations (`1.5`, `250ms`).

use std::{fmt, time::Duration};

/// Why a size or duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Nothing to parse.
    #[error("empty value")]
    Empty,
    /// The numeric part was not a number.
    #[error("'{0}' is not a number")]
    NotANumber(String),
    /// The unit suffix is unknown.
    #[error("unknown unit '{unit}' (use {expected})")]
    UnknownUnit {
        /// The suffix as written.
        unit: String,
        /// The accepted suffixes.
        expected: &'static str,
    },
    /// The value was negative.
    #[error("value must not be negative")]
    Negative,
    /// The value does not fit.
    #[error("value is too large")]
    Overflow,
}

const SIZE_UNITS: &str = "B, KiB, MiB, GiB, TiB, KB, MB, GB, TB";
const DURATION_UNITS: &str = "ms, s, m, h, or a plain number of seconds";

/// Splits "12.5MiB" into ("12.5", "MiB").
fn split_number(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(s.len());
    (s[..end].trim(), s[end..].trim())
}

/// Parses a byte size: a plain number of bytes or a number with a unit
/// (`512KiB`, `1MiB`, `20MiB`, `1.5GiB`, `16MB`). Units are case-insensitive;
/// `K`, `M`, `G` alone mean KiB, MiB, GiB.
///
/// # Errors
/// Empty input, an unknown unit, a negative value, or a value over `u64::MAX`.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(UnitError::Empty);
    }
    let (num, unit) = split_number(s);
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(UnitError::UnknownUnit {
                unit: unit.to_owned(),
                expected: SIZE_UNITS,
            });
        }
    };
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(multiplier).ok_or(UnitError::Overflow);
    }
    let f: f64 = num
        .parse()
        .map_err(|_| UnitError::NotANumber(num.to_owned()))?;
    if !f.is_finite() {
        return Err(UnitError::NotANumber(num.to_owned()));
    }
    if f < 0.0 {
        return Err(UnitError::Negative);
    }
    let bytes = (f * multiplier as f64).round();
    if bytes >= u64::MAX as f64 {
        return Err(UnitError::Overflow);
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "checked finite, non-negative and below u64::MAX above"
    )]
    Ok(bytes as u64)
}

/// Parses a duration: a plain number of seconds with optional fraction (`1`,
/// `0.2`) or a number with `ms`, `s`, `m` or `h`.
///
/// # Errors
/// Empty input, an unknown unit, a negative value, or a value too large for a
/// `Duration`.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(UnitError::Empty);
    }
    let (num, unit) = split_number(s);
    let seconds_per_unit = match unit.to_ascii_lowercase().as_str() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(UnitError::UnknownUnit {
                unit: unit.to_owned(),
                expected: DURATION_UNITS,
            });
        }
    };
    let f: f64 = num
        .parse()
        .map_err(|_| UnitError::NotANumber(num.to_owned()))?;
    if !f.is_finite() {
        return Err(UnitError::NotANumber(num.to_owned()));
    }
    if f < 0.0 {
        return Err(UnitError::Negative);
    }
    Duration::try_from_secs_f64(f * seconds_per_unit).map_err(|_| UnitError::Overflow)
}

/// Displays a byte count with a binary unit: `512 KiB`, `1.5 MiB`, `17 B`.
#[derive(Debug, Clone, Copy)]
pub struct HumanBytes(pub u64);

impl fmt::Display for HumanBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut value = self.0 as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit < UNITS.len() - 1 {
            value /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{} B", self.0)
        } else if (value - value.round()).abs() < 0.005 {
            write!(f, "{value:.0} {}", UNITS[unit])
        } else {
            write!(f, "{value:.2} {}", UNITS[unit])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_the_documented_spellings() {
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("20mib"), Ok(20 << 20));
        assert_eq!(parse_size("524288"), Ok(524_288));
        assert_eq!(parse_size("16MB"), Ok(16_000_000));
        assert_eq!(parse_size("1.5 GiB"), Ok(3 << 29));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn sizes_name_what_is_wrong() {
        assert_eq!(
            parse_size("5XB"),
            Err(UnitError::UnknownUnit {
                unit: "XB".into(),
                expected: SIZE_UNITS
            })
        );
        assert_eq!(parse_size("-1KiB"), Err(UnitError::Negative));
        assert_eq!(parse_size(""), Err(UnitError::Empty));
        assert_eq!(parse_size("99999999999TiB"), Err(UnitError::Overflow));
        assert!(matches!(parse_size("KiB"), Err(UnitError::NotANumber(_))));
    }

    #[test]
    fn durations_accept_fractions_and_units() {
        assert_eq!(parse_duration("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("0.2"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("-1"), Err(UnitError::Negative));
        assert!(matches!(
            parse_duration("3 days"),
            Err(UnitError::UnknownUnit { .. })
        ));
    }

    #[test]
    fn human_bytes_reads_naturally() {
        assert_eq!(HumanBytes(17).to_string(), "17 B");
        assert_eq!(HumanBytes(512 * 1024).to_string(), "512 KiB");
        assert_eq!(HumanBytes(3 << 19).to_string(), "1.50 MiB");
    }
}
