//! What a resource query asks for, and parsing of the amounts people type.

use std::collections::BTreeMap;

use crate::{
    membership::record::{Gpu, Tags},
    units,
};

/// What each GPU a request counts must offer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuFilter {
    /// Free memory on the device, bytes, at least.
    pub memory_bytes: u64,
    /// Text the model name contains (any case); empty: any model.
    pub model: String,
}

/// Longest model text a request may carry.
pub const MAX_MODEL_LEN: usize = 128;

impl GpuFilter {
    /// Whether it asks nothing of a device.
    pub fn is_empty(&self) -> bool {
        self.memory_bytes == 0 && self.model.is_empty()
    }

    /// Whether `g` offers what it asks (free or not: see [`Gpu::is_free`]).
    pub fn matches(&self, g: &Gpu) -> bool {
        g.memory_free_bytes() >= self.memory_bytes
            && (self.model.is_empty() || g.name.to_lowercase().contains(&self.model.to_lowercase()))
    }
}

/// A request: minimum free resources, required tags and labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceRequest {
    /// CPU millicores free.
    pub cpu_millis: i64,
    /// Memory bytes free.
    pub memory_bytes: i64,
    /// Free GPUs (devices: a GPU, or a MIG instance of one) that pass `gpu`.
    pub gpus: i64,
    /// What each of those GPUs must offer.
    pub gpu: GpuFilter,
    /// Tags a node must have (a `true` here requires `true` there).
    pub tags: Tags,
    /// Labels a node must carry with these values.
    pub labels: BTreeMap<String, String>,
}

/// Why an amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not a number with a known unit.
    #[error("'{0}' is not a CPU amount (use cores like 2 or 0.5, or millicores like 2000m)")]
    Cpu(String),
    /// Below zero.
    #[error("amount must not be negative")]
    Negative,
    /// Too large to represent.
    #[error("amount is too large")]
    Overflow,
    /// A size that did not parse.
    #[error(transparent)]
    Size(#[from] units::UnitError),
}

/// Largest amount accepted for any resource (2^53: exact in every JSON reader).
pub const MAX_AMOUNT: i64 = 1 << 53;

/// Parses CPU: cores (`2`, `0.5`) or millicores (`2000m`), Kubernetes-style.
///
/// # Errors
/// Unparsable, negative, or beyond [`MAX_AMOUNT`] millicores.
pub fn parse_cpu(s: &str) -> Result<i64, AmountError> {
    let t = s.trim();
    let (num, scale) = match t.strip_suffix('m') {
        Some(n) => (n.trim(), 1.0),
        None => (t, 1000.0),
    };
    let f: f64 = num.parse().map_err(|_| AmountError::Cpu(s.to_owned()))?;
    if !f.is_finite() {
        return Err(AmountError::Cpu(s.to_owned()));
    }
    if f < 0.0 {
        return Err(AmountError::Negative);
    }
    let millis = (f * scale).round();
    if millis > MAX_AMOUNT as f64 {
        return Err(AmountError::Overflow);
    }
    #[expect(
        clippy::cast_possible_truncation,
        reason = "checked finite, non-negative and bounded above"
    )]
    Ok(millis as i64)
}

/// Parses memory: bytes or a size with a unit (`4GiB`, `512MiB`).
///
/// # Errors
/// Unparsable, negative, or beyond [`MAX_AMOUNT`].
pub fn parse_memory(s: &str) -> Result<i64, AmountError> {
    let b = units::parse_size(s)?;
    i64::try_from(b)
        .ok()
        .filter(|b| *b <= MAX_AMOUNT)
        .ok_or(AmountError::Overflow)
}

/// Parses a GPU count.
///
/// # Errors
/// Not a whole number, negative, or beyond [`MAX_AMOUNT`].
pub fn parse_gpus(s: &str) -> Result<i64, AmountError> {
    let n: i64 = s
        .trim()
        .parse()
        .map_err(|_| AmountError::Size(units::UnitError::NotANumber(s.to_owned())))?;
    if n < 0 {
        return Err(AmountError::Negative);
    }
    if n > MAX_AMOUNT {
        return Err(AmountError::Overflow);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_accepts_cores_and_millicores() {
        assert_eq!(parse_cpu("2"), Ok(2000));
        assert_eq!(parse_cpu("2000m"), Ok(2000));
        assert_eq!(parse_cpu("0.5"), Ok(500));
        assert_eq!(parse_cpu("250m"), Ok(250));
        assert_eq!(parse_cpu("-1"), Err(AmountError::Negative));
        assert!(matches!(parse_cpu("two"), Err(AmountError::Cpu(_))));
        assert_eq!(parse_cpu("1e30"), Err(AmountError::Overflow));
    }

    #[test]
    fn memory_and_gpus_name_the_problem() {
        assert_eq!(parse_memory("4GiB"), Ok(4 << 30));
        assert!(matches!(parse_memory("4XB"), Err(AmountError::Size(_))));
        assert_eq!(
            parse_memory("99999999TiB"),
            Err(AmountError::Size(units::UnitError::Overflow))
        );
        assert_eq!(parse_gpus("2"), Ok(2));
        assert_eq!(parse_gpus("-1"), Err(AmountError::Negative));
        assert!(parse_gpus("1.5").is_err());
    }
}
