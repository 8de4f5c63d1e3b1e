//! What leaves this node later than the input that caused it: delivery
//! receipts batched per origin, and hop retries of whole-payload sends and
//! receipt batches. The runtime and the swarm simulator carry out the
//! actions and report each send's outcome back; when to retry is decided
//! here.
//!
//! - **Receipts.** Every node that delivers a broadcast it got from a relay
//!   tells the origin (from the origin itself, the hop ACK is the receipt).
//!   Receipts to one origin are merged (seed 002's "ACK merging"): while one
//!   receipt message to an origin is in flight, new receipts wait and leave
//!   together in the next, at most [`MAX_RECEIPTS_PER_MESSAGE`] to a
//!   message, so a burst of deliveries costs a handful of messages. At most
//!   [`MAX_PENDING_RECEIPTS_PER_ORIGIN`] wait per origin; more are dropped
//!   (counted) and the origin reports those nodes missing.
//! - **Hop retries.** A payload send or a receipt batch that failed on the
//!   way (a timeout, a broken connection) to a member still up is sent again
//!   after `retry_backoff`, doubling, at most `send_retries` times. A refusal
//!   (too large, rejected) is final, and so is a failure to a member gone.
//!   Pieces are not retried: a piece that cannot reach a relay goes to the
//!   nodes below it at once (see `swarm.rs`). At most
//!   [`MAX_RETRIES_WAITING`] sends wait for a retry; a failure beyond that
//!   is final (counted with the send failures).

use std::{collections::BTreeMap, time::Instant};

use super::{Action, BroadcastState};
use crate::ids::{MessageId, NodeId};

/// Receipts waiting for one origin at most; more are dropped (counted) and the
/// origin reports those nodes missing.
pub const MAX_PENDING_RECEIPTS_PER_ORIGIN: usize = 65_536;
/// Receipts per receipt message at most.
pub const MAX_RECEIPTS_PER_MESSAGE: usize = 4096;
/// Failed payload sends waiting for their retry at most.
pub const MAX_RETRIES_WAITING: usize = 4096;

/// How a send the state asked for ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// The next hop acknowledged it.
    Delivered,
    /// It failed: `retryable` when it may succeed later (a timeout or a
    /// broken connection to a member still up), not for a refusal or a
    /// member gone.
    Failed {
        /// Whether to try again.
        retryable: bool,
    },
}

/// Sends that wait, by kind.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    receipts: BTreeMap<NodeId, ReceiptQueue>,
    /// Failed payload sends waiting for a retry: the next attempt and when.
    retries: BTreeMap<(NodeId, MessageId), (u32, Instant)>,
}

#[derive(Debug, Default)]
struct ReceiptQueue {
    pending: Vec<MessageId>,
    /// The batch on the wire, or waiting for its retry.
    batch: Option<Batch>,
}

#[derive(Debug)]
struct Batch {
    ids: Vec<MessageId>,
    attempt: u32,
    /// Set while it waits for a retry.
    due: Option<Instant>,
}

impl Outbox {
    /// Whether anything waits for a timer.
    pub(super) fn waiting(&self) -> bool {
        !self.retries.is_empty()
            || self
                .receipts
                .values()
                .any(|q| q.batch.as_ref().is_some_and(|b| b.due.is_some()))
    }
}

impl BroadcastState {
    /// Queues a receipt for `id` to `origin`: sent at once when no receipt
    /// message to `origin` is in flight, else with the next.
    pub(super) fn queue_receipt(&mut self, origin: &NodeId, id: MessageId) -> Option<Action> {
        let q = self.outbox.receipts.entry(origin.clone()).or_default();
        if q.pending.len() >= MAX_PENDING_RECEIPTS_PER_ORIGIN {
            self.counters.receipts_dropped += 1;
            return None;
        }
        q.pending.push(id);
        if q.batch.is_some() {
            return None;
        }
        next_batch(origin, q)
    }

    /// The receipt message to `origin` the state asked for ended: the next
    /// one leaves, or this one again later (see the module's rules).
    pub fn on_receipts_sent(
        &mut self,
        origin: &NodeId,
        outcome: SendOutcome,
        now: Instant,
    ) -> Vec<Action> {
        let (retries, backoff) = (self.config.send_retries, self.config.retry_backoff);
        let Some(q) = self.outbox.receipts.get_mut(origin) else {
            return Vec::new();
        };
        let Some(b) = q.batch.as_mut() else {
            return Vec::new();
        };
        let n = b.ids.len() as u64;
        match outcome {
            SendOutcome::Delivered => {
                self.counters.receipt_messages_sent += 1;
                self.counters.receipts_sent += n;
            }
            SendOutcome::Failed { retryable: true } if b.attempt < retries => {
                b.due = Some(now + backoff.saturating_mul(1 << b.attempt.min(16)));
                b.attempt += 1;
                return Vec::new();
            }
            SendOutcome::Failed { .. } => self.counters.receipts_dropped += n,
        }
        q.batch = None;
        let next = next_batch(origin, q);
        if next.is_none() {
            self.outbox.receipts.remove(origin);
        }
        next.into_iter().collect()
    }

    /// A payload send the state asked for (attempt `attempt`, 0 the first)
    /// failed: whether it was given up (else it is sent again later).
    pub fn on_send_failed(
        &mut self,
        to: &NodeId,
        id: MessageId,
        (attempt, retryable): (u32, bool),
        now: Instant,
    ) -> bool {
        if !retryable
            || attempt >= self.config.send_retries
            || self.outbox.retries.len() >= MAX_RETRIES_WAITING
        {
            return true;
        }
        let due = now
            + self
                .config
                .retry_backoff
                .saturating_mul(1 << attempt.min(16));
        self.outbox
            .retries
            .insert((to.clone(), id), (attempt + 1, due));
        false
    }

    /// Sends whose retry is due.
    pub(super) fn due_sends(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let due: Vec<(NodeId, MessageId)> = self
            .outbox
            .retries
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if let Some((attempt, _)) = self.outbox.retries.remove(&key) {
                let (to, id) = key;
                out.push(Action::Send { to, id, attempt });
            }
        }
        for (origin, q) in &mut self.outbox.receipts {
            if let Some(b) = q.batch.as_mut()
                && b.due.is_some_and(|at| at <= now)
            {
                b.due = None;
                out.push(Action::Receipts {
                    origin: origin.clone(),
                    ids: b.ids.clone(),
                    attempt: b.attempt,
                });
            }
        }
        out
    }

    /// `node` is gone: no retry to it, and its receipts are dropped.
    pub(super) fn forget_sends_to(&mut self, node: &NodeId) {
        self.outbox.retries.retain(|(to, _), _| to != node);
        if let Some(q) = self.outbox.receipts.remove(node) {
            let n = q.pending.len() + q.batch.map_or(0, |b| b.ids.len());
            self.counters.receipts_dropped += n as u64;
        }
    }
}

/// The next batch of `q`'s pending receipts, if any.
fn next_batch(origin: &NodeId, q: &mut ReceiptQueue) -> Option<Action> {
    if q.pending.is_empty() {
        return None;
    }
    let n = q.pending.len().min(MAX_RECEIPTS_PER_MESSAGE);
    let ids: Vec<MessageId> = q.pending.drain(..n).collect();
    q.batch = Some(Batch {
        ids: ids.clone(),
        attempt: 0,
        due: None,
    });
    Some(Action::Receipts {
        origin: origin.clone(),
        ids,
        attempt: 0,
    })
}

#[cfg(test)]
mod tests;
