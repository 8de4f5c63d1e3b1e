//! Sending one message to one member: its address, and one attempt whose
//! outcome goes back to the state.

use std::sync::Arc;

use tracing::debug;

use super::Inner;
use crate::{
    core::{broadcast::state::SendOutcome, ids::NodeId, message::OutboundMessage},
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

/// Sends `msg` to `to` once: how it went, for the state (which decides
/// about retries, see `core/broadcast/state/outbox.rs`). A failure may be
/// retried unless it was a refusal (too large, rejected), the member is not
/// known any more, or it is no longer up; `on_attempt` runs before the
/// attempt.
pub(super) async fn send_once(
    inner: &Arc<Inner>,
    to: &NodeId,
    msg: OutboundMessage,
    on_attempt: impl Fn(&Inner),
) -> SendOutcome {
    let failed = |retryable| SendOutcome::Failed { retryable };
    // The peer may have died or left meanwhile.
    let Some(addr) = address(inner, to) else {
        return failed(false);
    };
    on_attempt(inner);
    let sent = tokio::select! {
        r = inner.transport.send(to, &addr, msg) => r,
        () = inner.shutdown.cancelled() => return failed(false),
    };
    match sent {
        Ok(()) | Err(SendError::AlreadyInFlight(_)) => SendOutcome::Delivered,
        Err(e @ (SendError::TooLarge { .. } | SendError::Rejected { .. })) => {
            debug!(peer = %to, error = %e, "broadcast send refused");
            failed(false)
        }
        Err(e) => {
            debug!(peer = %to, error = %e, "broadcast send failed");
            failed(inner.peers.is_up(to) && !inner.shutdown.is_cancelled())
        }
    }
}
