//! A running node: binds the gRPC server (data plane, membership, iarnet
//! discovery, admin, health, reflection) and the HTTP side port, runs the
//! membership agent, and shuts down gracefully.

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tracing::{info, warn};

use super::{
    admin::AdminService,
    admin_maint::MaintApi,
    broadcast::{BroadcastEngine, EngineConfig},
    identity::Identity,
    maintenance::{MaintenanceControl, store::Store},
    membership::{AgentConfig, MembershipAgent},
    resources::ResourceConfig,
};
use crate::{
    core::{
        ids::NodeId,
        membership::record::{MemberRecord, RecordSigner},
    },
    probe::{FakeProbe, ResourceProbe, SystemProbe},
    transport::{
        auth::AdminAuth,
        broadcast::links::LinkSet,
        config::DataPlaneConfig,
        data_plane::{
            link::PeerLink, server::DataPlaneService, sink::MessageSink, stats::DataPlaneStats,
        },
        error::TransportError,
        grpc_errors::{CountErrorsLayer, GrpcErrors},
        membership::{
            grpc::GrpcMembership,
            service::{MembershipService, PeerRates},
        },
        pb,
        pool::{ChannelPool, DEFAULT_POOL_CAPACITY},
        refusals::Refusals,
        tls::{
            self, TlsConfig,
            conns::{ConnLimits, ConnTable},
        },
        traffic::Traffic,
    },
};

/// Default domain: iarnet's nodes without a domain id all meet in "default".
pub const DEFAULT_DOMAIN: &str = "default";
/// Default time for in-flight streams to finish on shutdown.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time the leave announcement may take on shutdown.
pub const DEFAULT_LEAVE_TIMEOUT: Duration = Duration::from_secs(1);

/// Client pools shared by the nodes of one process (see
/// [`ChannelPool::shared`]); plaintext only.
#[derive(Debug, Clone)]
pub struct SharedPools {
    /// Data plane and RPC connections.
    pub data: ChannelPool,
    /// Membership connections.
    pub control: ChannelPool,
}

/// Settings of a running node. `Default` is production-correct.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Human-readable name.
    pub name: String,
    /// Only nodes of the same domain talk to each other.
    pub domain: String,
    /// Address peers should dial; defaults to `advertise_host` with the bound
    /// port, else the bound address.
    pub advertise: Option<String>,
    /// Host to advertise with the bound port (iarnet's `host` key).
    pub advertise_host: Option<String>,
    /// Free-form labels published with the node's record.
    pub labels: BTreeMap<String, String>,
    /// Data plane limits and tuning.
    pub data_plane: DataPlaneConfig,
    /// Membership protocol settings and seeds.
    pub membership: AgentConfig,
    /// How long shutdown waits for in-flight streams.
    pub drain_timeout: Duration,
    /// How long shutdown waits for the leave announcement.
    pub leave_timeout: Duration,
    /// Where resource readings come from.
    pub probe: ProbeChoice,
    /// Resource reading interval and declared capacity.
    pub resources: ResourceConfig,
    /// Time a query started here may take when the caller sets none.
    pub query_timeout: Duration,
    /// Broadcast settings (its `max_payload` should match the data plane's).
    pub broadcast: EngineConfig,
    /// Command run per delivered broadcast.
    pub on_message: Option<super::on_message::OnMessageConfig>,
    /// Commands run per membership event.
    pub on_event: Option<super::on_event::OnEventConfig>,
    /// Whether and how the node runs jobs (`gsp run`).
    pub jobs: super::jobs::JobsConfig,
    /// Admin token checks (none: every admin call is allowed).
    pub auth: AdminAuth,
    /// Per-peer gossip and query call rates the node accepts.
    pub peer_rates: PeerRates,
    /// Mutual TLS for the gRPC port and every connection the node makes
    /// (`None`: plaintext).
    pub tls: Option<TlsConfig>,
    /// Caps on the server's connections, in all and per address.
    pub conn_limits: ConnLimits,
    /// Plaintext on a reachable address on purpose: no warning.
    pub insecure: bool,
    /// Client pools shared with other nodes of this process instead of the
    /// node's own (benchmarks running hundreds of nodes); `None` in production.
    pub shared_pools: Option<SharedPools>,
}

