//! Reading a running node: its addresses, counters, membership agent,
//! broadcast engine, maintenance state and labels, and links to its peers.

use std::{net::SocketAddr, sync::Arc};

use tokio_util::sync::CancellationToken;

use super::NodeHandle;
use crate::{
    core::ids::NodeId,
    runtime::{
        broadcast::BroadcastEngine, maintenance::MaintenanceControl, membership::MembershipAgent,
    },
    transport::{
        data_plane::{link::PeerLink, stats::DataPlaneStats},
        error::TransportError,
        grpc_errors::GrpcErrors,
        refusals::Refusals,
        tls::conns::ConnTable,
        traffic::Traffic,
    },
};

impl NodeHandle {
    /// This node's id.
    pub fn node_id(&self) -> &NodeId {
        &self.identity.node_id
    }

    /// The address the gRPC server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address the HTTP side port is bound to, if enabled.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The address peers dial.
    pub fn advertise(&self) -> &str {
        &self.advertise
    }

    /// Data plane counters.
    pub fn stats(&self) -> &Arc<DataPlaneStats> {
        &self.stats
    }

    /// Bytes on the wire.
    pub fn traffic(&self) -> &Arc<Traffic> {
        &self.traffic
    }

    /// gRPC calls refused with an error status, by service and code.
    pub fn grpc_errors(&self) -> &Arc<GrpcErrors> {
        &self.grpc_errors
    }

    /// The server's connection table.
    pub fn connections(&self) -> &Arc<ConnTable> {
        &self.conns
    }

    /// Failed authentications and refused connections, by reason.
    pub fn refusals(&self) -> &Arc<Refusals> {
        &self.refusals
    }

    /// The membership agent.
    pub fn membership(&self) -> &MembershipAgent {
        &self.agent
    }

    /// The broadcast engine.
    pub fn broadcast(&self) -> &BroadcastEngine {
        &self.engine
    }

    /// The maintenance state.
    pub fn maintenance(&self) -> &MaintenanceControl {
        &self.maint
    }

    /// The labels.
    pub fn labels(&self) -> &crate::runtime::labels::LabelsControl {
        &self.labels
    }

    /// Cancelled when the node starts shutting down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Opens a data plane link to the node at `addr`.
    ///
    /// # Errors
    /// The address is invalid, the peer unreachable, or the handshake fails.
    pub async fn connect(&self, addr: &str) -> Result<PeerLink, TransportError> {
        let channel = self.pool.get(addr)?;
        PeerLink::connect(
            channel,
            addr,
            self.identity.node_id.clone(),
            &self.config.domain,
            self.config.data_plane.clone(),
            Arc::clone(&self.stats),
        )
        .await
    }
}
