//! Carries out the pure state's actions: hands deliveries to subscribers,
//! sends payloads, pieces and receipt messages (reporting each outcome back:
//! the state decides retries and reroutes), queues control frames, and
//! reports progress to the origin's waiters.

use std::sync::{Arc, PoisonError};

use bytes::Bytes;
use prost::Message as _;
use tracing::debug;

use super::{
    Delivery, Inner, Progress,
    send::{address, send_once},
    stats,
};
use crate::{
    core::{
        broadcast::state::{Action, Control, SendOutcome},
        ids::{MessageId, NodeId},
        message::{InboundMessage, OutboundMessage},
    },
    transport::{broadcast::RECEIPT_TOPIC, pb},
};

/// Carries out `actions` (never blocks: sends run on spawned tasks).
pub(super) fn run(inner: &Arc<Inner>, actions: Vec<Action>) {
    for a in actions {
        match a {
            Action::Deliver(m) => deliver(inner, m),
            Action::Send { to, id, attempt } => {
                let Some(msg) = inner.with_state(|s| s.outbound(&id)) else {
                    continue;
                };
                send_payload(inner, to, msg, attempt);
            }
            Action::SendPiece { to, piece } => send_piece(inner, to, piece),
            Action::Announce { to, entries } => control(
                inner,
                &to,
                Control {
                    announce: entries,
                    ..Control::default()
                },
            ),
            Action::Want { to, id } => control(
                inner,
                &to,
                Control {
                    want: vec![id],
                    ..Control::default()
                },
            ),
            Action::WantPieces { to, id, pieces } => {
                debug!(peer = %to, message = %id, ?pieces, "wanting missing pieces");
                control(
                    inner,
                    &to,
                    Control {
                        want_pieces: vec![(id, pieces)],
                        ..Control::default()
                    },
                );
            }
            Action::Receipts {
                origin,
                ids,
                attempt,
            } => send_receipts(inner, origin, &ids, attempt),
            Action::Acked { id, node, latency } => {
                inner.recent.acked(id);
                progress(inner, id, Progress::Acked { node, latency }, false);
            }
            Action::Done(c) => {
                if c.ending == crate::core::ack_tracker::Ending::Converged {
                    inner
                        .stats
                        .convergence_seconds
                        .observe(c.finished.saturating_duration_since(c.started));
                }
                let id = c.id;
                inner.recent.done(
                    id,
                    c.ending,
                    c.missing.len(),
                    c.departed.len(),
                    c.finished.saturating_duration_since(c.started),
                );
                progress(inner, id, Progress::Done(c), true);
            }
        }
    }
}

fn progress(inner: &Inner, id: MessageId, p: Progress, last: bool) {
    let mut waiters = inner.waiters.lock().unwrap_or_else(PoisonError::into_inner);
    let gone = match waiters.get(&id) {
        Some(tx) => tx.send(p).is_err(),
        None => false,
    };
    if last || gone {
        waiters.remove(&id);
    }
}

fn deliver(inner: &Inner, m: InboundMessage) {
    stats::inc(&inner.stats.delivered);
    if let Some(log) = &inner.seen_log {
        log.record(m.meta.id);
    }
    let d = Delivery {
        id: m.meta.id,
        origin: m.meta.origin,
        topic: m.meta.topic,
        payload: m.payload,
        hops: m.meta.hops,
        created_unix_ns: m.meta.created_unix_ns,
    };
    let mut subs = inner
        .subscribers
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    subs.retain(|s| !s.tx.is_closed());
    for s in subs.iter() {
        if s.topic.as_ref().is_some_and(|t| *t != d.topic) {
            continue;
        }
        if s.tx.try_send(d.clone()).is_err() {
            stats::inc(&s.dropped);
            stats::inc(&inner.stats.local_drops);
        }
    }
}