/// Where a node's resource readings come from.
#[derive(Debug, Clone)]
pub enum ProbeChoice {
    /// This machine (sysinfo, NVML, `/dev`).
    System,
    /// Prepared readings (tests, simulations).
    Fake(FakeProbe),
    /// No readings: the node publishes no resources.
    Off,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            domain: DEFAULT_DOMAIN.to_owned(),
            advertise: None,
            advertise_host: None,
            labels: BTreeMap::new(),
            data_plane: DataPlaneConfig::default(),
            membership: AgentConfig::default(),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            leave_timeout: DEFAULT_LEAVE_TIMEOUT,
            probe: ProbeChoice::System,
            resources: ResourceConfig::default(),
            query_timeout: crate::config::DEFAULT_QUERY_TIMEOUT,
            broadcast: EngineConfig::default(),
            on_message: None,
            on_event: None,
            jobs: super::jobs::JobsConfig::default(),
            auth: AdminAuth::open(),
            peer_rates: PeerRates::default(),
            tls: None,
            conn_limits: ConnLimits::default(),
            insecure: false,
            shared_pools: None,
        }
    }
}

/// The sockets a node serves on, bound by the caller (tests bind 127.0.0.1:0).
#[derive(Debug)]
pub struct Listeners {
    /// gRPC: every service on one port.
    pub grpc: TcpListener,
    /// HTTP side port; `None` disables it.
    pub http: Option<TcpListener>,
}

impl From<TcpListener> for Listeners {
    fn from(grpc: TcpListener) -> Self {
        Self { grpc, http: None }
    }
}

