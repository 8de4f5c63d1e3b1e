//! A running node: binds the gRPC server (data plane, health, reflection) on one
//! port, owns the client pool, and shuts down gracefully.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::transport::{Server, server::TcpIncoming};
use tonic_health::ServingStatus;
use tracing::{info, warn};

use super::identity::Identity;
use crate::{
    core::ids::NodeId,
    transport::{
        config::DataPlaneConfig,
        data_plane::{
            link::PeerLink, server::DataPlaneService, sink::MessageSink, stats::DataPlaneStats,
        },
        error::TransportError,
        pb,
        pool::{ChannelPool, DEFAULT_POOL_CAPACITY},
    },
};

/// Default domain: iarnet's nodes without a domain id all meet in "default".
pub const DEFAULT_DOMAIN: &str = "default";
/// Default time for in-flight streams to finish on shutdown.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of a running node. `Default` is production-correct.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Human-readable name (defaults to the host name at the CLI).
    pub name: String,
    /// Only nodes of the same domain talk to each other.
    pub domain: String,
    /// Address peers should dial; defaults to the bound address.
    pub advertise: Option<String>,
    /// Data plane limits and tuning.
    pub data_plane: DataPlaneConfig,
    /// How long shutdown waits for in-flight streams.
    pub drain_timeout: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            domain: DEFAULT_DOMAIN.to_owned(),
            advertise: None,
            data_plane: DataPlaneConfig::default(),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

/// Errors starting or stopping a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The listener's address could not be read.
    #[error("cannot read the listener's address: {0}")]
    Listener(#[source] std::io::Error),
    /// Reflection could not load the descriptor set.
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The server failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server task panicked or was cancelled.
    #[error("server task ended: {0}")]
    ServerTask(String),
}

/// Owns a running node; dropping it without [`NodeHandle::shutdown`] aborts the server.
#[derive(Debug)]
pub struct NodeHandle {
    identity: Identity,
    config: NodeConfig,
    local_addr: SocketAddr,
    advertise: String,
    pool: ChannelPool,
    stats: Arc<DataPlaneStats>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    health: tonic_health::server::HealthReporter,
    server: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl NodeHandle {
    /// Starts serving on `listener`. Received messages go to `sink`.
    ///
    /// # Errors
    /// The listener's address cannot be read or reflection cannot be built.
    pub async fn start(
        config: NodeConfig,
        identity: Identity,
        listener: TcpListener,
        sink: Arc<dyn MessageSink>,
    ) -> Result<Self, NodeError> {
        let local_addr = listener.local_addr().map_err(NodeError::Listener)?;
        let advertise = config
            .advertise
            .clone()
            .unwrap_or_else(|| advertised_default(local_addr));
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let stats = Arc::new(DataPlaneStats::default());
        let dp = &config.data_plane;

        let data_plane = DataPlaneService::new(
            identity.node_id.clone(),
            config.domain.clone(),
            dp.clone(),
            sink,
            Arc::clone(&stats),
            shutdown.clone(),
            tasks.clone(),
        )
        .into_server();
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<pb::gossip::v1::data_plane_server::DataPlaneServer<DataPlaneService>>()
            .await;
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let router = Server::builder()
            .max_frame_size(dp.h2_max_frame_bytes)
            .initial_stream_window_size(dp.h2_stream_window_bytes)
            .initial_connection_window_size(dp.h2_connection_window_bytes)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(data_plane);
        let signal = shutdown.clone().cancelled_owned();
        let server = tokio::spawn(router.serve_with_incoming_shutdown(incoming, signal));
        info!(node_id = %identity.node_id, listen = %local_addr, advertise = %advertise, "node serving");

        Ok(Self {
            pool: ChannelPool::new(dp.clone(), DEFAULT_POOL_CAPACITY),
            identity,
            config,
            local_addr,
            advertise,
            stats,
            shutdown,
            tasks,
            health,
            server: Some(server),
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> &NodeId {
        &self.identity.node_id
    }

    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address peers dial.
    pub fn advertise(&self) -> &str {
        &self.advertise
    }

    /// Data plane counters.
    pub fn stats(&self) -> &Arc<DataPlaneStats> {
        &self.stats
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

    /// Serves until `signal` resolves or the server stops on its own (it only does
    /// on error).
    ///
    /// # Errors
    /// The server failed.
    pub async fn serve_until(&mut self, signal: impl Future<Output = ()>) -> Result<(), NodeError> {
        let Some(server) = self.server.as_mut() else {
            return Ok(());
        };
        tokio::select! {
            () = signal => Ok(()),
            r = server => {
                self.server = None;
                match r {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(NodeError::Transport(e.into())),
                    Err(join) => Err(NodeError::ServerTask(join.to_string())),
                }
            }
        }
    }

    /// Stops accepting work, lets in-flight streams finish their current message
    /// (up to the drain timeout), then stops the server. Returns whether everything
    /// drained in time.
    pub async fn shutdown(mut self) -> bool {
        self.shutdown.cancel();
        self.health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        self.tasks.close();
        let server = self.server.take();
        let drain = async {
            self.tasks.wait().await;
            if let Some(server) = server {
                let _ = server.await;
            }
        };
        let drained = tokio::time::timeout(self.config.drain_timeout, drain)
            .await
            .is_ok();
        if drained {
            info!(node_id = %self.identity.node_id, "node stopped");
        } else {
            warn!(
                node_id = %self.identity.node_id,
                timeout = ?self.config.drain_timeout,
                "streams did not drain in time; stopping anyway"
            );
        }
        drained
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// The default advertised address: the bound one, with an unspecified IP
/// (0.0.0.0 / ::) replaced by loopback so local peers can dial it.
fn advertised_default(addr: SocketAddr) -> String {
    let mut a = addr;
    if a.ip().is_unspecified() {
        a.set_ip(match a {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    a.to_string()
}
