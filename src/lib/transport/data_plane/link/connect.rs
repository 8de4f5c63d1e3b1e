//! Opening a link: the stream to the peer and the hello/welcome handshake.

use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::{BUDGET_UNIT, CONTROL_QUEUE, LinkShared, PeerLink, acks::read_acks};
use crate::{
    core::{ack_tracker::AckTracker, ids::NodeId},
    transport::{
        config::DataPlaneConfig,
        data_plane::{
            PROTOCOL_VERSION,
            body::{self, FrameBody},
            frames::Frames,
            stats::DataPlaneStats,
        },
        error::TransportError,
        pb::gossip::v1 as pb,
    },
};

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
        let handshake = async {
            let mut inbound = body::open(channel, FrameBody::new(frames, limit), limit)
                .await
                .map_err(|status| TransportError::Unreachable {
                    addr: addr.to_owned(),
                    status,
                })?;
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
}
