//! `gsp bench membership`: N nodes over real gRPC on loopback, each on its own
//! thread. Measures join convergence, crash detection, steady-state traffic per
//! node and false positives, also while one node's runtime stalls repeatedly.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use std::sync::Arc;

use super::{error::BenchError, node_thread::NodeThread, sys};
use crate::core::{
    ids::NodeId,
    membership::{
        config::MembershipConfig,
        events::{EventKind, MembershipEvent},
        record::MemberState,
    },
};
use crate::{runtime::node::SharedPools, transport::traffic::Traffic};

mod run;

pub use run::run;

/// Settings of the membership scenario.
#[derive(Debug, Clone)]
pub struct MembershipBenchConfig {
    /// Nodes.
    pub nodes: usize,
    /// Gossip round.
    pub gossip_interval: Duration,
    /// Crashes to detect.
    pub kills: usize,
    /// Stalls of one node's runtime.
    pub stalls: usize,
    /// Length of each stall.
    pub stall: Duration,
    /// Window over which steady-state traffic is measured.
    pub traffic_window: Duration,
    /// Deadline for each convergence or detection to happen.
    pub phase_timeout: Duration,
    /// Seed for victim choice.
    pub seed: u64,
}

/// The bench's round up to [`FAST_ROUND_MAX_NODES`]: five times a node's
/// default rate, to keep runs short.
pub const FAST_ROUND: Duration = Duration::from_millis(200);
/// Above this many nodes the bench runs at a node's default round: one process
/// hosting all of them does every node's work (measured on a 2-core VM: 1.25 ms
/// of CPU per node per 0.2 s round, so 200 nodes keep 1.25 cores busy when
/// idle, and the join's 200 x 199 verification probes, which nobody vouches
/// for when every node is on one host, tip it into overload: probes time out,
/// healthy nodes are declared dead, and that makes more work).
pub const FAST_ROUND_MAX_NODES: usize = 100;

impl MembershipBenchConfig {
    /// The default round for `nodes` nodes (see [`FAST_ROUND_MAX_NODES`]).
    pub fn default_round(nodes: usize) -> Duration {
        if nodes > FAST_ROUND_MAX_NODES {
            crate::core::membership::config::DEFAULT_GOSSIP_INTERVAL
        } else {
            FAST_ROUND
        }
    }
}

impl Default for MembershipBenchConfig {
    fn default() -> Self {
        Self {
            nodes: 50,
            gossip_interval: FAST_ROUND,
            kills: 20,
            stalls: 20,
            stall: Duration::from_millis(600),
            traffic_window: Duration::from_secs(10),
            phase_timeout: Duration::from_secs(60),
            seed: 1,
        }
    }
}

/// Rounds (and milliseconds) for one kind of measurement.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RoundStats {
    /// Samples.
    pub samples: usize,
    /// Fewest rounds.
    pub min: f64,
    /// Median rounds.
    pub p50: f64,
    /// 99th percentile (the maximum for fewer than 100 samples).
    pub p99: f64,
    /// Most rounds.
    pub max: f64,
}

/// Results of the membership scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MembershipResults {
    /// The round length used.
    pub gossip_interval_ms: f64,
    /// Rounds from the last node's start until every node saw every node alive.
    pub join_rounds: f64,
    /// The same in milliseconds.
    pub join_ms: f64,
    /// Rounds from a crash until every other node marked the crashed node dead.
    pub detection_rounds: RoundStats,
    /// Every detection, in rounds, in the order of the crashes.
    pub detection_samples: Vec<f64>,
    /// Bytes sent plus received per node per second, once converged and idle.
    pub traffic_bytes_per_sec_per_node: f64,
    /// Bytes sent per node per second, once converged and idle.
    pub sent_bytes_per_sec_per_node: f64,
    /// Dead events about nodes that were running (any node, whole run).
    pub false_positives: u64,
    /// Stalls performed.
    pub stalls: usize,
    /// Length of each stall.
    pub stall_ms: f64,
    /// Suspect events about the stalled node (allowed).
    pub stalled_node_suspected: u64,
    /// Rounds the run lasted.
    pub rounds_observed: f64,
    /// CPU time of the whole process.
    pub cpu_seconds: f64,
    /// Peak RSS of the whole process.
    pub peak_rss_bytes: u64,
    /// The same over the nodes.
    #[serde(default)]
    pub rss_bytes_per_node: u64,
    /// CPU time of the whole process per node per round, in milliseconds:
    /// what one process can host is cores / this x the round.
    #[serde(default)]
    pub cpu_ms_per_node_round: f64,
}

