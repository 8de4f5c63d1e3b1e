//! Delivery receipts arriving: a receipt message is a point-to-point data
//! plane message on topic [`RECEIPT_TOPIC`] carrying a
//! `gsp.gossip.v1.Receipts`, acknowledged per hop like any other. The state
//! batches the receipts this node sends per origin and decides their retries
//! (`core/broadcast/state/outbox.rs`); `exec.rs` sends them.
//!
//! [`RECEIPT_TOPIC`]: crate::transport::broadcast::RECEIPT_TOPIC

use std::sync::Arc;

use prost::Message as _;

use super::{Inner, stats};
use crate::{
    core::{
        broadcast::state::{Action, MAX_RECEIPTS_PER_MESSAGE},
        ids::MessageId,
        message::InboundMessage,
    },
    transport::{data_plane::sink::Verdict, pb},
};

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
