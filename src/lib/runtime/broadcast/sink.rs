//! The engine as the data plane's sink: receipts to the origin's tracker,
//! point-to-point messages to the node's direct sink, broadcasts to the state.

use std::sync::{Arc, PoisonError};

use super::{BroadcastEngine, Inner, exec, receipts, stats};
use crate::{
    core::{
        broadcast::state::{Control, PieceVerdict},
        ids::NodeId,
        message::InboundMessage,
    },
    transport::data_plane::sink::{MessageSink, Verdict},
};

impl MessageSink for BroadcastEngine {
    fn deliver(&self, mut msg: InboundMessage) -> Verdict {
        let inner = &self.inner;
        if Inner::is_receipt(&msg.meta.topic) {
            let (verdict, actions) = receipts::on_receipts(inner, &msg);
            exec::run(inner, actions);
            return verdict;
        }
        if msg.meta.hops == 0 {
            return inner.direct.deliver(msg);
        }
        if let Some(reason) = inner.unavailable() {
            stats::inc(&inner.stats.refused);
            return Verdict::Rejected(reason);
        }
        let now = tokio::time::Instant::now().into_std();
        if msg.meta.piece.is_some() {
            return piece(inner, &msg, now);
        }
        if inner.with_state(|s| s.is_seen(&msg.meta.id, now)) {
            stats::inc(&inner.stats.duplicates);
            return Verdict::Duplicate;
        }
        if let Err(why) = check_origin(inner, &msg) {
            return Verdict::Rejected(why);
        }
        // The payload is kept (to serve pulls and digests) for minutes. A received
        // payload is a slice of the stream's receive buffer: keeping it would pin
        // that whole buffer and make the stream allocate fresh memory for every
        // message (measured: 80% of CPU zeroing new pages). One exact copy frees it.
        msg.payload = bytes::Bytes::copy_from_slice(&msg.payload);
        if whole(inner, msg, now) {
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
            a.extend(s.on_want_pieces(from, &control.want_pieces));
            a
        });
        exec::run(inner, actions);
    }
}

/// Under mutual TLS a broadcast is delivered only with its origin's
/// signature, made with a node certificate named as the origin is listed
/// here: straight from its origin or relayed, so a certificate holder cannot
/// deliver under an origin id nobody lists (a connection's certificate names
/// a node, not the ids it may claim).
fn check_origin(inner: &Inner, msg: &InboundMessage) -> Result<(), String> {
    let Some(keys) = &inner.config.origin_auth else {
        return Ok(());
    };
    let name = inner
        .agent
        .with_state(|s| s.get(&msg.meta.origin).map(|r| r.name.clone()));
    keys.verifier
        .verify(
            &msg.meta,
            &msg.payload,
            msg.meta.auth.as_ref(),
            name.as_deref(),
        )
        .inspect_err(|_| stats::inc(&inner.stats.unauthenticated))
}

/// A whole broadcast, checked: delivers and relays it. Returns whether it was new.
fn whole(inner: &Arc<Inner>, msg: InboundMessage, now: std::time::Instant) -> bool {
    let peers = inner.peers.ids();
    let (new, actions) = {
        let mut rng = inner.rng.lock().unwrap_or_else(PoisonError::into_inner);
        inner.with_state(|s| s.on_payload(msg, &peers, now, &mut *rng))
    };
    exec::run(inner, actions);
    new
}

/// A piece of a swarm broadcast: forwarded down its tree at once, and the
/// whole delivered when this piece completes it.
fn piece(inner: &Arc<Inner>, msg: &InboundMessage, now: std::time::Instant) -> Verdict {
    // Not copied here: the core copies the piece into its broadcast's buffer
    // (the only copy kept); forwarding holds this slice of the stream's
    // receive buffer only until the children have it.
    let max = inner.config.max_payload;
    let outcome = inner.with_state(|s| s.on_piece(msg, max, now));
    exec::run(inner, outcome.actions);
    if let Some(assembled) = outcome.complete {
        if let Err(why) = check_origin(inner, &assembled) {
            tracing::warn!(message = %assembled.meta.id, origin = %assembled.meta.origin, reason = %why,
                "assembled broadcast failed its origin check; fetching it from the origin");
            let (id, origin, size) = (
                assembled.meta.id,
                assembled.meta.origin.clone(),
                assembled.payload.len() as u64,
            );
            inner.with_state(|s| s.on_assembled_refused(id, origin, size, now));
        } else {
            whole(inner, assembled, now);
        }
    }
    match outcome.verdict {
        PieceVerdict::New => Verdict::Delivered,
        PieceVerdict::Duplicate => Verdict::Duplicate,
        PieceVerdict::Rejected(why) => {
            stats::inc(&inner.stats.refused);
            Verdict::Rejected(why)
        }
    }
}