/// Errors starting or stopping a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A listener's address could not be read.
    #[error("cannot read the listener's address: {0}")]
    Listener(#[source] std::io::Error),
    /// Reflection could not load the descriptor set.
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The server failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The persisted maintenance state cannot be read.
    #[error(transparent)]
    Maintenance(#[from] super::maintenance::store::StoreError),
    /// The persisted run-time labels cannot be read.
    #[error(transparent)]
    Labels(#[from] super::labels::LabelsError),
    /// The server task panicked or was cancelled.
    #[error("server task ended: {0}")]
    ServerTask(String),
    /// The TLS files cannot be used to sign or check broadcasts.
    #[error(transparent)]
    Tls(#[from] crate::transport::tls::TlsError),
    /// Shared client pools were given to a TLS node (they dial plaintext).
    #[error("shared client pools are plaintext; a TLS node needs its own")]
    SharedPoolsWithTls,
}

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

impl NodeHandle {
    /// Starts serving on `listeners` and joins the cluster through the configured
    /// seeds. Received broadcasts go to the node's broadcast engine; other data
    /// plane messages (point-to-point, `hops == 0`) go to `sink`.
    ///
    /// # Errors
    /// A listener's address cannot be read or reflection cannot be built.
    pub async fn start(
        config: NodeConfig,
        identity: Identity,
        listeners: impl Into<Listeners>,
        sink: Arc<dyn MessageSink>,
    ) -> Result<Self, NodeError> {
        if config.tls.is_some() && config.shared_pools.is_some() {
            return Err(NodeError::SharedPoolsWithTls);
        }
        let listeners = listeners.into();
        let local_addr = listeners.grpc.local_addr().map_err(NodeError::Listener)?;
        let security_warning =
            super::posture::plaintext_warning(config.tls.is_some(), config.insecure, local_addr);
        if let Some(w) = &security_warning {
            warn!("{w}");
        }
        // Refusals nobody else counts: failed authentications, connections.
        let refusals = Arc::new(Refusals::default());
        let auth = config.auth.clone().counting_into(Arc::clone(&refusals));
        let http_addr = match &listeners.http {
            Some(l) => Some(l.local_addr().map_err(NodeError::Listener)?),
            None => None,
        };
        let advertised = super::advertise::choose(
            config.advertise.as_deref(),
            config.advertise_host.as_deref(),
            local_addr,
        );
        if advertised.local_only {
            warn!(advertise = %advertised.addr, "{}", advertised.why);
        } else {
            info!(advertise = %advertised.addr, "advertising {}: {}", advertised.addr, advertised.why);
        }
        let advertise = advertised.addr;
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let stats = Arc::new(DataPlaneStats::default());
        let traffic = Arc::new(Traffic::default());
        let dp = &config.data_plane;
        let (pool, control_pool) = match &config.shared_pools {
            Some(shared) => (shared.data.clone(), shared.control.clone()),
            None => (
                ChannelPool::with_tls(
                    dp.clone(),
                    DEFAULT_POOL_CAPACITY,
                    Arc::clone(&traffic),
                    config.tls.clone(),
                ),
                // Membership gets connections of its own: a probe must never
                // wait behind payload bytes queued on a shared connection (a
                // full link to a peer would otherwise make it look dead), nor
                // share a stalled one.
                ChannelPool::with_tls(
                    dp.clone(),
                    DEFAULT_POOL_CAPACITY,
                    Arc::clone(&traffic),
                    config.tls.clone(),
                ),
            ),
        };

        let store = identity.data_dir().map(Store::in_dir);
        let loaded = super::maintenance::load(store.as_ref())?;
        let mut record = MemberRecord::new(
            identity.node_id.clone(),
            config.name.clone(),
            advertise.clone(),
            config.domain.clone(),
            identity.incarnation,
        );
        let label_overrides = super::labels::load(identity.data_dir())?;
        record.labels = crate::core::labels::effective(&config.labels, &label_overrides);
        record.maintenance = loaded.0.state;
        record.updated_unix_ns = super::view::now_unix_ns();
        // Under TLS, records and broadcasts are signed with the node's key and
        // others' are checked against the CA.
        let keys = match &config.tls {
            Some(tls) => Some((
                tls::origin::OriginSigner::from_tls(tls).map(Arc::new),
                tls::origin::OriginVerifier::from_tls(tls)?,
            )),
            None => None,
        };
        let mut agent_config = config.membership.clone();
        let snapshot = identity.data_dir().map(super::snapshot::Snapshot::in_dir);
        if let Some(snap) = &snapshot {
            let known: Vec<String> = snap.load().into_iter().map(|p| p.address).collect();
            if !known.is_empty() {
                info!(
                    peers = known.len(),
                    "trying the peers known in the last run alongside the seeds"
                );
            }
            agent_config.rejoin = known;
        }
        if let Some((signer, verifier)) = &keys {
            agent_config.record_auth = Some(super::membership::RecordAuth {
                signer: signer.clone().map(|s| s as Arc<dyn RecordSigner>),
                verifier: verifier.clone(),
            });
        }
        let agent = MembershipAgent::start(
            agent_config,
            record,
            Arc::new(GrpcMembership::new(control_pool)),
        );

        let links = LinkSet::new(
            pool.clone(),
            identity.node_id.clone(),
            config.domain.clone(),
            dp.clone(),
            Arc::clone(&stats),
        );
        let mut engine_config = config.broadcast.clone();
        engine_config.seen_dir = identity.data_dir().map(std::path::Path::to_path_buf);
        if let Some((signer, verifier)) = keys {
            engine_config.origin_auth = Some(super::broadcast::OriginKeys { signer, verifier });
        }
        let engine = BroadcastEngine::start(
            engine_config,
            agent.clone(),
            Arc::new(Arc::new(links)),
            sink,
        );
        let data_plane = DataPlaneService::new(
            identity.node_id.clone(),
            config.domain.clone(),
            dp.clone(),
            engine.sink(),
            Arc::clone(&stats),
            shutdown.clone(),
            tasks.clone(),
        )
        .with_names({
            let agent = agent.clone();
            Arc::new(move |id| crate::transport::membership::MembershipHandler::name_of(&agent, id))
        })
        .into_server();
        let (health, health_service) = tonic_health::server::health_reporter();
        let maint =
            MaintenanceControl::start(loaded, store, agent.clone(), engine.clone(), health.clone())
                .await;
        let labels = super::labels::LabelsControl::new(
            config.labels.clone(),
            label_overrides,
            identity.data_dir(),
            agent.clone(),
        );
        let reservations = super::resources::Reservations::default();
        // `gsp watch`, `gsp watch --messages` and `gsp logs` streams, counted
        // together per caller address and in all.
        let stream_slots = super::stream_slots::StreamSlots::default();
        let jobs = super::jobs::Jobs::new(
            config.jobs.clone(),
            reservations.clone(),
            (identity.node_id.to_string(), config.name.clone()),
            identity.data_dir().map(std::path::Path::to_path_buf),
            shutdown.clone(),
        );
        let jobs = super::jobs::service::JobsService::new(jobs, auth.clone(), maint.clone())
            .with_stream_slots(stream_slots.clone())
            .into_server();
        let membership = MembershipService::with_rates(Arc::new(agent.clone()), config.peer_rates);
        let max_admin_request = usize::try_from(config.broadcast.max_payload)
            .unwrap_or(usize::MAX)
            .saturating_add(1 << 20);
        let admin = AdminService::new(
            agent.clone(),
            engine.clone(),
            MaintApi {
                control: maint.clone(),
                labels: labels.clone(),
                agent: agent.clone(),
                pool: pool.clone(),
                auth: auth.clone(),
            },
            shutdown.clone(),
            config.query_timeout,
        )
        .with_security_warning(security_warning)
        .with_stream_slots(stream_slots)
        .into_server(max_admin_request);
        let probe: Option<Box<dyn ResourceProbe>> = match &config.probe {
            ProbeChoice::System => Some(Box::new(SystemProbe::new())),
            ProbeChoice::Fake(f) => Some(Box::new(f.clone())),
            ProbeChoice::Off => None,
        };
        if let Some(probe) = probe {
            tasks.spawn(super::resources::run(
                agent.clone(),
                probe,
                config.resources,
                reservations.clone(),
                shutdown.clone(),
            ));
        }
        if let Some(snap) = snapshot {
            tasks.spawn(super::snapshot::keep(snap, agent.clone(), shutdown.clone()));
        }
        if let Some(handlers) = &config.on_event {
            tasks.spawn(super::on_event::run(
                agent.clone(),
                handlers.clone(),
                super::on_event::LocalNode {
                    id: identity.node_id.to_string(),
                    name: config.name.clone(),
                },
                shutdown.clone(),
            ));
        }
        if let Some(cmd) = &config.on_message {
            tasks.spawn(super::on_message::run(
                engine.clone(),
                cmd.clone(),
                shutdown.clone(),
            ));
        }
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

        let grpc_errors = Arc::new(GrpcErrors::default());
        let router = Server::builder()
            .layer(CountErrorsLayer::new(Arc::clone(&grpc_errors)))
            .layer(tls::roles::NodeOnlyLayer::new(Arc::clone(&refusals)))
            // Gossip cancels calls that time out; under load many resets are normal
            // and must not make h2 drop the connection (its default allows 20).
            .http2_max_pending_accept_reset_streams(Some(1024))
            // A peer that vanished is noticed and its connection slot freed.
            .http2_keepalive_interval(Some(dp.keepalive.interval))
            .http2_keepalive_timeout(Some(dp.keepalive.timeout))
            .max_frame_size(dp.h2_max_frame_bytes)
            .initial_stream_window_size(dp.h2_stream_window_bytes)
            .initial_connection_window_size(dp.h2_connection_window_bytes)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(data_plane)
            .add_service(membership.membership_server())
            .add_service(membership.discovery_server())
            .add_service(jobs)
            .add_service(admin);
        let conns = ConnTable::new(config.conn_limits.clone());
        let incoming = tls::incoming::incoming(
            listeners.grpc,
            Arc::clone(&traffic),
            config.tls.clone(),
            Arc::clone(&conns),
            Arc::clone(&refusals),
            dp.keepalive,
        );
        let signal = shutdown.clone().cancelled_owned();
        let server = tokio::spawn(router.serve_with_incoming_shutdown(incoming, signal));
        let http = listeners.http.map(|l| {
            tokio::spawn(super::http::serve(
                l,
                super::http::Sources {
                    agent: agent.clone(),
                    data_plane: Arc::clone(&stats),
                    traffic: Arc::clone(&traffic),
                    grpc_errors: Arc::clone(&grpc_errors),
                    refusals: Arc::clone(&refusals),
                    conns: Arc::clone(&conns),
                    broadcast: engine.clone(),
                    maintenance: maint.clone(),
                    tls: config.tls.clone(),
                },
                shutdown.clone(),
            ))
        });
        info!(
            node_id = %identity.node_id,
            listen = %local_addr,
            advertise = %advertise,
            http = ?http_addr,
            domain = %config.domain,
            "node serving"
        );

        Ok(Self {
            pool,
            engine,
            maint,
            labels,
            identity,
            config,
            local_addr,
            http_addr,
            advertise,
            stats,
            traffic,
            grpc_errors,
            conns,
            refusals,
            agent,
            shutdown,
            tasks,
            health,
            server: Some(server),
            http,
        })
    }

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
    pub fn labels(&self) -> &super::labels::LabelsControl {
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

    /// Leaves gracefully: reports NOT_SERVING, announces the leave to peers, lets
    /// in-flight streams finish their current message (up to the drain timeout),
    /// then stops. Returns whether everything drained in time.
    pub async fn shutdown(mut self) -> bool {
        self.health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        self.engine.stop().await;
        self.agent.leave(self.config.leave_timeout).await;
        self.shutdown.cancel();
        self.tasks.close();
        let server = self.server.take();
        let http = self.http.take();
        let drain = async {
            self.tasks.wait().await;
            if let Some(server) = server {
                let _ = server.await;
            }
            if let Some(http) = http {
                let _ = http.await;
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
        self.agent.cancel();
        self.engine.cancel();
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some(http) = self.http.take() {
            http.abort();
        }
    }
}
