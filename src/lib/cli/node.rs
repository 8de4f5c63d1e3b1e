//! `gsp node`: runs a full node until SIGINT or SIGTERM, then drains and exits 0.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::Context as _;
use tokio::net::TcpListener;

use super::{GlobalArgs, exit::ExitStatus, exit::UsageError, parse};
use crate::{
    runtime::{
        identity::Identity,
        node::{NodeConfig, NodeHandle},
    },
    transport::{config::DataPlaneConfig, data_plane::sink::DiscardSink},
};

/// Arguments of `gsp node`.
#[derive(Debug, clap::Args)]
pub(crate) struct NodeArgs {
    /// Address to serve gRPC on (data plane, health, reflection).
    #[arg(
        long,
        env = "GSP_LISTEN",
        default_value = "0.0.0.0:50005",
        value_name = "HOST:PORT"
    )]
    listen: SocketAddr,
    /// Address peers should dial, when it differs from --listen (NAT, 0.0.0.0).
    #[arg(long, env = "GSP_ADVERTISE", value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// Human-readable node name [default: the host name].
    #[arg(long, env = "GSP_NAME")]
    name: Option<String>,
    /// Directory for the node id and persisted state; one node per directory.
    #[arg(
        long,
        env = "GSP_DATA_DIR",
        default_value = "gsp-data",
        value_name = "DIR"
    )]
    data_dir: PathBuf,
    /// Largest payload this node sends or accepts.
    #[arg(long, env = "GSP_MAX_PAYLOAD", default_value = "64MiB", value_name = "SIZE", value_parser = parse::size)]
    max_payload: u64,
}

pub(crate) async fn run(args: NodeArgs, _global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    let identity = Identity::load_or_create(&args.data_dir)
        .map_err(|e| UsageError(e.to_string()))
        .context("cannot start the node")?;
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| UsageError(format!("cannot listen on {}: {e}", args.listen)))?;
    let name = args
        .name
        .or_else(|| sysinfo::System::host_name().ok())
        .unwrap_or_else(|| identity.node_id.to_string());
    let config = NodeConfig {
        name,
        advertise: args.advertise,
        data_plane: DataPlaneConfig {
            max_payload_bytes: args.max_payload,
            ..DataPlaneConfig::default()
        },
        ..NodeConfig::default()
    };
    let mut node = NodeHandle::start(config, identity, listener, Arc::new(DiscardSink)).await?;
    node.serve_until(shutdown_signal()).await?;
    node.shutdown().await;
    Ok(ExitStatus::Success)
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
