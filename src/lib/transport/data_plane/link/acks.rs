//! The receiving side of a link's ACKs: messages completed when their ACK
//! arrives, is refused or times out, and the link closed when the stream ends
//! or the peer stops acknowledging.

use std::{
    sync::{Arc, PoisonError},
    time::Duration,
};

use tokio::time::Instant;
use tonic::Streaming;
use tracing::debug;

use super::{Delivered, LinkShared, MAX_CONSECUTIVE_TIMEOUTS, Waiter};
use crate::{
    core::{
        ack_tracker::{AckEffect, Answer, Completion, Ending},
        ids::MessageId,
    },
    transport::{data_plane::stats::DataPlaneStats, error::SendError, pb::gossip::v1 as pb},
};

impl LinkShared {
    pub(super) fn closed_error(&self) -> SendError {
        let reason = self
            .close_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| "link closed".to_owned());
        SendError::LinkClosed {
            peer: self.peer.clone(),
            reason,
        }
    }

    fn complete(&self, c: Completion<Waiter>) {
        let result = match c.ending {
            Ending::Converged => match c.receipts.into_iter().next() {
                Some(r) => match r.answer {
                    Answer::Delivered => Ok(Delivered {
                        peer: r.node,
                        latency: r.latency,
                        acked_at: Instant::from_std(r.at),
                    }),
                    Answer::Rejected(reason) => Err(SendError::Rejected {
                        peer: r.node,
                        reason,
                    }),
                },
                None => Err(self.closed_error()),
            },
            Ending::TimedOut if self.closed.is_cancelled() => Err(self.closed_error()),
            Ending::TimedOut => Err(SendError::TimedOut {
                peer: self.peer.clone(),
                after: self.config.ack_timeout,
            }),
        };
        let timed_out = matches!(result, Err(SendError::TimedOut { .. }));
        let _ = c.token.tx.send(result);
        if timed_out {
            let n = self
                .timeouts_in_a_row
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            if n >= MAX_CONSECUTIVE_TIMEOUTS && !self.closed.is_cancelled() {
                DataPlaneStats::add(&self.stats.peers_cut_off, 1);
                self.close(format!(
                    "peer stopped acknowledging ({n} ACK timeouts in a row)"
                ));
            }
        } else {
            self.timeouts_in_a_row
                .store(0, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Marks the link closed and fails everything in flight.
    pub(super) fn close(&self, reason: String) {
        {
            let mut r = self
                .close_reason
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if r.is_none() {
                debug!(peer = %self.peer, addr = %self.addr, reason = %reason, "link closed");
                *r = Some(reason);
            }
        }
        self.closed.cancel();
        let drained = self
            .tracker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(Instant::now().into_std());
        for c in drained {
            self.complete(c);
        }
    }
}

/// Reads ACKs until the stream ends, expiring messages whose ACK is overdue.
pub(super) async fn read_acks(shared: Arc<LinkShared>, mut inbound: Streaming<pb::Reply>) {
    const MAX_NAP: Duration = Duration::from_secs(1);
    let reason = loop {
        let wake = shared
            .tracker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_deadline()
            .map_or_else(|| Instant::now() + MAX_NAP, Instant::from_std);
        tokio::select! {
            reply = inbound.message() => match reply {
                Ok(Some(pb::Reply { kind: Some(pb::reply::Kind::Ack(ack)) })) => on_ack(&shared, &ack),
                Ok(Some(_)) => break "peer sent an unexpected reply".to_owned(),
                Ok(None) => break "peer closed the stream".to_owned(),
                Err(status) => break format!("stream failed: {}", status.message()),
            },
            () = tokio::time::sleep_until(wake) => {
                let expired = shared
                    .tracker
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .expire(Instant::now().into_std());
                for c in expired {
                    shared.complete(c);
                }
            }
            () = shared.closed.cancelled() => break "closed locally".to_owned(),
        }
    };
    shared.close(reason);
}

fn on_ack(shared: &LinkShared, ack: &pb::Ack) {
    let Ok(id) = MessageId::from_slice(&ack.message_id) else {
        debug!(peer = %shared.peer, "ack with a malformed message id ignored");
        return;
    };
    let answer = match pb::AckStatus::try_from(ack.status) {
        Ok(pb::AckStatus::Delivered | pb::AckStatus::Duplicate) => Answer::Delivered,
        Ok(pb::AckStatus::Rejected) => Answer::Rejected(ack.reason.clone()),
        Ok(pb::AckStatus::Unspecified) | Err(_) => {
            Answer::Rejected(format!("unknown ack status {}", ack.status))
        }
    };
    let effect = shared
        .tracker
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .on_ack(id, &shared.peer, answer, Instant::now().into_std());
    if let AckEffect::Completed(c) = effect {
        shared.complete(c);
    }
}
