//! `gsp node`: runs a full node until SIGINT or SIGTERM, then leaves the cluster,
//! drains and exits 0.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tracing::{info, warn};

use super::{GlobalArgs, exit::ExitStatus, exit::UsageError, logging, parse};
use crate::{
    config::{
        self, Overrides,
        security::{Security, SecurityFlags},
    },
    core::broadcast::config::BroadcastConfig,
    core::rate_limit::RateConfig,
    runtime::{
        broadcast::EngineConfig,
        identity::Identity,
        membership::AgentConfig,
        node::{Listeners, NodeConfig, NodeHandle},
        on_message::OnMessageConfig,
        resources::ResourceConfig,
    },
    transport::membership::service::{DEFAULT_GOSSIP_RATE, DEFAULT_QUERY_RATE, PeerRates},
    transport::tls::TlsConfig,
    transport::{config::DataPlaneConfig, data_plane::sink::DiscardSink, keepalive::KeepAlive},
};

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

pub(crate) async fn run(args: NodeArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    let Resolved {
        file,
        settings,
        security,
    } = resolve(&args, &global).map_err(UsageError)?;
    if args.check_config {
        return super::node_check::run(
            &Resolved {
                file,
                settings,
                security,
            },
            &global,
        );
    }
    let running = (settings.clone(), security.clone());
    if logging::from_env().is_none()
        && let Some(spec) = file.as_ref().and_then(|f| f.log.as_deref())
        && let Err(e) = logging::set_filter(spec)
    {
        warn!("gsp.log: {e}");
    }
    for w in &settings.warnings {
        warn!("{w}");
    }
    for n in &settings.notes {
        info!("{n}");
    }

    let identity = Identity::load_or_create(&settings.data_dir)
        .map_err(|e| UsageError(e.to_string()))
        .context("cannot start the node")?;
    let grpc = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| UsageError(format!("cannot listen on {}: {e}", settings.listen)))?;
    let http =
        match settings.http_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                UsageError(format!("cannot listen on {addr} (--http-listen): {e}"))
            })?),
            None => None,
        };
    // Shares its policy with the node's: SIGHUP replaces the token for both.
    let auth_handle = security.auth.clone();
    let peer_rates = peer_rates(&security, settings.membership.gossip_interval);
    let tls = match security.tls.clone() {
        Some(files) => {
            Some(TlsConfig::load(files).map_err(|e| UsageError(format!("cannot use TLS: {e}")))?)
        }
        None => None,
    };
    let cert_name = config::security::node_name_from_cert(
        settings.name.as_deref(),
        tls.as_ref().and_then(TlsConfig::own_grant).as_ref(),
    )
    .map_err(UsageError)?;
    let name = cert_name
        .or(settings.name)
        .or_else(|| sysinfo::System::host_name().ok())
        .unwrap_or_else(|| identity.node_id.to_string());
    let config = NodeConfig {
        name,
        domain: settings.domain,
        advertise: settings.advertise,
        advertise_host: settings.advertise_host,
        labels: settings.labels,
        data_plane: DataPlaneConfig {
            max_payload_bytes: settings.max_payload,
            keepalive: KeepAlive::for_gossip_interval(settings.membership.gossip_interval),
            ..DataPlaneConfig::default()
        },
        membership: AgentConfig {
            membership: settings.membership,
            seeds: settings.join,
            periodic_anti_entropy: settings.anti_entropy,
            ..AgentConfig::default()
        },
        resources: ResourceConfig {
            interval: settings.resource_interval,
            declared: settings.capacity,
        },
        query_timeout: settings.query_timeout,
        broadcast: EngineConfig {
            broadcast: BroadcastConfig {
                relay: settings.relay,
                swarm_fanout: settings.swarm_fanout.max(2),
                swarm_min_bytes: if settings.swarm_fanout == 0 {
                    u64::MAX
                } else {
                    crate::core::broadcast::config::DEFAULT_SWARM_MIN_BYTES
                },
                // The root of a tree gets the list of every other member with
                // each piece; it must fit a data plane frame.
                swarm_max_list_bytes: DataPlaneConfig::default().max_chunk_bytes / 2,
                seen_ttl: settings.seen_ttl,
                store_ttl: settings.seen_ttl,
                ..BroadcastConfig::default()
            },
            max_payload: settings.max_payload,
            ..EngineConfig::default()
        },
        on_message: settings.on_message.map(|command| OnMessageConfig {
            command,
            concurrency: usize::from(args.on_message_concurrency),
            timeout: args.on_message_timeout,
        }),
        on_event: (!settings.on_event.is_empty()).then(|| {
            crate::runtime::on_event::OnEventConfig {
                handlers: settings.on_event,
                concurrency: usize::from(args.on_event_concurrency),
                timeout: args.on_event_timeout,
            }
        }),
        jobs: crate::runtime::jobs::JobsConfig {
            enabled: settings.exec,
            max_running: usize::from(args.exec_max_jobs),
            log_bytes: usize::try_from(args.exec_log_bytes).unwrap_or(usize::MAX),
            grace: args.exec_grace,
            history_log_bytes: usize::try_from(args.exec_log_bytes)
                .unwrap_or(usize::MAX)
                .saturating_mul(4),
            log_file_bytes: args.exec_log_bytes.saturating_mul(8),
            history_file_bytes: args.exec_log_bytes.saturating_mul(32),
            ..crate::runtime::jobs::JobsConfig::default()
        },
        peer_rates,
        tls: tls.clone(),
        insecure: security.insecure,
        auth: auth_handle.clone(),
        ..NodeConfig::default()
    };
    // Before the node serves (and logs that it does): a SIGHUP from then on
    // must find the handler in place.
    let hup = hangup_signal();
    let mut node = NodeHandle::start(
        config,
        identity,
        Listeners { grpc, http },
        Arc::new(DiscardSink),
    )
    .await?;
    // Always: without a handler, SIGHUP (what `systemctl reload` and `kill
    // -HUP` send) would kill the node as if it had crashed.
    let reloader = super::node_reload::Reloader {
        args,
        global,
        settings: running.0,
        security: running.1,
        log: file.as_ref().and_then(|f| f.log.clone()),
        auth: auth_handle,
        tls,
        agent: node.membership().clone(),
        labels: node.labels().clone(),
    };
    tokio::spawn(reload_on_sighup(hup, reloader));
    notify_systemd(&[sd_notify::NotifyState::Ready]);
    node.serve_until(shutdown_signal()).await?;
    notify_systemd(&[sd_notify::NotifyState::Stopping]);
    exit_on_second_interrupt();
    node.shutdown().await;
    Ok(ExitStatus::Success)
}

