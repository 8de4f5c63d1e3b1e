//! Running `gsp node`: builds the node's settings from the resolved
//! configuration, binds its ports, starts it, and serves until SIGINT or
//! SIGTERM, then leaves and drains.

use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tracing::{info, warn};

use super::{
    NodeArgs, Resolved, resolve,
    resolve::peer_rates,
    signals::{
        exit_on_second_interrupt, hangup_signal, notify_systemd, reload_on_sighup, shutdown_signal,
    },
};
use crate::{
    cli::{GlobalArgs, exit::ExitStatus, exit::UsageError, logging},
    config,
    core::broadcast::config::BroadcastConfig,
    runtime::{
        broadcast::EngineConfig,
        identity::Identity,
        membership::AgentConfig,
        node::{Listeners, NodeConfig, NodeHandle},
        on_message::OnMessageConfig,
        resources::ResourceConfig,
    },
    transport::tls::TlsConfig,
    transport::{config::DataPlaneConfig, data_plane::sink::BroadcastsOnly, keepalive::KeepAlive},
};

pub(crate) async fn run(args: NodeArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    let Resolved {
        file,
        settings,
        security,
    } = resolve(&args, &global).map_err(UsageError)?;
    if args.check_config {
        return crate::cli::node::check::run(
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
            membership: crate::core::membership::config::MembershipConfig {
                periodic_anti_entropy: settings.anti_entropy,
                ..settings.membership
            },
            seeds: settings.join,
            ..AgentConfig::default()
        },
        resources: ResourceConfig {
            interval: settings.resource_interval,
            declared: settings.capacity,
        },
        probe: crate::runtime::node::ProbeChoice::System {
            nvml_library: args.nvml_library.clone(),
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
            expose_gpus: args.exec_expose_gpus,
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
        Arc::new(BroadcastsOnly),
    )
    .await?;
    // Always: without a handler, SIGHUP (what `systemctl reload` and `kill
    // -HUP` send) would kill the node as if it had crashed.
    let reloader = crate::cli::node::reload::Reloader {
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
