//! ACK tracking: which receivers a message still waits for, and when it ends.
//!
//! Each tracked message has the set of receivers expected to acknowledge it and a
//! deadline. It completes exactly once: when the last expected receiver answers
//! (converged), or when its deadline passes (timed out, with the missing set).
//! Duplicate ACKs, ACKs from receivers not expected, and ACKs for unknown ids
//! change nothing. The tracker holds at most `capacity` messages.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    time::{Duration, Instant},
};

use super::ids::{MessageId, NodeId};

/// How one receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Received and delivered (or already had it).
    Delivered,
    /// Refused, with the receiver's reason.
    Rejected(String),
}

/// One receiver's answer and when it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Who answered.
    pub node: NodeId,
    /// What it said.
    pub answer: Answer,
    /// Time from tracking start to the answer.
    pub latency: Duration,
    /// When the answer arrived.
    pub at: Instant,
}

/// How a tracked message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every expected receiver answered.
    Converged,
    /// The deadline passed first.
    TimedOut,
}

/// A message's final account, produced exactly once.
#[derive(Debug)]
pub struct Completion<T> {
    /// The message.
    pub id: MessageId,
    /// Converged or timed out.
    pub ending: Ending,
    /// When tracking started.
    pub started: Instant,
    /// When it ended.
    pub finished: Instant,
    /// Every answer, in arrival order.
    pub receipts: Vec<Receipt>,
    /// Receivers that never answered, sorted.
    pub missing: Vec<NodeId>,
    /// Receivers no longer waited for because they died or left, in that order.
    pub departed: Vec<NodeId>,
    /// The caller's value given to [`AckTracker::track`].
    pub token: T,
}

/// What an incoming ACK did.
#[derive(Debug)]
pub enum AckEffect<T> {
    /// Recorded; still waiting for others.
    Progress,
    /// Recorded, and it was the last one.
    Completed(Completion<T>),
    /// Changed nothing (unknown id, duplicate, or unexpected receiver).
    Ignored,
}

/// Why a message could not be tracked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackError {
    /// The tracker already holds `capacity` messages.
    #[error("ack tracker is full ({0} messages in flight)")]
    Full(usize),
    /// The id is already being tracked.
    #[error("message {0} is already being tracked")]
    DuplicateId(MessageId),
}

#[derive(Debug)]
struct Entry<T> {
    started: Instant,
    deadline: Instant,
    waiting: HashSet<NodeId>,
    receipts: Vec<Receipt>,
    departed: Vec<NodeId>,
    token: T,
}

/// Tracks in-flight messages until each converges or times out.
#[derive(Debug)]
pub struct AckTracker<T> {
    entries: HashMap<MessageId, Entry<T>>,
    by_deadline: BTreeSet<(Instant, MessageId)>,
    capacity: usize,
}

impl<T> AckTracker<T> {
    /// A tracker for at most `capacity` messages at once.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            by_deadline: BTreeSet::new(),
            capacity,
        }
    }

    /// Messages currently tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Starts tracking `id`, expecting an answer from each of `expected` by `deadline`.
    /// With nobody expected, the message completes at once (returned as `Some`).
    ///
    /// # Errors
    /// The tracker is full, or `id` is already tracked.
    pub fn track(
        &mut self,
        id: MessageId,
        expected: impl IntoIterator<Item = NodeId>,
        now: Instant,
        deadline: Instant,
        token: T,
    ) -> Result<Option<Completion<T>>, TrackError> {
        if self.entries.contains_key(&id) {
            return Err(TrackError::DuplicateId(id));
        }
        if self.entries.len() >= self.capacity {
            return Err(TrackError::Full(self.capacity));
        }
        let waiting: HashSet<NodeId> = expected.into_iter().collect();
        if waiting.is_empty() {
            return Ok(Some(Completion {
                id,
                ending: Ending::Converged,
                started: now,
                finished: now,
                receipts: Vec::new(),
                missing: Vec::new(),
                departed: Vec::new(),
                token,
            }));
        }
        self.by_deadline.insert((deadline, id));
        self.entries.insert(
            id,
            Entry {
                started: now,
                deadline,
                waiting,
                receipts: Vec::new(),
                departed: Vec::new(),
                token,
            },
        );
        Ok(None)
    }

    /// Records `from`'s answer for `id`.
    pub fn on_ack(
        &mut self,
        id: MessageId,
        from: &NodeId,
        answer: Answer,
        now: Instant,
    ) -> AckEffect<T> {
        let Some(entry) = self.entries.get_mut(&id) else {
            return AckEffect::Ignored;
        };
        if !entry.waiting.remove(from) {
            return AckEffect::Ignored;
        }
        entry.receipts.push(Receipt {
            node: from.clone(),
            answer,
            latency: now.saturating_duration_since(entry.started),
            at: now,
        });
        if !entry.waiting.is_empty() {
            return AckEffect::Progress;
        }
        self.finish(id, Ending::Converged, now)
            .map_or(AckEffect::Ignored, AckEffect::Completed)
    }

    /// Stops waiting for `node` on every message (it died or left); returns the
    /// messages that thereby completed. Every message that waited for `node` reports
    /// it as departed when it completes.
    pub fn forget_receiver(&mut self, node: &NodeId, now: Instant) -> Vec<Completion<T>> {
        let mut done = Vec::new();
        for (id, e) in &mut self.entries {
            if e.waiting.remove(node) {
                e.departed.push(node.clone());
                if e.waiting.is_empty() {
                    done.push(*id);
                }
            }
        }
        done.into_iter()
            .filter_map(|id| self.finish(id, Ending::Converged, now))
            .collect()
    }

    /// Ends every message whose deadline is at or before `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Completion<T>> {
        let mut expired = Vec::new();
        while self.by_deadline.first().is_some_and(|(d, _)| *d <= now) {
            if let Some((_, id)) = self.by_deadline.pop_first()
                && let Some(c) = self.finish(id, Ending::TimedOut, now)
            {
                expired.push(c);
            }
        }
        expired
    }

    /// Ends every message now, as timed out (used when the link carrying them breaks).
    pub fn drain(&mut self, now: Instant) -> Vec<Completion<T>> {
        let ids: Vec<MessageId> = self.entries.keys().copied().collect();
        ids.into_iter()
            .filter_map(|id| self.finish(id, Ending::TimedOut, now))
            .collect()
    }

    /// When tracking of `id` started, if it is tracked.
    pub fn started(&self, id: MessageId) -> Option<Instant> {
        self.entries.get(&id).map(|e| e.started)
    }

    /// The earliest deadline of any tracked message.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.first().map(|(d, _)| *d)
    }

    fn finish(&mut self, id: MessageId, ending: Ending, now: Instant) -> Option<Completion<T>> {
        let entry = self.entries.remove(&id)?;
        self.by_deadline.remove(&(entry.deadline, id));
        let mut missing: Vec<NodeId> = entry.waiting.into_iter().collect();
        missing.sort();
        Some(Completion {
            id,
            ending,
            started: entry.started,
            finished: now,
            receipts: entry.receipts,
            missing,
            departed: entry.departed,
            token: entry.token,
        })
    }
}

#[cfg(test)]
mod tests;
