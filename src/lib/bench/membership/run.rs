//! Running the membership scenario: the join, steady-state traffic, crashes
//! and their detection, stalls, and the report.

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use rand::{Rng as _, SeedableRng as _, rngs::StdRng};

use super::{
    Cluster, MembershipBenchConfig, MembershipReport, MembershipResults, MembershipScenario,
    RoundStats,
};
use crate::{
    bench::{error::BenchError, progress::Progress, sys},
    core::membership::config::MembershipConfig,
    runtime::node::SharedPools,
    transport::{
        config::DataPlaneConfig,
        pool::{ChannelPool, DEFAULT_POOL_CAPACITY},
        traffic::Traffic,
    },
};

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
    let _ = crate::transport::fd_limit::raise(c.nodes * 16 + 1024);
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
        schema: crate::bench::report::SCHEMA.to_owned(),
        scenario: MembershipScenario {
            name: "membership".into(),
            nodes: c.nodes,
            kills: c.kills,
            stalls: c.stalls,
        },
        results,
        gsp_version: env!("CARGO_PKG_VERSION").to_owned(),
        git_sha: env!("GSP_GIT_SHA").to_owned(),
        timestamp: crate::bench::report::timestamp_now(),
        host: sys::HostInfo::detect(),
    })
}
