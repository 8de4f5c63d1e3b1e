//! Broadcast over data plane links: one outbound link per neighbour, opened on
//! first use, replaced when it breaks, with a pause after a failed connect so an
//! unreachable peer is not dialled in a loop.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;
use tracing::debug;

use super::BroadcastTransport;
use crate::{
    core::{broadcast::state::Control, ids::NodeId, message::OutboundMessage},
    transport::{
        config::DataPlaneConfig,
        data_plane::{link::PeerLink, stats::DataPlaneStats},
        error::SendError,
        pool::ChannelPool,
    },
};

/// Time before an unreachable peer is dialled again.
const REDIAL_PAUSE: Duration = Duration::from_millis(500);

#[derive(Default)]
struct Slot {
    link: Option<PeerLink>,
    failed_at: Option<Instant>,
}

/// Outbound links of one node.
pub struct LinkSet {
    pool: ChannelPool,
    local: NodeId,
    domain: String,
    config: DataPlaneConfig,
    stats: Arc<DataPlaneStats>,
    /// Per peer, a lock held while connecting, so one link is opened at a time.
    slots: Mutex<HashMap<NodeId, Arc<tokio::sync::Mutex<Slot>>>>,
}

impl std::fmt::Debug for LinkSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSet")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl LinkSet {
    /// Links from `local` through `pool`'s channels.
    pub fn new(
        pool: ChannelPool,
        local: NodeId,
        domain: String,
        config: DataPlaneConfig,
        stats: Arc<DataPlaneStats>,
    ) -> Self {
        Self {
            pool,
            local,
            domain,
            config,
            stats,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, to: &NodeId) -> Arc<tokio::sync::Mutex<Slot>> {
        Arc::clone(
            self.slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(to.clone())
                .or_default(),
        )
    }

    /// The open link to `to`, connecting if needed.
    ///
    /// # Errors
    /// The peer is unreachable (or was moments ago).
    pub async fn link(&self, to: &NodeId, addr: &str) -> Result<PeerLink, SendError> {
        let slot = self.slot(to);
        let mut s = slot.lock().await;
        if let Some(l) = &s.link
            && !l.is_closed()
            && l.addr() == addr
        {
            return Ok(l.clone());
        }
        if let Some(at) = s.failed_at
            && at.elapsed() < REDIAL_PAUSE
        {
            return Err(SendError::LinkClosed {
                peer: to.clone(),
                reason: "connecting failed moments ago".to_owned(),
            });
        }
        let channel = self.pool.get(addr).map_err(|e| SendError::LinkClosed {
            peer: to.clone(),
            reason: e.to_string(),
        })?;
        match PeerLink::connect(
            channel,
            addr,
            self.local.clone(),
            &self.domain,
            self.config.clone(),
            Arc::clone(&self.stats),
        )
        .await
        {
            Ok(l) => {
                s.link = Some(l.clone());
                s.failed_at = None;
                Ok(l)
            }
            Err(e) => {
                s.link = None;
                s.failed_at = Some(Instant::now());
                Err(SendError::LinkClosed {
                    peer: to.clone(),
                    reason: e.to_string(),
                })
            }
        }
    }
}

#[tonic::async_trait]
impl BroadcastTransport for Arc<LinkSet> {
    async fn send(&self, to: &NodeId, addr: &str, msg: OutboundMessage) -> Result<(), SendError> {
        let link = self.link(to, addr).await?;
        link.send(&msg).await?.await.map(|_| ())
    }

    fn control(&self, to: &NodeId, addr: &str, control: Control) {
        let this = Arc::clone(self);
        let (to, addr) = (to.clone(), addr.to_owned());
        tokio::spawn(async move {
            match this.link(&to, &addr).await {
                Ok(link) => {
                    if let Err(e) = link.send_control(&control) {
                        debug!(peer = %to, error = %e, "control frame dropped");
                    }
                }
                Err(e) => debug!(peer = %to, error = %e, "no link for a control frame"),
            }
        });
    }

    fn forget(&self, node: &NodeId) {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(node);
        if let Some(slot) = slot
            && let Ok(s) = slot.try_lock()
            && let Some(l) = &s.link
        {
            l.close("peer left the cluster");
        }
    }
}
