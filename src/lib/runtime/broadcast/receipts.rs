//! Delivery receipts: every node that delivers a broadcast tells its origin.
//! Receipts to one origin are merged (seed 002's "ACK merging"): while one
//! receipt message to an origin is in flight, new receipts wait and leave
//! together in the next, so a burst of deliveries costs a handful of messages.
//! A receipt message is a point-to-point data plane message on topic
//! [`RECEIPT_TOPIC`] carrying a `gsp.gossip.v1.Receipts`, acknowledged and
//! retried per hop like any other.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use bytes::Bytes;
use prost::Message as _;
use tracing::debug;

use super::{Inner, send, stats};
use crate::{
    core::{
        broadcast::state::Action,
        ids::{MessageId, NodeId},
        message::{InboundMessage, OutboundMessage},
    },
    transport::{broadcast::RECEIPT_TOPIC, data_plane::sink::Verdict, pb},
};

/// Receipts waiting for one origin at most; more are dropped (counted) and the
/// origin reports those nodes missing.
pub const MAX_PENDING_PER_ORIGIN: usize = 65_536;
/// Receipts per receipt message at most.
pub const MAX_RECEIPTS_PER_MESSAGE: usize = 4096;

#[derive(Default)]
struct Queue {
    pending: Vec<MessageId>,
    sending: bool,
}

/// Receipts waiting to go out, by origin. Bounded by the membership table (one
/// queue per member) and [`MAX_PENDING_PER_ORIGIN`].
#[derive(Default)]
pub(super) struct Outbox {
    queues: Mutex<HashMap<NodeId, Queue>>,
}

/// Queues a receipt for `id` to `origin`, starting a sender if none runs.
pub(super) fn queue(inner: &Arc<Inner>, origin: NodeId, id: MessageId) {
    let start = {
        let mut queues = inner
            .receipts
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let q = queues.entry(origin.clone()).or_default();
        if q.pending.len() >= MAX_PENDING_PER_ORIGIN {
            stats::inc(&inner.stats.receipts_dropped);
            return;
        }
        q.pending.push(id);
        !std::mem::replace(&mut q.sending, true)
    };
    if start {
        let inner2 = Arc::clone(inner);
        inner
            .tasks
            .spawn(async move { drain(&inner2, origin).await });
    }
}

/// Sends what is pending for `origin` until nothing is.
async fn drain(inner: &Arc<Inner>, origin: NodeId) {
    loop {
        let batch = {
            let mut queues = inner
                .receipts
                .queues
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let Some(q) = queues.get_mut(&origin) else {
                return;
            };
            if q.pending.is_empty() {
                queues.remove(&origin);
                return;
            }
            let n = q.pending.len().min(MAX_RECEIPTS_PER_MESSAGE);
            q.pending.drain(..n).collect::<Vec<_>>()
        };
        let n = batch.len() as u64;
        let body = pb::gossip::v1::Receipts {
            message_ids: batch
                .iter()
                .map(|id| Bytes::copy_from_slice(id.as_bytes()))
                .collect(),
        };
        let msg = OutboundMessage::new(
            inner.local.clone(),
            RECEIPT_TOPIC,
            Bytes::from(body.encode_to_vec()),
            crate::clock::unix_ns(),
        );
        let ok = send::send_with_retries(inner, &origin, msg, |_| {}).await;
        if ok {
            stats::inc(&inner.stats.receipt_messages_sent);
            stats::add(&inner.stats.receipts_sent, n);
        } else {
            debug!(origin = %origin, receipts = n, "receipts could not reach their origin");
            stats::add(&inner.stats.receipts_dropped, n);
        }
        if inner.shutdown.is_cancelled() {
            return;
        }
    }
}

/// A receipt message arrived: its sender delivered these broadcasts of ours.
/// Returns the verdict and the state's actions, for the caller to carry out.
pub(super) fn on_receipts(inner: &Arc<Inner>, msg: &InboundMessage) -> (Verdict, Vec<Action>) {
    if msg.meta.origin != msg.sender {
        stats::inc(&inner.stats.malformed);
        return (
            Verdict::Rejected("receipts must come from the node that delivered".to_owned()),
            Vec::new(),
        );
    }
    let body = match pb::gossip::v1::Receipts::decode(msg.payload.clone()) {
        Ok(b) if b.message_ids.len() <= MAX_RECEIPTS_PER_MESSAGE => b,
        Ok(b) => {
            stats::inc(&inner.stats.malformed);
            return (
                Verdict::Rejected(format!(
                    "{} receipts in one message; the limit is {MAX_RECEIPTS_PER_MESSAGE}",
                    b.message_ids.len()
                )),
                Vec::new(),
            );
        }
        Err(e) => {
            stats::inc(&inner.stats.malformed);
            return (
                Verdict::Rejected(format!("malformed receipts: {e}")),
                Vec::new(),
            );
        }
    };
    let mut ids = Vec::with_capacity(body.message_ids.len());
    for raw in &body.message_ids {
        if let Ok(id) = MessageId::from_slice(raw) {
            ids.push(id);
        } else {
            stats::inc(&inner.stats.malformed);
            return (
                Verdict::Rejected(format!(
                    "malformed receipt: message id of {} bytes",
                    raw.len()
                )),
                Vec::new(),
            );
        }
    }
    stats::add(&inner.stats.receipts_received, ids.len() as u64);
    let now = tokio::time::Instant::now().into_std();
    let node = [msg.sender.clone()];
    let actions = inner.with_state(|s| {
        ids.iter()
            .flat_map(|id| s.on_receipt(*id, &node, now))
            .collect()
    });
    (Verdict::Delivered, actions)
}
