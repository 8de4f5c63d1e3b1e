//! Where received messages go: the seam between the wire and the node.

use crate::core::{broadcast::state::Control, ids::NodeId, message::InboundMessage};

/// What the node made of a delivered message; becomes the ACK's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted.
    Delivered,
    /// Already seen; accepted without delivering again.
    Duplicate,
    /// Refused, with a reason for the sender.
    Rejected(String),
}

/// Receives every whole, verified message before it is acknowledged.
///
/// Called on the stream's receive task: it must not block. Slow work (relaying,
/// running handlers) belongs on tasks the sink spawns or queues it hands work to.
pub trait MessageSink: Send + Sync + 'static {
    /// Takes one message and says whether it was accepted.
    fn deliver(&self, msg: InboundMessage) -> Verdict;

    /// Takes broadcast bookkeeping from neighbour `from` (never acknowledged).
    /// Sinks that do no broadcasting ignore it.
    fn on_control(&self, from: &NodeId, control: Control) {
        let _ = (from, control);
    }
}

/// The point-to-point sink of a node whose data plane carries broadcasts
/// only (`gsp node`): a message with `hops == 0` that is not a receipt has no
/// consumer there (broadcasts leave their origin with `hops >= 1`), so it is
/// refused, never acknowledged as delivered; counted as rejected by the node
/// (`gsp_data_rejected_total{reason="node"}`).
#[derive(Debug, Default, Clone, Copy)]
pub struct BroadcastsOnly;

/// Why [`BroadcastsOnly`] refuses a message.
pub const POINT_TO_POINT_REFUSED: &str =
    "point-to-point data (hops 0) has no consumer on this node: broadcasts carry hops >= 1";

impl MessageSink for BroadcastsOnly {
    fn deliver(&self, _msg: InboundMessage) -> Verdict {
        Verdict::Rejected(POINT_TO_POINT_REFUSED.to_owned())
    }
}

/// A sink that accepts everything and drops it; the node's data plane counters
/// still see each message. For load generators (`gsp bench`'s flood, whose
/// nodes measure the data plane itself), never for a node others rely on:
/// its ACK says delivered to no one.
#[derive(Debug, Default, Clone, Copy)]
pub struct DiscardSink;

impl MessageSink for DiscardSink {
    fn deliver(&self, _msg: InboundMessage) -> Verdict {
        Verdict::Delivered
    }
}
