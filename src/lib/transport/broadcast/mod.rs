//! How broadcast traffic reaches a neighbour: over the data plane links, or over
//! the in-memory network in simulations.

pub mod links;
pub mod memory;

use crate::{
    core::{broadcast::state::Control, ids::NodeId, message::OutboundMessage},
    transport::error::SendError,
};

/// Topic of the messages that carry delivery receipts to an origin. Topics
/// starting with `_gsp.` are reserved.
pub const RECEIPT_TOPIC: &str = "_gsp.receipt";
/// Prefix of reserved topics.
pub const RESERVED_TOPIC_PREFIX: &str = "_gsp.";

/// Sends broadcast traffic to neighbours.
#[tonic::async_trait]
pub trait BroadcastTransport: Send + Sync + 'static {
    /// Sends `msg` to node `to` at `addr`; resolves when its hop ACK arrives.
    async fn send(&self, to: &NodeId, addr: &str, msg: OutboundMessage) -> Result<(), SendError>;
    /// Queues bookkeeping for `to` at `addr` (fire and forget).
    fn control(&self, to: &NodeId, addr: &str, control: Control);
    /// Drops any link to `node` (it died or left).
    fn forget(&self, node: &NodeId);
}
