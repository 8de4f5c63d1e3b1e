//! Runtime labels (`gsp labels set/unset/reset`): changes an operator makes to
//! a running node's labels, kept as an overlay on the configured labels so a
//! config reload still applies to every key nobody changed at run time. Pure:
//! callers pass the time and persist the result.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Most labels one node publishes (peers refuse records with more).
pub const MAX_LABELS: usize = 64;
/// Longest label key or value in bytes (peers refuse longer ones).
pub const MAX_LABEL_BYTES: usize = 256;

/// What operators changed at run time: per key, the value set (`Some`) or the
/// label removed (`None`). Keys not in here follow the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overrides {
    /// Key -> value set, or null for removed.
    pub entries: BTreeMap<String, Option<String>>,
    /// Who made the last change.
    #[serde(default)]
    pub actor: String,
    /// When, unix nanoseconds; 0: never.
    #[serde(default)]
    pub changed_unix_ns: i64,
}

/// One change request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelChange {
    /// Labels to set.
    pub set: BTreeMap<String, String>,
    /// Labels to remove.
    pub unset: Vec<String>,
    /// Keys whose runtime change is dropped so the configuration applies again.
    pub reset: Vec<String>,
    /// Drop every runtime change.
    pub reset_all: bool,
    /// Who asks.
    pub actor: String,
}

/// A change that cannot be made; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// A key is empty, too long or has characters labels may not hold.
    #[error("label key {key:?} {why}")]
    BadKey {
        /// The key.
        key: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A value is too long.
    #[error("label {key:?}: value is {len} bytes; at most {MAX_LABEL_BYTES} are allowed")]
    ValueTooLong {
        /// The key.
        key: String,
        /// The value's length.
        len: usize,
    },
    /// One key is both set and unset or reset.
    #[error("label {0:?} is both set and removed in one request")]
    Conflict(String),
    /// The result would exceed [`MAX_LABELS`].
    #[error("the node would have {0} labels; at most {MAX_LABELS} are allowed")]
    TooMany(usize),
    /// Nothing to do.
    #[error("nothing to change: give labels to set, unset or reset")]
    Empty,
}

/// What a change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelsTransition {
    /// The overlay after the change (to persist).
    pub overrides: Overrides,
    /// The effective labels before.
    pub before: BTreeMap<String, String>,
    /// The effective labels after.
    pub after: BTreeMap<String, String>,
}

impl LabelsTransition {
    /// Whether the published labels changed.
    pub fn changed(&self) -> bool {
        self.before != self.after
    }
}

/// Checks a key: 1-256 bytes of printable ASCII without `=` or spaces (what
/// `--label KEY=VALUE` and `gsp query --label` can express).
///
/// # Errors
/// The key is not usable.
pub fn check_key(key: &str) -> Result<(), LabelError> {
    let bad = |why| {
        Err(LabelError::BadKey {
            key: key.to_owned(),
            why,
        })
    };
    if key.is_empty() {
        return bad("is empty");
    }
    if key.len() > MAX_LABEL_BYTES {
        return bad("is longer than 256 bytes");
    }
    if !key.bytes().all(|b| b.is_ascii_graphic() && b != b'=') {
        return bad("may hold only printable ASCII without spaces or '='");
    }
    Ok(())
}

/// The labels a node publishes: the configured ones with the overlay applied.
pub fn effective(
    configured: &BTreeMap<String, String>,
    overrides: &Overrides,
) -> BTreeMap<String, String> {
    let mut out = configured.clone();
    for (k, v) in &overrides.entries {
        match v {
            Some(v) => out.insert(k.clone(), v.clone()),
            None => out.remove(k),
        };
    }
    out
}

/// Applies `change` at `now_unix_ns`: resets first, then removals, then sets.
/// A key set or removed at run time stays so (whatever the configuration
/// says) until it is reset. A change that alters nothing still succeeds.
///
/// # Errors
/// A bad key or value, a key both set and removed, or too many labels.
pub fn apply(
    configured: &BTreeMap<String, String>,
    current: &Overrides,
    change: LabelChange,
    now_unix_ns: i64,
) -> Result<LabelsTransition, LabelError> {
    if change.set.is_empty()
        && change.unset.is_empty()
        && change.reset.is_empty()
        && !change.reset_all
    {
        return Err(LabelError::Empty);
    }
    for (k, v) in &change.set {
        check_key(k)?;
        if v.len() > MAX_LABEL_BYTES {
            return Err(LabelError::ValueTooLong {
                key: k.clone(),
                len: v.len(),
            });
        }
        if change.unset.contains(k) || change.reset.contains(k) {
            return Err(LabelError::Conflict(k.clone()));
        }
    }
    for k in change.unset.iter().chain(&change.reset) {
        check_key(k)?;
    }
    let mut next = current.clone();
    if change.reset_all {
        next.entries.clear();
    }
    for k in &change.reset {
        next.entries.remove(k);
    }
    for k in change.unset {
        next.entries.insert(k, None);
    }
    for (k, v) in change.set {
        next.entries.insert(k, Some(v));
    }
    let before = effective(configured, current);
    let after = effective(configured, &next);
    if after.len() > MAX_LABELS {
        return Err(LabelError::TooMany(after.len()));
    }
    if before != after || next.entries != current.entries {
        next.actor = change.actor;
        next.changed_unix_ns = now_unix_ns;
    }
    Ok(LabelsTransition {
        overrides: next,
        before,
        after,
    })
}

#[cfg(test)]
mod tests;
