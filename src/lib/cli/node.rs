//! `gsp node`: runs a full node until SIGINT or SIGTERM, then leaves the cluster,
//! drains and exits 0.

mod check;
mod reload;

use std::{path::PathBuf, time::Duration};

use super::parse;

mod resolve;
mod serve;
mod signals;

pub(super) use resolve::{Resolved, resolve};
pub(crate) use serve::run;

/// Arguments of `gsp node`. Each flag also has a `GSP_*` variable and a key in
/// the config file; a flag wins over the variable, which wins over the file.
#[derive(Debug, Clone, clap::Args)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "on/off flags of the command line, each its own switch"
)]
#[command(after_long_help = "Examples:
  gsp node                                         # a single-node cluster on 0.0.0.0:50005
  gsp node --join seed-1:50005 --label zone=eu     # join through a seed
  gsp node --config /etc/gsp/gsp.yaml --check-config --json   # validate, print, exit 0/2
  gsp node --exec --on-event 'dead,left=/usr/local/bin/page'  # run jobs; page on deaths
  kill -HUP $(pidof gsp)                           # reload labels, seeds, token, TLS files")]
pub(crate) struct NodeArgs {
    /// YAML config in iarnet's layout plus a `gsp:` section.
    #[arg(long, env = "GSP_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check the flags, environment and config file, print the effective
    /// settings (--json: one object) and exit: 0 valid, 2 naming each problem.
    /// Binds nothing and leaves the data dir alone.
    #[arg(long)]
    check_config: bool,
    /// gRPC address to serve on [default: 0.0.0.0:50005].
    #[arg(long, env = "GSP_LISTEN", value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Address peers dial [default: the listen address; for 0.0.0.0, this host's
    /// first non-loopback IPv4 address].
    #[arg(long, env = "GSP_ADVERTISE", value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// Node name [default: the host name].
    #[arg(long, env = "GSP_NAME")]
    name: Option<String>,
    /// Domain: only nodes of the same domain see each other [default: default].
    #[arg(long, env = "GSP_DOMAIN")]
    domain: Option<String>,
    /// Directory for the node id and persisted state; one node per directory
    /// [default: $XDG_STATE_HOME/gsp or ~/.local/state/gsp; /var/lib/gsp as
    /// root; ./gsp-data if it holds a node id].
    #[arg(long, env = "GSP_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Seed to join through (repeatable); retried with backoff while down.
    #[arg(
        long,
        env = "GSP_JOIN",
        value_name = "HOST:PORT",
        value_delimiter = ','
    )]
    join: Vec<String>,
    /// Gossip round: one probe and one push per round; fractions allowed [default: 1].
    #[arg(long, env = "GSP_GOSSIP_INTERVAL", value_name = "SECS", value_parser = parse::duration)]
    gossip_interval: Option<Duration>,
    /// Peers pushed pending updates each round [default: 3].
    #[arg(long, env = "GSP_FANOUT", value_name = "N")]
    fanout: Option<usize>,
    /// How long dead and left nodes stay listed [default: 180].
    #[arg(long, env = "GSP_NODE_TTL", value_name = "SECS", value_parser = parse::duration)]
    node_ttl: Option<Duration>,
    /// HTTP side port (node list, /metrics, /healthz), or `off` [default: 127.0.0.1:50080].
    #[arg(long, env = "GSP_HTTP_LISTEN", value_name = "HOST:PORT|off")]
    http_listen: Option<String>,
    /// Label published with this node (repeatable).
    #[arg(
        long,
        env = "GSP_LABELS",
        value_name = "KEY=VALUE",
        value_delimiter = ','
    )]
    label: Vec<String>,
    /// Time between resource readings; fractions allowed [default: 30].
    #[arg(long, env = "GSP_RESOURCE_INTERVAL", value_name = "SECS", value_parser = parse::duration)]
    resource_interval: Option<Duration>,
    /// Declared capacity overriding detected totals, any subset:
    /// cpu=8 (cores) or cpu=8000m, memory=16GiB, gpu=2.
    #[arg(long, env = "GSP_CAPACITY", value_name = "cpu=..,memory=..,gpu=..")]
    capacity: Option<String>,
    /// Largest payload this node sends or accepts [default: 64MiB].
    #[arg(long, env = "GSP_MAX_PAYLOAD", value_name = "SIZE", value_parser = parse::size)]
    max_payload: Option<u64>,
    /// Where a received broadcast is announced: `all` peers or this many random
    /// ones; metadata only, the payload goes by the origin's copies or the swarm [default: 3].
    #[arg(long, env = "GSP_RELAY", value_name = "all|N")]
    relay: Option<String>,
    /// Broadcasts of 256 KiB and more to over 8 peers travel as a swarm: cut
    /// into pieces striped over this many trees of this fanout, so the origin
    /// and every forwarding node upload about one copy; 0 turns it off (the
    /// origin sends every member a copy) [default: 2].
    #[arg(long, env = "GSP_SWARM_FANOUT", value_name = "0|2..16")]
    swarm_fanout: Option<usize>,
    /// Most members listed, this node included; a new node beyond it is
    /// refused (counted in gsp_members_refused_table_full_total) [default: 4096].
    #[arg(long, env = "GSP_MAX_MEMBERS", value_name = "N")]
    max_members: Option<usize>,
    /// How long broadcast ids and payloads are remembered: duplicates within it
    /// are dropped, and a node back from a partition gets what it missed within
    /// it [default: 600].
    #[arg(long, env = "GSP_SEEN_TTL", value_name = "SECS", value_parser = parse::duration)]
    seen_ttl: Option<Duration>,
    /// Command run (with `sh -c`) for every delivered broadcast: payload on stdin,
    /// GSP_MESSAGE_ID, GSP_TOPIC, GSP_ORIGIN, GSP_HOPS in the environment.
    #[arg(long, env = "GSP_ON_MESSAGE", value_name = "CMD")]
    on_message: Option<String>,
    /// On-message commands running at once, at most; deliveries beyond a queue of
    /// 64 are skipped for the command and counted.
    #[arg(long, env = "GSP_ON_MESSAGE_CONCURRENCY", value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    on_message_concurrency: u16,
    /// An on-message command running longer is killed.
    #[arg(long, env = "GSP_ON_MESSAGE_TIMEOUT", value_name = "SECS", default_value = "60", value_parser = parse::duration)]
    on_message_timeout: Duration,
    /// Command run (with `sh -c`) for membership and maintenance events (Serf's
    /// event handlers): `[KIND,...=]CMD`, repeatable. Kinds: joined, updated,
    /// maintenance, suspect, alive_again, dead, left, removed; without kinds,
    /// all but updated. The event as JSON on stdin; GSP_EVENT, GSP_MEMBER_ID,
    /// GSP_MEMBER_NAME, GSP_MEMBER_ADDRESS, GSP_MEMBER_STATE,
    /// GSP_MEMBER_MAINTENANCE, GSP_MEMBER_LABELS (JSON), GSP_NODE_ID,
    /// GSP_NODE_NAME in the environment.
    #[arg(long, value_name = "[KIND,...=]CMD")]
    on_event: Vec<String>,
    /// On-event commands running at once, at most; 1 runs them in event order.
    #[arg(long, env = "GSP_ON_EVENT_CONCURRENCY", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    on_event_concurrency: u16,
    /// An on-event command running longer is killed (its process group).
    #[arg(long, env = "GSP_ON_EVENT_TIMEOUT", value_name = "SECS", default_value = "60", value_parser = parse::duration)]
    on_event_timeout: Duration,
    /// Run jobs sent with `gsp run` (off by default: remote execution is an
    /// attack surface). With an admin token set, starting and cancelling a job
    /// require it; under mTLS, a client certificate.
    #[arg(long, env = "GSP_EXEC")]
    exec: bool,
    /// Jobs running at once, at most; a further `gsp run` is refused.
    #[arg(long, env = "GSP_EXEC_MAX_JOBS", value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    exec_max_jobs: u16,
    /// Output kept per job (the newest bytes; a reader is told what was dropped).
    #[arg(long, env = "GSP_EXEC_LOG_BYTES", value_name = "SIZE", default_value = "8MiB", value_parser = parse::size)]
    exec_log_bytes: u64,
    /// Time a cancelled or timed-out step gets between SIGTERM and SIGKILL.
    #[arg(long, env = "GSP_EXEC_GRACE", value_name = "SECS", default_value = "5", value_parser = parse::duration)]
    exec_grace: Duration,
    /// Let jobs that asked for no GPU see every GPU (by default they get
    /// CUDA_VISIBLE_DEVICES set empty: no device; a job that asked for GPUs
    /// always sees exactly its own).
    #[arg(long, env = "GSP_EXEC_EXPOSE_GPUS")]
    exec_expose_gpus: bool,
    /// The NVML library to read GPUs through [default: the system's
    /// libnvidia-ml.so.1]; a missing driver means no GPUs, logged once.
    #[arg(long, env = "GSP_NVML_LIBRARY", value_name = "PATH")]
    nvml_library: Option<PathBuf>,
    /// Require this bearer token on mutating admin calls (maint set, send);
    /// prefer the variable or a file: flags show in `ps`.
    #[arg(
        long,
        env = "GSP_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        conflicts_with = "admin_token_file"
    )]
    admin_token: Option<String>,
    /// Read the admin token from this file (surrounding whitespace trimmed).
    #[arg(long, env = "GSP_ADMIN_TOKEN_FILE", value_name = "PATH")]
    admin_token_file: Option<PathBuf>,
    /// Also require the admin token on read-only calls (peers, query, status, watch).
    #[arg(long, env = "GSP_REQUIRE_TOKEN_FOR_READS")]
    require_token_for_reads: bool,
    /// Gossip calls (probes, pushes, peer lists) one peer may make per second,
    /// bursts of twice that; more are refused and counted; 0 is off
    /// [default: 200, or 10 per gossip interval if more].
    #[arg(long, env = "GSP_GOSSIP_RATE_LIMIT", value_name = "N")]
    gossip_rate_limit: Option<usize>,
    /// Resource queries one peer may make per second, bursts of twice that;
    /// 0 is off [default: 50].
    #[arg(long, env = "GSP_QUERY_RATE_LIMIT", value_name = "N")]
    query_rate_limit: Option<usize>,
    /// Run without TLS on a reachable address on purpose: silences the
    /// warning (at start and in `gsp peers`) that anyone who can reach the
    /// port can join, inject membership and deliver broadcasts.
    #[arg(long, env = "GSP_INSECURE")]
    insecure: bool,
}
