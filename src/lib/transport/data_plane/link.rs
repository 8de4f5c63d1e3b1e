//! The sending half of a neighbour link: one long-lived stream to one peer,
//! a bounded number of messages in flight, and an ACK tracker that completes
//! each message's future exactly once.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use super::stats::DataPlaneStats;
use crate::{
    core::{
        ack_tracker::{AckTracker, Answer},
        ids::{MessageId, NodeId},
        message::OutboundMessage,
    },
    transport::{config::DataPlaneConfig, error::SendError, pb::gossip::v1 as pb},
};

mod acks;
mod connect;

/// A positive ACK for one message on one link.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The receiver.
    pub peer: NodeId,
    /// Time from `send` to the ACK.
    pub latency: Duration,
    /// When the ACK was read.
    pub acked_at: Instant,
}

/// Resolves when the message's ACK arrives, is refused, times out or the link closes.
#[derive(Debug)]
pub struct AckFuture {
    rx: oneshot::Receiver<Result<Delivered, SendError>>,
    link: Arc<LinkShared>,
}

impl Future for AckFuture {
    type Output = Result<Delivered, SendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(r)) => Poll::Ready(r),
            Poll::Ready(Err(_)) => Poll::Ready(Err(self.link.closed_error())),
            Poll::Pending => Poll::Pending,
        }
    }
}

struct Waiter {
    tx: oneshot::Sender<Result<Delivered, SendError>>,
    /// Room in the link, held until the message completes.
    _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

/// Control frames queued per link; beyond it they are dropped (the broadcast
/// protocol recovers them by timeouts and digests).
pub const CONTROL_QUEUE: usize = 1024;
/// Consecutive ACK timeouts after which a peer is cut off.
pub const MAX_CONSECUTIVE_TIMEOUTS: u32 = 3;

/// Byte budgets are counted in KiB so any budget fits a semaphore's `u32` acquire.
const BUDGET_UNIT: u64 = 1024;

/// Budget units a payload of `len` bytes takes, at least one and at most the
/// whole budget (so an oversized message travels alone rather than never).
fn budget_units(len: u64, budget_units: u32) -> u32 {
    u32::try_from(len.div_ceil(BUDGET_UNIT))
        .unwrap_or(u32::MAX)
        .clamp(1, budget_units.max(1))
}

#[derive(Debug)]
struct LinkShared {
    peer: NodeId,
    addr: String,
    peer_max_payload: u64,
    config: DataPlaneConfig,
    /// `std::sync::Mutex`: locked only to update the table, never across an await.
    tracker: Mutex<AckTracker<Waiter>>,
    /// Messages in flight.
    permits: Arc<Semaphore>,
    /// Payload bytes in flight, in [`BUDGET_UNIT`]s.
    byte_permits: Arc<Semaphore>,
    byte_budget_units: u32,
    closed: CancellationToken,
    close_reason: Mutex<Option<String>>,
    /// ACK timeouts in a row; a peer that stops acknowledging is cut off.
    timeouts_in_a_row: std::sync::atomic::AtomicU32,
    stats: Arc<DataPlaneStats>,
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waiter")
    }
}

/// A link to one peer. Cheap to clone; the stream closes when the last clone is
/// dropped or [`PeerLink::close`] is called.
#[derive(Debug, Clone)]
pub struct PeerLink {
    shared: Arc<LinkShared>,
    queue: mpsc::Sender<OutboundMessage>,
    control: mpsc::Sender<pb::Control>,
    local_max_payload: u64,
}

impl PeerLink {
    /// The peer's node id, from its welcome.
    pub fn peer(&self) -> &NodeId {
        &self.shared.peer
    }

    /// The peer's address.
    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// Whether the link has closed.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }

    /// Resolves when the link closes.
    pub async fn closed(&self) {
        self.shared.closed.cancelled().await;
    }

    /// Queues `msg`, waiting for room while `max_in_flight` messages or
    /// `max_in_flight_bytes` of payload are queued or unacknowledged; returns a
    /// future for its ACK. Cancelling the wait for room sends nothing.
    ///
    /// # Errors
    /// The payload exceeds this node's or the peer's limit (nothing is sent), the
    /// same id is already in flight on this link, or the link is closed.
    pub async fn send(&self, msg: &OutboundMessage) -> Result<AckFuture, SendError> {
        let shared = &self.shared;
        let len = msg.payload.len() as u64;
        if len > self.local_max_payload {
            return Err(SendError::TooLarge {
                len,
                max: self.local_max_payload,
                whose: "this node's".to_owned(),
            });
        }
        if len > shared.peer_max_payload {
            return Err(SendError::TooLarge {
                len,
                max: shared.peer_max_payload,
                whose: format!("peer {}'s", shared.peer),
            });
        }
        let units = budget_units(len, shared.byte_budget_units);
        let permits = tokio::select! {
            p = async {
                let count = Arc::clone(&shared.permits).acquire_owned().await?;
                let bytes = Arc::clone(&shared.byte_permits).acquire_many_owned(units).await?;
                Ok::<_, tokio::sync::AcquireError>((count, bytes))
            } => p.map_err(|_| shared.closed_error())?,
            () = shared.closed.cancelled() => return Err(shared.closed_error()),
        };
        let (tx, rx) = oneshot::channel();
        let now = Instant::now();
        let id = msg.meta.id;
        {
            let mut tracker = shared
                .tracker
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let waiter = Waiter {
                tx,
                _permits: permits,
            };
            let outcome = tracker.track(
                id,
                [shared.peer.clone()],
                now.into_std(),
                (now + shared.config.ack_timeout).into_std(),
                waiter,
            );
            if outcome.is_err() {
                return Err(SendError::AlreadyInFlight(id));
            }
        }
        // Closing sets the flag before draining the tracker, so either the drain saw
        // this entry or this check sees the flag.
        if shared.closed.is_cancelled() {
            self.fail(id);
            return Err(shared.closed_error());
        }
        // The permits bound the queue to its capacity, so `try_send` only fails when
        // the link has closed; staying synchronous here keeps `send` cancel-safe.
        if self.queue.try_send(msg.clone()).is_err() {
            self.fail(id);
            return Err(shared.closed_error());
        }
        Ok(AckFuture {
            rx,
            link: Arc::clone(shared),
        })
    }

    fn fail(&self, id: MessageId) {
        let mut tracker = self
            .shared
            .tracker
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let _ = tracker.on_ack(
            id,
            &self.shared.peer,
            Answer::Rejected("link closed".to_owned()),
            Instant::now().into_std(),
        );
    }

    /// Queues broadcast bookkeeping (never acknowledged).
    ///
    /// # Errors
    /// The control queue is full, or the link has closed.
    pub fn send_control(
        &self,
        control: &crate::core::broadcast::state::Control,
    ) -> Result<(), SendError> {
        match self
            .control
            .try_send(crate::transport::convert::control_to_pb(control))
        {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(SendError::Overloaded(format!(
                "{CONTROL_QUEUE} control frames already queued to peer {}",
                self.shared.peer
            ))),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(self.shared.closed_error()),
        }
    }

    /// Closes the link: the stream ends and messages in flight fail.
    pub fn close(&self, reason: &str) {
        self.shared.close(reason.to_owned());
    }
}
