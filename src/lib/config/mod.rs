//! Node configuration: flags > environment (`GSP_*`) > config file > defaults.
//! The CLI hands in what flags and environment said; this module merges it with
//! the file, validates everything at once and names each bad setting.

pub mod data_dir;
pub mod file;
mod reader;
mod resolve;
pub mod security;

pub use resolve::resolve;

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use crate::core::membership::config::MembershipConfig;

/// Default gRPC listen address (iarnet's discovery port).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:50005";
/// Default HTTP side port.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:50080";
/// Default resource query hop limit (iarnet's `max_hops`).
pub const DEFAULT_MAX_HOPS: u32 = 5;
/// Largest `--max-payload` a node accepts.
pub const MAX_PAYLOAD_LIMIT: u64 = 4 << 30;
/// Smallest `--max-members`.
pub const MIN_MAX_MEMBERS: usize = 16;
/// Largest `--max-members`: a push-pull carries one digest per member, and a
/// message holds at most 65,536 (a member costs a few KiB on every node).
pub const MAX_MAX_MEMBERS: usize = 65_536;
/// Default resource query timeout (iarnet's `query_timeout_seconds`).
pub use crate::core::resources::query::DEFAULT_QUERY_TIMEOUT;

/// What the flags or the environment set (clap resolves flag over environment).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--advertise`.
    pub advertise: Option<String>,
    /// `--name`.
    pub name: Option<String>,
    /// `--domain`.
    pub domain: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--join`, repeatable; replaces the file's list when given.
    pub join: Vec<String>,
    /// `--gossip-interval`.
    pub gossip_interval: Option<Duration>,
    /// `--fanout`.
    pub fanout: Option<usize>,
    /// `--node-ttl`.
    pub node_ttl: Option<Duration>,
    /// `--http-listen` (`off` disables).
    pub http_listen: Option<String>,
    /// `--label KEY=VALUE`, repeatable; wins over the file's labels per key.
    pub labels: Vec<String>,
    /// `--max-payload`.
    pub max_payload: Option<u64>,
    /// `--resource-interval`.
    pub resource_interval: Option<Duration>,
    /// `--capacity`.
    pub capacity: Option<String>,
    /// `--relay`.
    pub relay: Option<String>,
    /// `--swarm-fanout`.
    pub swarm_fanout: Option<usize>,
    /// `--max-members`.
    pub max_members: Option<usize>,
    /// `--seen-ttl`.
    pub seen_ttl: Option<Duration>,
    /// `--on-message`.
    pub on_message: Option<String>,
    /// `--on-event`, repeatable; replace the file's handlers when given.
    pub on_event: Vec<String>,
    /// `--exec` (only ever `Some(true)`: the flag turns jobs on).
    pub exec: Option<bool>,
}

/// The resolved settings of `gsp node`.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// Address peers dial (`None`: derive from the bound address).
    pub advertise: Option<String>,
    /// iarnet's `host`: advertised with the bound port when `advertise` is unset.
    pub advertise_host: Option<String>,
    /// Node name (`None`: the host name).
    pub name: Option<String>,
    /// Domain.
    pub domain: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Seeds.
    pub join: Vec<String>,
    /// Membership protocol settings.
    pub membership: MembershipConfig,
    /// Whether the periodic anti-entropy exchange runs.
    pub anti_entropy: bool,
    /// HTTP side port (`None`: off).
    pub http_listen: Option<SocketAddr>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Largest payload.
    pub max_payload: u64,
    /// Resource query hop limit.
    pub max_hops: u32,
    /// Resource query timeout.
    pub query_timeout: Duration,
    /// Time between resource readings.
    pub resource_interval: Duration,
    /// Declared capacity, overriding detected totals.
    pub capacity: crate::core::resources::capacity::Declared,
    /// Where received broadcasts are announced.
    pub relay: crate::core::broadcast::config::Relay,
    /// Fanout of swarm broadcasts; 0: off.
    pub swarm_fanout: usize,
    /// How long broadcast ids (and payloads) are remembered.
    pub seen_ttl: Duration,
    /// Command run per delivered broadcast.
    pub on_message: Option<String>,
    /// Commands run per membership or maintenance event.
    pub on_event: Vec<crate::runtime::on_event::EventHandler>,
    /// Whether the node runs jobs (`gsp run`).
    pub exec: bool,
    /// Things worth logging at start-up (accepted but ignored settings).
    pub warnings: Vec<String>,
    /// Things worth logging at start-up at info (where the data dir is).
    pub notes: Vec<String>,
}