/// The configuration as read now: the file, the settings, the security.
pub(super) struct Resolved {
    pub(super) file: Option<config::file::FileConfig>,
    pub(super) settings: config::NodeSettings,
    pub(super) security: Security,
}

/// Reads the config file and merges it with the flags and the environment;
/// run at start and again on SIGHUP.
///
/// # Errors
/// Every problem found, in one message.
pub(super) fn resolve(args: &NodeArgs, global: &GlobalArgs) -> Result<Resolved, String> {
    let file = match &args.config {
        Some(path) => Some(config::file::load(path).map_err(|problems| {
            format!(
                "invalid config file:\n  - {}",
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n  - ")
            )
        })?),
        None => None,
    };
    let security_file = file
        .as_ref()
        .map(|f| f.security.clone())
        .unwrap_or_default();
    let auth = config::security::resolve(
        SecurityFlags {
            admin_token: args.admin_token.clone(),
            admin_token_file: args.admin_token_file.clone(),
            require_token_for_reads: args.require_token_for_reads,
            gossip_rate_limit: args.gossip_rate_limit,
            query_rate_limit: args.query_rate_limit,
            tls_cert: global.tls_cert.clone(),
            tls_key: global.tls_key.clone(),
            tls_ca: global.tls_ca.clone(),
            insecure: args.insecure,
        },
        &security_file,
    );
    let a = args.clone();
    let settings = config::resolve(
        Overrides {
            listen: a.listen,
            advertise: a.advertise,
            name: a.name,
            domain: a.domain,
            data_dir: a.data_dir,
            join: a.join,
            gossip_interval: a.gossip_interval,
            fanout: a.fanout,
            node_ttl: a.node_ttl,
            http_listen: a.http_listen,
            labels: a.label,
            max_payload: a.max_payload,
            resource_interval: a.resource_interval,
            capacity: a.capacity,
            relay: a.relay,
            swarm_fanout: a.swarm_fanout,
            max_members: a.max_members,
            seen_ttl: a.seen_ttl,
            on_message: a.on_message,
            on_event: a.on_event,
            exec: a.exec.then_some(true),
        },
        file.clone(),
    );
    match (settings, auth) {
        (Ok(settings), Ok(security)) => Ok(Resolved {
            file,
            settings,
            security,
        }),
        (s, a) => {
            let mut problems = s.err().unwrap_or_default();
            problems.extend(a.err().unwrap_or_default());
            Err(format!(
                "invalid settings:\n  - {}",
                problems.join("\n  - ")
            ))
        }
    }
}

