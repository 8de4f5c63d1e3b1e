//! `gsp bench membership`: N nodes over real gRPC on loopback, each on its own
//! thread. Measures join convergence, crash detection, steady-state traffic per
//! node and false positives, also while one node's runtime stalls repeatedly.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use rand::{Rng as _, SeedableRng as _, rngs::StdRng};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use std::sync::Arc;

use super::{error::BenchError, node_thread::NodeThread, progress::Progress, sys};
use crate::core::{
    ids::NodeId,
    membership::{
        config::MembershipConfig,
        events::{EventKind, MembershipEvent},
        record::MemberState,
    },
};
use crate::{
    runtime::node::SharedPools,
    transport::{
        config::DataPlaneConfig,
        pool::{ChannelPool, DEFAULT_POOL_CAPACITY},
        traffic::Traffic,
    },
};

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

fn round_stats(mut v: Vec<f64>) -> RoundStats {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        if v.is_empty() {
            return 0.0;
        }
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "index within the sample count"
        )]
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
        v[i]
    };
    RoundStats {
        samples: v.len(),
        min: v.first().copied().unwrap_or(0.0),
        p50: at(0.5),
        p99: at(0.99),
        max: v.last().copied().unwrap_or(0.0),
    }
}

/// Runs the scenario (blocking: it drives node threads and polls them).
///
/// # Errors
/// A node cannot start, or convergence or detection misses its deadline.
pub fn run(
    c: &MembershipBenchConfig,
    progress: &dyn Progress,
) -> Result<MembershipReport, BenchError> {
    if c.nodes < 3 {
        return Err(BenchError::Config(
            "membership needs --nodes of at least 3".into(),
        ));
    }
    sys::raise_fd_limit(c.nodes * 16 + 1024);
    // Before any node thread allocates: per-thread heaps in huge pages cost
    // 2 MiB steps per node (see the function).
    if !sys::disable_transparent_huge_pages() {
        tracing::debug!("transparent huge pages stay on: RSS per node will read high");
    }
    // Every node dials through one pair of pools whose connections run on a
    // runtime of their own: one connection per node and pool instead of one
    // per node pair (N^2 file descriptors would not fit a process's limit at
    // a few hundred nodes), and a node that is stalled or killed takes only
    // its own server with it.
    // One worker per core: a single one became the bottleneck at 100 nodes
    // (verification probes waited over a second for it).
    let io = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, std::num::NonZero::get))
        .thread_name("gsp-bench-io")
        .enable_all()
        .build()
        .map_err(|e| BenchError::Setup(format!("cannot start the connection runtime: {e}")))?;
    let shared_traffic = Arc::new(Traffic::default());
    let pool = || {
        ChannelPool::shared(
            DataPlaneConfig::default(),
            DEFAULT_POOL_CAPACITY,
            Arc::clone(&shared_traffic),
            io.handle().clone(),
        )
    };
    let shared = SharedPools {
        data: pool(),
        control: pool(),
    };
    let round = c.gossip_interval;
    let rounds = |d: Duration| d.as_secs_f64() / round.as_secs_f64();
    let started = Instant::now();
    let cpu_before = sys::cpu_time();
    let mut cluster = Cluster {
        nodes: Vec::with_capacity(c.nodes),
        shared,
        shared_traffic,
        events: Vec::new(),
        membership: MembershipConfig::with_interval(round),
        killed: HashSet::new(),
        false_positives: 0,
        suspected: std::collections::HashMap::new(),
    };
    let steps = 2 + c.kills + c.stalls;
    progress.phase("membership", steps as u64);

    // Join: every node joins through node 0.
    for i in 0..c.nodes {
        cluster.start_node(format!("m{i}"))?;
    }
    let join = cluster.wait(c.phase_timeout, "join convergence", Cluster::converged)?;
    progress.advance(1);

    // Steady-state traffic, once every node has finished disseminating the join.
    cluster.wait(c.phase_timeout, "join updates to drain", |cl| {
        cl.nodes
            .iter()
            .all(|n| n.agent.with_state(|s| s.pending_updates() == 0))
    })?;
    std::thread::sleep(round * 5);
    let (s0, r0) = cluster.traffic();
    std::thread::sleep(c.traffic_window);
    let (s1, r1) = cluster.traffic();
    let per_node = |b: u64| b as f64 / c.nodes as f64 / c.traffic_window.as_secs_f64();
    let sent_rate = per_node(s1 - s0);
    let total_rate = per_node((s1 - s0) + (r1 - r0));
    progress.advance(1);

    // Crashes: kill a random node (never the seed), time its detection, replace it.
    let mut rng = StdRng::seed_from_u64(c.seed);
    let mut detections = Vec::with_capacity(c.kills);
    for k in 0..c.kills {
        let victim = rng.random_range(1..cluster.nodes.len());
        let node = cluster.nodes.remove(victim);
        cluster.events.remove(victim);
        let id = node.id.clone();
        cluster.killed.insert(id.clone());
        node.kill();
        let took = cluster.wait(c.phase_timeout, "crash detection", |cl| {
            cl.all_see_dead(&id)
        })?;
        detections.push(rounds(took));
        cluster.start_node(format!("r{k}"))?;
        cluster.wait(c.phase_timeout, "rejoin convergence", Cluster::converged)?;
        progress.advance(1);
    }

    // Stalls: the same node freezes repeatedly; it may be suspected, never killed.
    let stalled = cluster.nodes.len() / 2;
    let stalled_id = cluster.nodes[stalled].id.clone();
    let suspected_before = cluster.suspected.get(&stalled_id).copied().unwrap_or(0);
    for _ in 0..c.stalls {
        cluster.nodes[stalled].stall(c.stall);
        std::thread::sleep(c.stall + round * 5);
        cluster.drain_events();
        progress.advance(1);
    }
    cluster.wait(
        c.phase_timeout,
        "convergence after stalls",
        Cluster::converged,
    )?;
    progress.finish();

    let results = MembershipResults {
        gossip_interval_ms: round.as_secs_f64() * 1e3,
        join_rounds: rounds(join),
        join_ms: join.as_secs_f64() * 1e3,
        detection_rounds: round_stats(detections.clone()),
        detection_samples: detections,
        traffic_bytes_per_sec_per_node: total_rate,
        sent_bytes_per_sec_per_node: sent_rate,
        false_positives: cluster.false_positives,
        stalls: c.stalls,
        stall_ms: c.stall.as_secs_f64() * 1e3,
        stalled_node_suspected: cluster.suspected.get(&stalled_id).copied().unwrap_or(0)
            - suspected_before,
        rounds_observed: rounds(started.elapsed()),
        cpu_seconds: sys::cpu_time().saturating_sub(cpu_before).as_secs_f64(),
        peak_rss_bytes: sys::peak_rss_bytes(),
        rss_bytes_per_node: sys::peak_rss_bytes() / c.nodes.max(1) as u64,
        cpu_ms_per_node_round: 0.0,
    };
    let node_rounds = c.nodes as f64 * results.rounds_observed;
    let results = MembershipResults {
        cpu_ms_per_node_round: if node_rounds > 0.0 {
            results.cpu_seconds * 1e3 / node_rounds
        } else {
            0.0
        },
        ..results
    };
    drop(cluster);
    io.shutdown_background();
    Ok(MembershipReport {
        schema: super::report::SCHEMA.to_owned(),
        scenario: MembershipScenario {
            name: "membership".into(),
            nodes: c.nodes,
            kills: c.kills,
            stalls: c.stalls,
        },
        results,
        gsp_version: env!("CARGO_PKG_VERSION").to_owned(),
        git_sha: env!("GSP_GIT_SHA").to_owned(),
        timestamp: super::report::timestamp_now(),
        host: sys::HostInfo::detect(),
    })
}