fn control(inner: &Inner, to: &NodeId, c: Control) {
    let Some(addr) = address(inner, to) else {
        debug!(peer = %to, "control frame for an unknown peer dropped");
        return;
    };
    stats::inc(&inner.stats.control_sent);
    inner.transport.control(to, &addr, c);
}

/// Sends a broadcast payload to `to` (attempt `attempt`); a failure goes
/// back to the state, which may send it again later.
fn send_payload(inner: &Arc<Inner>, to: NodeId, msg: OutboundMessage, attempt: u32) {
    let Ok(permit) = Arc::clone(&inner.sends).try_acquire_owned() else {
        stats::inc(&inner.stats.sends_dropped);
        return;
    };
    let inner2 = Arc::clone(inner);
    inner.tasks.spawn(async move {
        let _permit = permit;
        let len = msg.payload.len() as u64;
        let (id, direct) = (msg.meta.id, msg.meta.origin == inner2.local);
        if attempt > 0 {
            stats::inc(&inner2.stats.send_retries);
        }
        let outcome = send_once(&inner2, &to, msg, |inner| {
            stats::inc(&inner.stats.payload_sends);
            stats::add(&inner.stats.payload_bytes_sent, len);
        })
        .await;
        if let SendOutcome::Failed { retryable } = outcome {
            let now = tokio::time::Instant::now().into_std();
            let gave_up =
                inner2.with_state(|s| s.on_send_failed(&to, id, (attempt, retryable), now));
            if gave_up {
                stats::inc(&inner2.stats.send_failures);
            }
        } else if direct {
            // The origin's own copy: its hop ACK is the receiver's receipt.
            let now = tokio::time::Instant::now().into_std();
            let actions = inner2.with_state(|s| s.on_direct_ack(id, &to, now));
            run(&inner2, actions);
        }
    });
}

/// Sends a piece of a swarm broadcast to `to`; if `to` cannot take it, the
/// state routes it to the nodes below `to`.
fn send_piece(inner: &Arc<Inner>, to: NodeId, msg: OutboundMessage) {
    // At the in-flight bound the piece is dropped, not routed around: that
    // would send more from a node already sending too much. The nodes below
    // `to` stall and pull the whole.
    let Ok(permit) = Arc::clone(&inner.sends).try_acquire_owned() else {
        stats::inc(&inner.stats.sends_dropped);
        return;
    };
    let inner2 = Arc::clone(inner);
    inner.tasks.spawn(async move {
        let _permit = permit;
        let len = msg.payload.len() as u64;
        // One attempt: a piece that cannot reach `to` goes at once to the
        // nodes below it (retrying a dead relay held its whole subtree up for
        // the retries' backoff, 1.5 s); should `to` be alive after all, it
        // fetches the piece it missed like any gap.
        let outcome = send_once(&inner2, &to, msg.clone(), |inner| {
            stats::inc(&inner.stats.piece_sends);
            stats::add(&inner.stats.payload_bytes_sent, len);
        })
        .await;
        if outcome != SendOutcome::Delivered && !inner2.shutdown.is_cancelled() {
            stats::inc(&inner2.stats.send_failures);
            let actions = inner2.with_state(|s| s.on_piece_failed(&msg));
            run(&inner2, actions);
        }
    });
}

/// Sends one receipt message to `origin`, then tells the state how it went
/// (it sends the next, or this one again later).
fn send_receipts(inner: &Arc<Inner>, origin: NodeId, ids: &[MessageId], attempt: u32) {
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
        let outcome = send_once(&inner2, &origin, msg, |_| {}).await;
        if outcome != SendOutcome::Delivered {
            debug!(origin = %origin, receipts = n, attempt, "receipts did not reach their origin");
        }
        if inner2.shutdown.is_cancelled() {
            return;
        }
        let now = tokio::time::Instant::now().into_std();
        let actions = inner2.with_state(|s| s.on_receipts_sent(&origin, outcome, now));
        run(&inner2, actions);
    });
}
