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
use tonic::{Streaming, transport::Channel};
use tracing::debug;

use super::{PROTOCOL_VERSION, frames::Frames, stats::DataPlaneStats};
use crate::{
    core::{
        ack_tracker::{AckEffect, AckTracker, Answer, Completion, Ending},
        ids::{MessageId, NodeId},
        message::OutboundMessage,
    },
    transport::{
        config::DataPlaneConfig,
        error::{SendError, TransportError},
        pb::gossip::v1 as pb,
    },
};

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

impl LinkShared {
    fn closed_error(&self) -> SendError {
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
    fn close(&self, reason: String) {
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
    /// Opens a link over `channel` to the peer at `addr` and completes the
    /// hello/welcome handshake.
    ///
    /// # Errors
    /// The peer is unreachable, refuses the hello (wrong domain, protocol version),
    /// answers wrongly, or takes longer than the connect timeout.
    pub async fn connect(
        channel: Channel,
        addr: &str,
        local: NodeId,
        domain: &str,
        config: DataPlaneConfig,
        stats: Arc<DataPlaneStats>,
    ) -> Result<Self, TransportError> {
        let (queue, rx) = mpsc::channel(config.max_in_flight.max(1));
        let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
        let closed = CancellationToken::new();
        let hello = pb::Hello {
            node_id: local.to_string(),
            domain_id: domain.to_owned(),
            protocol_version: PROTOCOL_VERSION,
        };
        let frames = Frames::new(
            hello,
            control_rx,
            rx,
            local,
            config.max_chunk_bytes,
            Arc::clone(&stats),
            closed.clone().cancelled_owned(),
        );
        let limit = config.max_grpc_message_bytes();
        let mut client = pb::data_plane_client::DataPlaneClient::new(channel)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let handshake = async {
            let mut inbound = client
                .stream(frames)
                .await
                .map_err(|status| TransportError::Unreachable {
                    addr: addr.to_owned(),
                    status,
                })?
                .into_inner();
            match inbound.message().await {
                Ok(Some(pb::Reply {
                    kind: Some(pb::reply::Kind::Welcome(w)),
                })) => Ok((inbound, w)),
                Ok(_) => Err(TransportError::Handshake {
                    addr: addr.to_owned(),
                    reason: "peer did not answer with a welcome".to_owned(),
                }),
                Err(refusal) => Err(TransportError::Unreachable {
                    addr: addr.to_owned(),
                    status: refusal,
                }),
            }
        };
        let (inbound, welcome) = tokio::time::timeout(config.connect_timeout, handshake)
            .await
            .map_err(|_| TransportError::ConnectTimeout {
                addr: addr.to_owned(),
                after: config.connect_timeout,
            })??;
        let peer = NodeId::parse(&welcome.node_id).map_err(|e| TransportError::Handshake {
            addr: addr.to_owned(),
            reason: format!("welcome carries a bad node id: {e}"),
        })?;
        let byte_budget_units =
            u32::try_from(config.max_in_flight_bytes.div_ceil(BUDGET_UNIT).max(1))
                .unwrap_or(u32::MAX >> 4);
        let shared = Arc::new(LinkShared {
            peer,
            addr: addr.to_owned(),
            peer_max_payload: welcome.max_payload_bytes,
            tracker: Mutex::new(AckTracker::new(config.max_in_flight.max(1))),
            permits: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            byte_permits: Arc::new(Semaphore::new(byte_budget_units as usize)),
            byte_budget_units,
            closed,
            close_reason: Mutex::new(None),
            timeouts_in_a_row: std::sync::atomic::AtomicU32::new(0),
            stats,
            config,
        });
        let local_max_payload = shared.config.max_payload_bytes;
        tokio::spawn(read_acks(Arc::clone(&shared), inbound));
        Ok(Self {
            shared,
            queue,
            control,
            local_max_payload,
        })
    }

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

/// Reads ACKs until the stream ends, expiring messages whose ACK is overdue.
async fn read_acks(shared: Arc<LinkShared>, mut inbound: Streaming<pb::Reply>) {
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
