//! The engine as the data plane's sink: receipts to the origin's tracker,
//! point-to-point messages to the node's direct sink, broadcasts to the state.

use std::sync::{Arc, PoisonError};

use super::{BroadcastEngine, Inner, exec, receipts, stats};
use crate::{
    core::{broadcast::state::Control, ids::NodeId, message::InboundMessage},
    transport::data_plane::sink::{MessageSink, Verdict},
};

impl MessageSink for BroadcastEngine {
    fn deliver(&self, mut msg: InboundMessage) -> Verdict {
        let inner = &self.inner;
        if Inner::is_receipt(&msg.meta.topic) {
            return receipts::on_receipts(inner, &msg);
        }
        if msg.meta.hops == 0 {
            return inner.direct.deliver(msg);
        }
        if let Some(reason) = inner.unavailable() {
            stats::inc(&inner.stats.refused);
            return Verdict::Rejected(reason);
        }
        let now = tokio::time::Instant::now().into_std();
        if inner.with_state(|s| s.is_seen(&msg.meta.id, now)) {
            stats::inc(&inner.stats.duplicates);
            return Verdict::Duplicate;
        }
        // Straight from its origin, the connection vouches for the origin (the
        // data plane holds the sender to the stream's peer, and TLS the peer to
        // its certificate); a relayed copy must carry the origin's signature.
        if msg.meta.origin != msg.sender
            && let Some(keys) = &inner.config.origin_auth
        {
            let name = inner
                .agent
                .with_state(|s| s.get(&msg.meta.origin).map(|r| r.name.clone()));
            if let Err(why) = keys.verifier.verify(
                &msg.meta,
                &msg.payload,
                msg.meta.auth.as_ref(),
                name.as_deref(),
            ) {
                stats::inc(&inner.stats.unauthenticated);
                return Verdict::Rejected(why);
            }
        }
        // The payload is kept (to serve pulls and digests) for minutes. A received
        // payload is a slice of the stream's receive buffer: keeping it would pin
        // that whole buffer and make the stream allocate fresh memory for every
        // message (measured: 80% of CPU zeroing new pages). One exact copy frees it.
        msg.payload = bytes::Bytes::copy_from_slice(&msg.payload);
        let peers = inner.peers.ids();
        let (new, actions) = {
            let mut rng = inner.rng.lock().unwrap_or_else(PoisonError::into_inner);
            inner.with_state(|s| s.on_payload(msg, &peers, now, &mut *rng))
        };
        exec::run(inner, actions);
        if new {
            Verdict::Delivered
        } else {
            stats::inc(&inner.stats.duplicates);
            Verdict::Duplicate
        }
    }

    fn on_control(&self, from: &NodeId, mut control: Control) {
        let inner: &Arc<Inner> = &self.inner;
        stats::inc(&inner.stats.control_received);
        if inner.unavailable().is_some() {
            control.announce.clear();
        }
        // Nothing over this node's cap is worth pulling: it would be refused.
        let max = inner.config.max_payload;
        let before = control.announce.len();
        control.announce.retain(|a| a.size <= max);
        if control.announce.len() != before {
            stats::inc(&inner.stats.malformed);
        }
        let now = tokio::time::Instant::now().into_std();
        let actions = inner.with_state(|s| {
            let mut a = s.on_announce(from, control.announce, now);
            a.extend(s.on_want(from, &control.want));
            a
        });
        exec::run(inner, actions);
    }
}
