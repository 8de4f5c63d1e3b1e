//! The audit trail of maintenance changes: the newest `capacity` entries; the
//! oldest is dropped (and counted) when a new one arrives at the bound.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{Maintenance, Transition};

/// Entries kept by default (and persisted with the state).
pub const DEFAULT_AUDIT_CAPACITY: usize = 100;

/// One change of a node's maintenance state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The node whose state changed.
    pub node_id: String,
    /// The state before.
    pub previous_state: Maintenance,
    /// The state after.
    pub state: Maintenance,
    /// Why.
    pub reason: String,
    /// Who.
    pub actor: String,
    /// When, unix nanoseconds.
    pub changed_unix_ns: i64,
}

impl AuditEntry {
    /// The entry for a transition of `node_id`.
    pub fn new(node_id: &str, t: &Transition) -> Self {
        Self {
            node_id: node_id.to_owned(),
            previous_state: t.previous,
            state: t.status.state,
            reason: t.status.reason.clone(),
            actor: t.status.actor.clone(),
            changed_unix_ns: t.status.changed_unix_ns,
        }
    }
}

/// A bounded, oldest-first list of changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLog {
    entries: VecDeque<AuditEntry>,
    capacity: usize,
    dropped: u64,
}

impl AuditLog {
    /// An empty log keeping at most `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    /// Appends `e`, dropping the oldest entry at the bound.
    pub fn push(&mut self, e: AuditEntry) {
        while self.entries.len() >= self.capacity {
            self.entries.pop_front();
            self.dropped += 1;
        }
        self.entries.push_back(e);
    }

    /// The newest `n` entries, newest first.
    pub fn newest(&self, n: usize) -> Vec<AuditEntry> {
        self.entries.iter().rev().take(n).cloned().collect()
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = &AuditEntry> {
        self.entries.iter()
    }

    /// Entries dropped at the bound since this log was created.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: i64) -> AuditEntry {
        AuditEntry {
            node_id: "n".into(),
            previous_state: Maintenance::Normal,
            state: Maintenance::Maintenance,
            reason: String::new(),
            actor: "a".into(),
            changed_unix_ns: i,
        }
    }

    #[test]
    fn keeps_the_newest_entries_and_counts_the_dropped() {
        let mut log = AuditLog::new(3);
        for i in 0..5 {
            log.push(entry(i));
        }
        let newest: Vec<i64> = log.newest(10).iter().map(|e| e.changed_unix_ns).collect();
        assert_eq!(newest, vec![4, 3, 2]);
        assert_eq!(log.dropped(), 2);
        assert_eq!(log.newest(1)[0].changed_unix_ns, 4);
    }
}
