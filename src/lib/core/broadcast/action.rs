//! What the broadcast state says to do, and what it tells its neighbours.

use crate::{
    ack_tracker::Completion,
    ids::{MessageId, NodeId},
    message::{InboundMessage, OutboundMessage},
};

/// An announcement that a node holds a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// The message.
    pub id: MessageId,
    /// Its origin.
    pub origin: NodeId,
    /// Payload size.
    pub size: u64,
}

/// Bookkeeping from a neighbour: what it holds, what it wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Control {
    /// Messages it holds.
    pub announce: Vec<Announce>,
    /// Messages it wants.
    pub want: Vec<MessageId>,
    /// Pieces of swarm broadcasts it wants, by broadcast.
    pub want_pieces: Vec<(MessageId, Vec<u32>)>,
}

impl Control {
    /// Entries it carries (announcements, wants, pieces wanted): what its
    /// size limit counts.
    pub fn entries(&self) -> usize {
        self.announce.len()
            + self.want.len()
            + self
                .want_pieces
                .iter()
                .map(|(_, p)| p.len().max(1))
                .sum::<usize>()
    }
}

/// What the runtime should do.
#[derive(Debug)]
pub enum Action {
    /// Hand the message to local consumers (watchers, the on-message command).
    Deliver(InboundMessage),
    /// Send the stored payload of `id` to `to` (answering a want, or
    /// pushing); if it fails, report it with `on_send_failed`.
    Send {
        /// The peer.
        to: NodeId,
        /// The message.
        id: MessageId,
        /// 0 for the first attempt, then the retry's number.
        attempt: u32,
    },
    /// Send a piece of a swarm broadcast to `to`; if it fails, report it with
    /// `on_piece_failed` so the piece reaches the nodes below `to` another way.
    SendPiece {
        /// The peer.
        to: NodeId,
        /// The piece, its forwarding list in `meta.piece`.
        piece: OutboundMessage,
    },
    /// Tell `to` these messages are here.
    Announce {
        /// The peer.
        to: NodeId,
        /// What is held.
        entries: Vec<Announce>,
    },
    /// Ask `to` for these pieces of the swarm broadcast `id`.
    WantPieces {
        /// The peer.
        to: NodeId,
        /// The broadcast.
        id: MessageId,
        /// The pieces' indexes.
        pieces: Vec<u32>,
    },
    /// Ask `to` for the payload of `id`.
    Want {
        /// The peer.
        to: NodeId,
        /// The message.
        id: MessageId,
    },
    /// Tell `origin` this node delivered these broadcasts (one receipt
    /// message); report how it went with `on_receipts_sent`.
    Receipts {
        /// The broadcasts' origin.
        origin: NodeId,
        /// The broadcasts.
        ids: Vec<MessageId>,
        /// 0 for the first attempt, then the retry's number.
        attempt: u32,
    },
    /// As origin: `node` confirmed delivery of `id`.
    Acked {
        /// The message.
        id: MessageId,
        /// Who delivered it.
        node: NodeId,
        /// Since the send started.
        latency: std::time::Duration,
    },
    /// As origin: a broadcast converged or timed out.
    Done(Completion<()>),
}

/// Counters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counters {
    /// Messages delivered here.
    pub delivered: u64,
    /// Payloads received again (dropped, acknowledged as duplicates).
    pub duplicates: u64,
    /// Pulls abandoned after every attempt.
    pub pulls_abandoned: u64,
    /// Announcements ignored because the pull table was full.
    pub pulls_refused: u64,
    /// Wants that could not be served (payload no longer held).
    pub wants_unserved: u64,
    /// Broadcasts this node started as a swarm of pieces.
    pub swarms_started: u64,
    /// New pieces received.
    pub pieces_received: u64,
    /// Pieces received again (a retry, or a repair that crossed the tree's copy).
    pub pieces_duplicate: u64,
    /// Pieces refused: inconsistent, or too many broadcasts being assembled.
    pub pieces_refused: u64,
    /// Piece sends a peer could not take; the nodes below it (if any) got the
    /// piece from here instead.
    pub pieces_rerouted: u64,
    /// Broadcasts assembled from pieces.
    pub assembled: u64,
    /// Assembled payloads that failed the whole-payload checksum (pulled whole).
    pub assembly_corrupt: u64,
    /// Partial broadcasts pulled whole after no piece came for a while.
    pub assembly_stalls: u64,
    /// Missing pieces wanted from a holder (each want of each piece).
    pub pieces_wanted: u64,
    /// Pieces sent to a peer that wanted them.
    pub pieces_served: u64,
    /// Announcements dropped because too many waited for one peer.
    pub announces_dropped: u64,
    /// Receipt messages the origin's node acknowledged.
    pub receipt_messages_sent: u64,
    /// Receipts in those messages.
    pub receipts_sent: u64,
    /// Receipts dropped: over the per-origin bound, their message failed
    /// every attempt, or their origin is gone.
    pub receipts_dropped: u64,
}

/// Why a broadcast could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginateError {
    /// Too many broadcasts from this node are still being tracked.
    #[error("{0} broadcasts from this node are still in flight")]
    TooManyInFlight(usize),
}
