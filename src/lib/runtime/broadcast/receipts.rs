//! Delivery receipts on the wire: the state batches them per origin and
//! decides retries (`core/broadcast/state/outbox.rs`); a receipt message is
//! a point-to-point data plane message on topic [`RECEIPT_TOPIC`] carrying a
//! `gsp.gossip.v1.Receipts`, acknowledged per hop like any other.

use std::sync::Arc;

use bytes::Bytes;
use prost::Message as _;
use tracing::debug;

use super::{Inner, send, stats};
use crate::{
    core::{
        broadcast::state::{Action, MAX_RECEIPTS_PER_MESSAGE, SendOutcome},
        ids::{MessageId, NodeId},
        message::{InboundMessage, OutboundMessage},
    },
    transport::{broadcast::RECEIPT_TOPIC, data_plane::sink::Verdict, pb},
};

/// Sends one receipt message to `origin`, then tells the state how it went
/// (it sends the next, or this one again later).
pub(super) fn send(inner: &Arc<Inner>, origin: NodeId, ids: &[MessageId], attempt: u32) {
    let body = pb::gossip::v1::Receipts {
        message_ids: ids
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
    let n = ids.len();
    let inner2 = Arc::clone(inner);
    inner.tasks.spawn(async move {
        let outcome = send::send_once(&inner2, &origin, msg, |_| {}).await;
        if outcome != SendOutcome::Delivered {
            debug!(origin = %origin, receipts = n, attempt, "receipts did not reach their origin");
        }
        if inner2.shutdown.is_cancelled() {
            return;
        }
        let now = tokio::time::Instant::now().into_std();
        let actions = inner2.with_state(|s| s.on_receipts_sent(&origin, outcome, now));
        super::exec::run(&inner2, actions);
    });
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
