//! A running node: binds the gRPC server (data plane, membership, iarnet
//! discovery, admin, health, reflection) and the HTTP side port, runs the
//! membership agent, and shuts down gracefully.

use std::{net::SocketAddr, sync::Arc};

use tokio::task::JoinHandle;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    broadcast::BroadcastEngine, identity::Identity, maintenance::MaintenanceControl,
    membership::MembershipAgent,
};
use crate::transport::{
    data_plane::stats::DataPlaneStats, grpc_errors::GrpcErrors, pool::ChannelPool,
    refusals::Refusals, tls::conns::ConnTable, traffic::Traffic,
};

mod access;
mod config;
mod error;
mod start;
mod stop;

pub use config::{
    DEFAULT_DOMAIN, DEFAULT_DRAIN_TIMEOUT, DEFAULT_LEAVE_TIMEOUT, Listeners, NodeConfig,
    ProbeChoice, SharedPools,
};
pub use error::NodeError;

/// Owns a running node; dropping it without [`NodeHandle::shutdown`] stops it
/// abruptly (peers see a crash).
#[derive(Debug)]
pub struct NodeHandle {
    identity: Identity,
    config: NodeConfig,
    local_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    advertise: String,
    pool: ChannelPool,
    stats: Arc<DataPlaneStats>,
    traffic: Arc<Traffic>,
    grpc_errors: Arc<GrpcErrors>,
    conns: Arc<ConnTable>,
    refusals: Arc<Refusals>,
    agent: MembershipAgent,
    engine: BroadcastEngine,
    maint: MaintenanceControl,
    labels: super::labels::LabelsControl,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    health: tonic_health::server::HealthReporter,
    server: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
    http: Option<JoinHandle<std::io::Result<()>>>,
}
