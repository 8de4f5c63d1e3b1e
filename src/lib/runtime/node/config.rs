//! What a node is started with: its settings ([`NodeConfig`]) and their
//! defaults, where its resource readings come from, client pools shared
//! between nodes, and the sockets it serves on.

use std::{collections::BTreeMap, time::Duration};

use tokio::net::TcpListener;

use crate::{
    probe::FakeProbe,
    runtime::{broadcast::EngineConfig, membership::AgentConfig, resources::ResourceConfig},
    transport::{
        auth::AdminAuth, config::DataPlaneConfig, membership::service::PeerRates,
        pool::ChannelPool, tls::TlsConfig, tls::conns::ConnLimits,
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
    pub on_message: Option<crate::runtime::on_message::OnMessageConfig>,
    /// Commands run per membership event.
    pub on_event: Option<crate::runtime::on_event::OnEventConfig>,
    /// Whether and how the node runs jobs (`gsp run`).
    pub jobs: crate::runtime::jobs::JobsConfig,
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
    System {
        /// The NVML library to load (the system's when `None`).
        nvml_library: Option<std::path::PathBuf>,
    },
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
            probe: ProbeChoice::System { nvml_library: None },
            resources: ResourceConfig::default(),
            query_timeout: crate::core::resources::query::DEFAULT_QUERY_TIMEOUT,
            broadcast: EngineConfig::default(),
            on_message: None,
            on_event: None,
            jobs: crate::runtime::jobs::JobsConfig::default(),
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