/// The per-peer rates: as configured, else 200 gossip calls per second (or 10
/// per gossip interval when that is more: a peer probes, pushes and answers a
/// few times per round) and 50 queries per second.
#[allow(clippy::cast_precision_loss, reason = "rates are small counts")]
fn peer_rates(s: &Security, gossip_interval: Duration) -> PeerRates {
    let per_round = 10.0 / gossip_interval.as_secs_f64().max(1e-3);
    PeerRates {
        gossip: RateConfig::per_second(
            s.gossip_rate_limit
                .map_or(DEFAULT_GOSSIP_RATE.max(per_round), |n| n as f64),
        ),
        query: RateConfig::per_second(s.query_rate_limit.map_or(DEFAULT_QUERY_RATE, |n| n as f64)),
    }
}

/// Reloads on every SIGHUP (see `node_reload`). Without a handler, SIGHUP
/// (what `systemctl reload` and `kill -HUP` send) would kill the node as if it
/// had crashed.
async fn reload_on_sighup(hup: Option<HangupSignal>, mut reloader: super::node_reload::Reloader) {
    #[cfg(unix)]
    {
        let Some(mut hup) = hup else {
            warn!("cannot listen for SIGHUP; nothing will be reloaded");
            return;
        };
        while hup.recv().await.is_some() {
            // Type=notify-reload (systemd 253+) waits for READY=1 after this.
            if let Ok(at) = sd_notify::NotifyState::monotonic_usec_now() {
                notify_systemd(&[sd_notify::NotifyState::Reloading, at]);
            }
            reloader.reload();
            notify_systemd(&[sd_notify::NotifyState::Ready]);
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (hup, &mut reloader);
    }
}

/// Tells systemd (a `Type=notify` unit; `NOTIFY_SOCKET` set) where the node
/// is; does nothing elsewhere. A socket that cannot take the message is
/// logged, never fatal.
fn notify_systemd(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        warn!("cannot notify systemd ($NOTIFY_SOCKET): {e}");
    }
}

#[cfg(unix)]
type HangupSignal = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type HangupSignal = ();

/// Installs the SIGHUP handler now (replacing the default action, which would
/// end the process); `None` if it cannot be installed.
fn hangup_signal() -> Option<HangupSignal> {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// While the node leaves and drains, a second Ctrl-C ends the process at once
/// (exit 130), as daemons and `cargo` do. The handler is in place before the
/// log line that says so.
fn exit_on_second_interrupt() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut int) = signal(SignalKind::interrupt()) {
            tokio::spawn(async move {
                if int.recv().await.is_some() {
                    warn!("second interrupt: exiting at once, without finishing the leave");
                    std::process::exit(130);
                }
            });
        }
    }
    tracing::info!(
        "shutting down: leaving the cluster and draining; interrupt again to exit at once"
    );
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