/// The scenario part of a membership report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MembershipScenario {
    /// `membership`.
    pub name: String,
    /// Nodes.
    pub nodes: usize,
    /// Crashes.
    pub kills: usize,
    /// Stalls.
    pub stalls: usize,
}

/// A membership report (`gsp.bench.v1`, scenario `membership`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MembershipReport {
    /// `gsp.bench.v1`.
    pub schema: String,
    /// What was run.
    pub scenario: MembershipScenario,
    /// What was measured.
    pub results: MembershipResults,
    /// Crate version.
    pub gsp_version: String,
    /// Commit.
    pub git_sha: String,
    /// When the run finished.
    pub timestamp: String,
    /// The machine.
    pub host: sys::HostInfo,
}

struct Cluster {
    nodes: Vec<NodeThread>,
    /// Client connections shared by every node (on their own runtime), and
    /// the bytes they carry.
    shared: SharedPools,
    shared_traffic: Arc<Traffic>,
    events: Vec<broadcast::Receiver<MembershipEvent>>,
    membership: MembershipConfig,
    /// Ids killed on purpose: their deaths are not false positives.
    killed: HashSet<NodeId>,
    false_positives: u64,
    suspected: std::collections::HashMap<NodeId, u64>,
}

impl Cluster {
    fn start_node(&mut self, name: String) -> Result<(), BenchError> {
        let seeds = self
            .nodes
            .first()
            .map(|n| vec![n.addr.clone()])
            .unwrap_or_default();
        let n = NodeThread::start(
            name,
            seeds,
            self.membership.clone(),
            Some(self.shared.clone()),
        )?;
        self.events.push(n.agent.subscribe());
        self.nodes.push(n);
        Ok(())
    }

    fn drain_events(&mut self) {
        for rx in &mut self.events {
            loop {
                match rx.try_recv() {
                    Ok(e) => match e.kind {
                        EventKind::Dead if !self.killed.contains(&e.id) => {
                            self.false_positives += 1;
                        }
                        EventKind::Suspect => *self.suspected.entry(e.id).or_default() += 1,
                        _ => {}
                    },
                    Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                    Err(_) => break,
                }
            }
        }
    }

    fn converged(&self) -> bool {
        let ids: Vec<&NodeId> = self.nodes.iter().map(|n| &n.id).collect();
        self.nodes.iter().all(|n| {
            n.agent.with_state(|s| {
                s.up_count() == ids.len()
                    && ids
                        .iter()
                        .all(|id| s.get(id).is_some_and(|r| r.state == MemberState::Alive))
            })
        })
    }

    fn all_see_dead(&self, id: &NodeId) -> bool {
        self.nodes.iter().all(|n| {
            n.agent
                .with_state(|s| s.get(id).is_none_or(|r| !r.state.is_up()))
        })
    }

    /// Polls `pred` every 25 ms until it holds or `timeout` passes.
    fn wait(
        &mut self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Self) -> bool,
    ) -> Result<Duration, BenchError> {
        let start = Instant::now();
        loop {
            self.drain_events();
            if pred(self) {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                return Err(BenchError::Setup(format!(
                    "{what} did not happen within {timeout:?}"
                )));
            }
            // Observing takes every node's lock; do not poll so often that it
            // becomes the load.
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn traffic(&self) -> (u64, u64) {
        self.nodes
            .iter()
            .map(|n| n.traffic.snapshot())
            .chain([self.shared_traffic.snapshot()])
            .fold((0, 0), |(s, r), (ns, nr)| (s + ns, r + nr))
    }
}
