//! A node on its own thread and current-thread runtime, so that one node can be
//! stalled (its thread blocked, as in a GC pause or an overloaded host) or killed
//! (its runtime dropped: sockets closed, tasks gone) without touching the others.

use std::{sync::Arc, thread::JoinHandle, time::Duration};

use tokio::{net::TcpListener, sync::mpsc};

use super::error::BenchError;
use crate::{
    core::{ids::NodeId, membership::config::MembershipConfig},
    runtime::{
        identity::Identity,
        membership::{AgentConfig, MembershipAgent},
        node::{NodeConfig, NodeHandle, ProbeChoice, SharedPools},
    },
    transport::{data_plane::sink::DiscardSink, traffic::Traffic},
};

enum Ctl {
    /// Block the node's thread for this long.
    Stall(Duration),
    /// Stop abruptly.
    Kill,
}

/// A running node on its own thread.
#[derive(Debug)]
pub struct NodeThread {
    /// Its id.
    pub id: NodeId,
    /// Its gRPC address.
    pub addr: String,
    /// Its membership agent (thread-safe to read).
    pub agent: MembershipAgent,
    /// Its wire bytes.
    pub traffic: Arc<Traffic>,
    ctl: mpsc::UnboundedSender<Ctl>,
    thread: Option<JoinHandle<()>>,
}

impl NodeThread {
    /// Starts node `name` on 127.0.0.1:0, joining through `seeds`.
    ///
    /// # Errors
    /// The thread, runtime, listener or node could not start.
    pub fn start(
        name: String,
        seeds: Vec<String>,
        membership: MembershipConfig,
        shared_pools: Option<SharedPools>,
    ) -> Result<Self, BenchError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (ctl, mut ctl_rx) = mpsc::unbounded_channel();
        let thread_name = format!("gsp-{name}");
        let thread = std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match TcpListener::bind("127.0.0.1:0").await {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("bind: {e}")));
                            return;
                        }
                    };
                    let config = NodeConfig {
                        name,
                        membership: AgentConfig {
                            membership,
                            seeds,
                            ..AgentConfig::default()
                        },
                        probe: ProbeChoice::Off,
                        shared_pools,
                        ..NodeConfig::default()
                    };
                    let node = match NodeHandle::start(
                        config,
                        Identity::ephemeral(),
                        listener,
                        Arc::new(DiscardSink),
                    )
                    .await
                    {
                        Ok(n) => n,
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("start: {e}")));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok((
                        node.node_id().clone(),
                        node.advertise().to_owned(),
                        node.membership().clone(),
                        Arc::clone(node.traffic()),
                    )));
                    while let Some(cmd) = ctl_rx.recv().await {
                        match cmd {
                            // Deliberately blocking: the whole runtime freezes.
                            Ctl::Stall(d) => std::thread::sleep(d),
                            Ctl::Kill => break,
                        }
                    }
                    drop(node);
                });
                // Dropping the runtime drops every task and closes every socket.
                drop(rt);
            })
            .map_err(|e| BenchError::Setup(format!("cannot spawn a node thread: {e}")))?;
        let (id, addr, agent, traffic) = ready_rx
            .recv()
            .map_err(|_| BenchError::Setup("node thread died before starting".into()))?
            .map_err(|e| BenchError::Setup(format!("node failed to start: {e}")))?;
        Ok(Self {
            id,
            addr,
            agent,
            traffic,
            ctl,
            thread: Some(thread),
        })
    }

    /// Blocks the node's thread for `d` (returns at once).
    pub fn stall(&self, d: Duration) {
        let _ = self.ctl.send(Ctl::Stall(d));
    }

    /// Stops the node abruptly, as a crash looks to its peers.
    pub fn kill(mut self) {
        self.agent.cancel();
        let _ = self.ctl.send(Ctl::Kill);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for NodeThread {
    fn drop(&mut self) {
        let _ = self.ctl.send(Ctl::Kill);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
