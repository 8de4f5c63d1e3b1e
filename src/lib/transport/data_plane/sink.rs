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

/// A sink that accepts everything and drops it; the node's data plane counters
/// still see each message.
#[derive(Debug, Default, Clone, Copy)]
pub struct DiscardSink;

impl MessageSink for DiscardSink {
    fn deliver(&self, _msg: InboundMessage) -> Verdict {
        Verdict::Delivered
    }
}
