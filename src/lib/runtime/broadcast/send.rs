//! Sending one message to one member: its address, and retries until a hop
//! ACK (used by the executor of the state's actions and by the receipts'
//! batcher).

use std::sync::Arc;

use tracing::debug;

use super::{Inner, stats};
use crate::{
    core::{ids::NodeId, message::OutboundMessage},
    transport::error::SendError,
};

/// The address of member `id`, if known.
pub(super) fn address(inner: &Inner, id: &NodeId) -> Option<String> {
    inner.peers.address(id).or_else(|| {
        inner
            .agent
            .with_state(|s| s.get(id).map(|r| r.address.clone()))
    })
}

/// Sends `msg` to `to` until a hop ACK arrives, at most `1 + send_retries`
/// times; `on_attempt` runs before each attempt. Returns whether it was acked.
pub(super) async fn send_with_retries(
    inner: &Arc<Inner>,
    to: &NodeId,
    msg: OutboundMessage,
    on_attempt: impl Fn(&Inner),
) -> bool {
    send_attempts(inner, to, msg, inner.config.send_retries, on_attempt).await
}

/// [`send_with_retries`] with `retries` retries.
pub(super) async fn send_attempts(
    inner: &Arc<Inner>,
    to: &NodeId,
    msg: OutboundMessage,
    retries: u32,
    on_attempt: impl Fn(&Inner),
) -> bool {
    let mut backoff = inner.config.retry_backoff;
    for attempt in 0..=retries {
        if attempt > 0 {
            stats::inc(&inner.stats.send_retries);
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = inner.shutdown.cancelled() => return false,
            }
            backoff = backoff.saturating_mul(2);
        }
        // The peer may have died or left meanwhile.
        let Some(addr) = address(inner, to) else {
            return false;
        };
        on_attempt(inner);
        let sent = tokio::select! {
            r = inner.transport.send(to, &addr, msg.clone()) => r,
            () = inner.shutdown.cancelled() => return false,
        };
        match sent {
            Ok(()) | Err(SendError::AlreadyInFlight(_)) => return true,
            Err(e @ (SendError::TooLarge { .. } | SendError::Rejected { .. })) => {
                debug!(peer = %to, error = %e, "broadcast send refused");
                return false;
            }
            Err(e) => {
                debug!(peer = %to, attempt, error = %e, "broadcast send failed");
                if !inner.peers.is_up(to) {
                    return false;
                }
            }
        }
    }
    false
}
