//! Broadcast over the in-memory network, for simulations: each send calls the
//! peer's sink directly, with the network's loss, delay, crashes and partitions.

use std::time::Duration;

use super::BroadcastTransport;
use crate::{
    core::{
        broadcast::state::Control,
        ids::NodeId,
        message::{InboundMessage, OutboundMessage},
    },
    transport::{data_plane::sink::Verdict, error::SendError, membership::memory::MemoryNetwork},
};

/// How long a lost send waits before it counts as unacknowledged.
const ACK_TIMEOUT: Duration = Duration::from_secs(1);

/// One node's broadcast view of the [`MemoryNetwork`].
#[derive(Debug, Clone)]
pub struct MemoryBroadcast {
    net: MemoryNetwork,
    from: NodeId,
    from_addr: String,
}

impl MemoryBroadcast {
    /// The transport of node `from` at `from_addr`.
    pub fn new(net: MemoryNetwork, from: NodeId, from_addr: &str) -> Self {
        Self {
            net,
            from,
            from_addr: from_addr.to_owned(),
        }
    }
}

#[tonic::async_trait]
impl BroadcastTransport for MemoryBroadcast {
    async fn send(&self, to: &NodeId, addr: &str, msg: OutboundMessage) -> Result<(), SendError> {
        let bytes = msg.payload.len();
        let Some((sink, drop_request, drop_reply, delay)) =
            self.net.route_sink(&self.from_addr, addr, bytes)
        else {
            return Err(SendError::LinkClosed {
                peer: to.clone(),
                reason: "connection refused".to_owned(),
            });
        };
        let timed_out = || SendError::TimedOut {
            peer: to.clone(),
            after: ACK_TIMEOUT,
        };
        if drop_request {
            tokio::time::sleep(ACK_TIMEOUT).await;
            return Err(timed_out());
        }
        tokio::time::sleep(delay).await;
        let verdict = sink.deliver(InboundMessage {
            meta: msg.meta,
            sender: self.from.clone(),
            payload: msg.payload,
            crc32: msg.crc32,
        });
        if drop_reply {
            tokio::time::sleep(ACK_TIMEOUT).await;
            return Err(timed_out());
        }
        tokio::time::sleep(delay).await;
        match verdict {
            Verdict::Delivered | Verdict::Duplicate => Ok(()),
            Verdict::Rejected(reason) => Err(SendError::Rejected {
                peer: to.clone(),
                reason,
            }),
        }
    }

    fn control(&self, _to: &NodeId, addr: &str, control: Control) {
        let Some((sink, drop_request, _, delay)) = self.net.route_sink(&self.from_addr, addr, 64)
        else {
            return;
        };
        if drop_request {
            return;
        }
        let from = self.from.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            sink.on_control(&from, control);
        });
    }

    fn forget(&self, _node: &NodeId) {}
}
