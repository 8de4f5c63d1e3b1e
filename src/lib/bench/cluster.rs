//! An in-process cluster of real nodes on loopback, linked full mesh, over
//! plaintext gRPC or mutual TLS.

use std::sync::Arc;

use tokio::net::TcpListener;

use super::error::BenchError;
use crate::{
    runtime::{
        identity::Identity,
        node::{NodeConfig, NodeHandle, ProbeChoice},
    },
    transport::{
        config::DataPlaneConfig,
        data_plane::{link::PeerLink, sink::DiscardSink},
        tls::TlsConfig,
    },
};

/// N nodes, and from each a link to every other.
#[derive(Debug)]
pub struct LocalCluster {
    /// The nodes; `None` once killed.
    pub nodes: Vec<Option<NodeHandle>>,
    /// `links[i]` holds node i's links, `(peer index, link)`.
    pub links: Vec<Vec<(usize, PeerLink)>>,
}

/// Starts bench node `i` with `config` on 127.0.0.1:0, discarding what it
/// receives outside broadcasts.
///
/// # Errors
/// The port cannot be bound or the node cannot start.
pub async fn start_node(i: usize, config: NodeConfig) -> Result<NodeHandle, BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| BenchError::Setup(format!("node {i} cannot bind 127.0.0.1:0: {e}")))?;
    NodeHandle::start(
        config,
        Identity::ephemeral(),
        listener,
        Arc::new(DiscardSink),
    )
    .await
    .map_err(|e| BenchError::Setup(format!("node {i} failed to start: {e}")))
}

impl LocalCluster {
    /// Starts `n` nodes on `127.0.0.1:0` and links every ordered pair; with
    /// `tls`, every node serves and dials with mutual TLS.
    ///
    /// # Errors
    /// A node cannot bind or a link cannot be established.
    pub async fn start(
        n: usize,
        data_plane: &DataPlaneConfig,
        tls: Option<&TlsConfig>,
    ) -> Result<Self, BenchError> {
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let config = NodeConfig {
                name: format!("bench-{i}"),
                data_plane: data_plane.clone(),
                probe: ProbeChoice::Off,
                tls: tls.cloned(),
                ..NodeConfig::default()
            };
            nodes.push(start_node(i, config).await?);
        }
        let mut links = Vec::with_capacity(n);
        for (i, node) in nodes.iter().enumerate() {
            let mut mine = Vec::with_capacity(n - 1);
            for (j, peer) in nodes.iter().enumerate() {
                if i == j {
                    continue;
                }
                let link = node
                    .connect(peer.advertise())
                    .await
                    .map_err(|e| BenchError::Setup(format!("link {i} -> {j}: {e}")))?;
                mine.push((j, link));
            }
            links.push(mine);
        }
        Ok(Self {
            nodes: nodes.into_iter().map(Some).collect(),
            links,
        })
    }

    /// Stops node `i` abruptly (no drain): its streams end and links to it close.
    pub fn kill(&mut self, i: usize) {
        if let Some(slot) = self.nodes.get_mut(i) {
            // Dropping the handle cancels its streams and aborts its server.
            drop(slot.take());
        }
    }

    /// Closes every link and stops every node gracefully.
    pub async fn shutdown(self) {
        for links in &self.links {
            for (_, link) in links {
                link.close("bench finished");
            }
        }
        for node in self.nodes.into_iter().flatten() {
            node.shutdown().await;
        }
    }
}
