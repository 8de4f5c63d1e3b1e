//! `gsp bench broadcast`: reliable broadcast through a real mesh. N nodes on
//! loopback form a cluster (membership over gRPC); M broadcasts go out, origins
//! taking turns; each is timed from `send` to the origin's last receipt. A
//! point-to-point transfer of the same payload, timed to its hop ACK, is the
//! yardstick measured in the same run.
//!
//! Two shapes: closed loop (`in_flight` broadcasts at a time, M in all: the
//! large-payload case) and open loop (`rate` per second for `duration`: the
//! small-message load case, with RSS sampled to show it stays flat).

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use bytes::Bytes;
use tokio::task::JoinSet;

pub use super::broadcast_report::{BroadcastReport, BroadcastResults};
use super::{broadcast_report::PointToPoint, error::BenchError, progress::Progress, report, sys};
use crate::{
    core::{
        ack_tracker::Ending, broadcast::config::BroadcastConfig,
        membership::config::MembershipConfig,
    },
    runtime::{
        broadcast::{EngineConfig, Progress as SendProgress, SendHandle, SendOptions, stats},
        membership::AgentConfig,
        node::{NodeConfig, NodeHandle, ProbeChoice},
    },
};

/// Settings of the broadcast scenario.
#[derive(Debug, Clone)]
pub struct BroadcastBenchConfig {
    /// Nodes.
    pub nodes: usize,
    /// Payload bytes per broadcast.
    pub payload: u64,
    /// Broadcasts (closed loop), or ignored with `rate`.
    pub messages: usize,
    /// Broadcasts in flight at once (closed loop).
    pub in_flight: usize,
    /// Open loop: broadcasts per second.
    pub rate: Option<f64>,
    /// Open loop: how long.
    pub duration: Duration,
    /// Point-to-point transfers timed for the yardstick when they cannot be
    /// interleaved with the broadcasts (open loop, or several in flight).
    pub p2p_samples: usize,
    /// Time one broadcast may take to converge.
    pub timeout: Duration,
    /// Membership round of the cluster.
    pub gossip_interval: Duration,
    /// Payload bytes each node keeps to serve pulls and catch-ups.
    pub store_bytes: u64,
    /// Ids each node remembers (the seen cache's bound).
    pub seen_capacity: usize,
    /// Uncounted broadcasts first; `None`: until every node's seen cache and
    /// store are at their bounds (at most a minute), so the counted ones run at
    /// steady state.
    pub warmup: Option<usize>,
}

impl Default for BroadcastBenchConfig {
    fn default() -> Self {
        Self {
            nodes: 8,
            payload: 512 << 10,
            messages: 100,
            in_flight: 1,
            rate: None,
            duration: Duration::from_secs(10),
            p2p_samples: 100,
            timeout: Duration::from_secs(30),
            gossip_interval: Duration::from_millis(500),
            store_bytes: 16 << 20,
            seen_capacity: 16_384,
            warmup: None,
        }
    }
}

/// Longest warm-up.
const MAX_WARMUP: Duration = Duration::from_secs(60);

async fn start_cluster(c: &BroadcastBenchConfig) -> Result<Vec<NodeHandle>, BenchError> {
    let mut nodes: Vec<NodeHandle> = Vec::with_capacity(c.nodes);
    for i in 0..c.nodes {
        let seeds = nodes
            .first()
            .map(|n| vec![n.advertise().to_owned()])
            .unwrap_or_default();
        let config = NodeConfig {
            name: format!("bench-{i}"),
            probe: ProbeChoice::Off,
            broadcast: EngineConfig {
                broadcast: BroadcastConfig {
                    store_bytes: c.store_bytes,
                    seen_capacity: c.seen_capacity,
                    ..BroadcastConfig::default()
                },
                ..EngineConfig::default()
            },
            membership: AgentConfig {
                membership: MembershipConfig::with_interval(c.gossip_interval),
                seeds,
                ..AgentConfig::default()
            },
            ..NodeConfig::default()
        };
        nodes.push(super::cluster::start_node(i, config).await?);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !nodes
        .iter()
        .all(|n| n.membership().with_state(|s| s.up_count()) == c.nodes)
    {
        if Instant::now() > deadline {
            return Err(BenchError::Setup(format!(
                "{} nodes did not see each other within 60 s",
                c.nodes
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(nodes)
}

/// Uncounted broadcasts until every node's tables are at their bounds (the seen
/// cache only when the `counted` broadcasts would grow it by more than a tenth),
/// or the configured count: a long-running node's store is full and recycles its
/// memory, while a fresh one takes new pages for every payload it keeps, and
/// what those cost depends on the machine far more than on gsp (measured: 5x on
/// this VM, run to run). Returns how many were sent.
async fn warm_up(
    c: &BroadcastBenchConfig,
    nodes: &[NodeHandle],
    payload: &Bytes,
    counted: usize,
    progress: &dyn Progress,
) -> Result<usize, BenchError> {
    let opts = SendOptions {
        timeout: c.timeout,
        topic: "warmup".to_owned(),
        ..SendOptions::default()
    };
    let full = || {
        nodes.iter().all(|n| {
            let (seen, _, bytes, _, _) = n.broadcast().table_sizes();
            // The seen cache need not be full when the counted phase adds little
            // to it (a tenth of its bound at most).
            (seen >= c.seen_capacity || counted * 10 <= c.seen_capacity)
                && bytes * 10 >= c.store_bytes * 9
        })
    };
    let limit = c.warmup.unwrap_or(usize::MAX);
    let deadline = Instant::now() + MAX_WARMUP;
    let gap = Duration::from_secs_f64(1.0 / c.rate.unwrap_or(f64::INFINITY).max(1e-3));
    progress.phase("warm-up", 0);
    let mut pending = JoinSet::new();
    let mut sent = 0;
    while sent < limit && !(c.warmup.is_none() && full()) && Instant::now() < deadline {
        let h = nodes[sent % nodes.len()]
            .broadcast()
            .send(payload.clone(), &opts)
            .map_err(|e| BenchError::Setup(format!("warm-up broadcast refused: {e}")))?;
        sent += 1;
        progress.advance(1);
        if c.rate.is_some() {
            pending.spawn(finish(h));
            tokio::time::sleep(gap).await;
            while pending.try_join_next().is_some() {}
        } else {
            finish(h).await;
        }
    }
    while pending.join_next().await.is_some() {}
    Ok(sent)
}

/// Waits for a broadcast's final account; returns (converged, elapsed).
async fn finish(mut h: SendHandle) -> (bool, Duration) {
    while let Some(p) = h.progress.recv().await {
        if let SendProgress::Done(c) = p {
            return (
                c.ending == Ending::Converged,
                c.finished.saturating_duration_since(c.started),
            );
        }
    }
    (false, Duration::ZERO)
}

/// Runs the scenario.
///
/// # Errors
/// The cluster cannot start or a broadcast is refused.
pub async fn run(
    c: &BroadcastBenchConfig,
    progress: &dyn Progress,
) -> Result<BroadcastReport, BenchError> {
    if c.nodes < 2 {
        return Err(BenchError::Config("--nodes must be at least 2".to_owned()));
    }
    let _ = crate::transport::fd_limit::raise(c.nodes * c.nodes * 4 + 256);
    let nodes = start_cluster(c).await?;
    let len = usize::try_from(c.payload)
        .map_err(|_| BenchError::Config("--payload too large for this machine".to_owned()))?;
    let payload: Bytes = (0..len)
        .map(|i| u8::try_from(i % 251).unwrap_or(0))
        .collect::<Vec<u8>>()
        .into();
    let mut p2p = PointToPoint::new(&nodes, &payload).await?;
    // One broadcast at a time: a point-to-point transfer before each, so both
    // see the same machine. Otherwise the transfers are timed up front.
    let interleave = c.rate.is_none() && c.in_flight <= 1;
    if !interleave {
        progress.phase("point-to-point", c.p2p_samples as u64);
        for _ in 0..c.p2p_samples {
            p2p.once().await?;
            progress.advance(1);
        }
    }
    let total = match c.rate {
        Some(r) => {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "a positive, finite count (the CLI checks the rate)"
            )]
            let n = (r * c.duration.as_secs_f64()).round().max(0.0) as usize;
            n
        }
        None => c.messages,
    };
    let warmup = warm_up(c, &nodes, &payload, total, progress).await?;
    let totals = |nodes: &[NodeHandle]| -> [u64; 4] {
        let mut t = [0u64; 4];
        for n in nodes {
            let st = n.broadcast().stats();
            t[0] += stats::get(&st.payload_bytes_sent);
            t[1] += n.broadcast().counters().receipt_messages_sent;
            t[2] += stats::get(&st.send_retries);
            t[3] += stats::get(&st.local_drops);
        }
        t
    };
    let before = totals(&nodes);
    let opts = SendOptions {
        timeout: c.timeout,
        topic: "bench".to_owned(),
        ..SendOptions::default()
    };
    progress.phase("broadcast", total as u64);
    let mut h = report::new_histogram()?;
    let (mut converged, mut timed_out) = (0u64, 0u64);
    let mut rss = Vec::new();
    let cpu0 = sys::cpu_time();
    let t0 = Instant::now();
    let mut next_rss = t0;
    let mut pending: JoinSet<(bool, Duration)> = JoinSet::new();
    let mut record = |r: (bool, Duration), h: &mut hdrhistogram::Histogram<u64>| {
        progress.advance(1);
        if r.0 {
            converged += 1;
            let _ = h.record(r.1.as_nanos().try_into().unwrap_or(u64::MAX).max(1));
        } else {
            timed_out += 1;
        }
    };
    let mut started = 0usize;
    let mut origins: VecDeque<usize> = (0..c.nodes).collect();
    while started < total {
        if Instant::now() >= next_rss {
            rss.push(sys::current_rss_bytes());
            next_rss += Duration::from_secs(1);
        }
        if let Some(r) = c.rate {
            let due = t0 + Duration::from_secs_f64(started as f64 / r);
            let now = Instant::now();
            if due > now {
                tokio::select! {
                    () = tokio::time::sleep(due - now) => {}
                    Some(Ok(r)) = pending.join_next() => { record(r, &mut h); continue; }
                }
            }
        } else {
            while pending.len() >= c.in_flight.max(1) {
                if let Some(Ok(r)) = pending.join_next().await {
                    record(r, &mut h);
                }
            }
            if interleave {
                p2p.once().await?;
            }
        }
        let i = origins.pop_front().unwrap_or(0);
        origins.push_back(i);
        let handle = nodes[i]
            .broadcast()
            .send(payload.clone(), &opts)
            .map_err(|e| BenchError::Setup(format!("node {i} refused a broadcast: {e}")))?;
        pending.spawn(finish(handle));
        started += 1;
    }
    while let Some(r) = pending.join_next().await {
        if let Ok(r) = r {
            record(r, &mut h);
        }
    }
    let wall = t0.elapsed();
    let p2p_h = p2p.close();
    let cpu = sys::cpu_time().saturating_sub(cpu0);
    rss.push(sys::current_rss_bytes());
    progress.finish();
    let after = totals(&nodes);
    let [sent, receipt_msgs, retries, local_drops] =
        std::array::from_fn(|i| after[i].saturating_sub(before[i]));
    for n in nodes {
        n.shutdown().await;
    }
    let others = (c.nodes - 1) as f64;
    let ideal = c.payload as f64 * others * total as f64;
    let conv = report::summarize(&h);
    let p2p_sum = report::summarize(&p2p_h);
    let rss_growth = match (rss.get(1).or(rss.first()), rss.last()) {
        (Some(a), Some(b)) if *a > 0 => *b as f64 / *a as f64,
        _ => 0.0,
    };
    let results = BroadcastResults {
        broadcasts: total as u64,
        converged,
        timed_out,
        convergence_ns: conv,
        convergence_histogram: report::encode_histogram(&h)?,
        p2p_ack_ns: p2p_sum,
        p99_vs_p2p: if p2p_sum.p99 > 0 {
            conv.p99 as f64 / p2p_sum.p99 as f64
        } else {
            0.0
        },
        goodput_bytes_per_sec: converged as f64 * c.payload as f64 * others
            / wall.as_secs_f64().max(1e-9),
        payload_copy_ratio: if ideal > 0.0 {
            sent as f64 / ideal
        } else {
            0.0
        },
        wall_secs: wall.as_secs_f64(),
        achieved_rate: total as f64 / wall.as_secs_f64().max(1e-9),
        rss_samples_bytes: rss,
        rss_growth,
        receipt_messages_per_delivery: receipt_msgs as f64 / (others * total as f64).max(1.0),
        send_retries: retries,
        local_drops,
        cpu_secs: cpu.as_secs_f64(),
    };
    Ok(BroadcastReport {
        schema: report::SCHEMA.to_owned(),
        scenario: serde_json::json!({
            "name": "broadcast",
            "nodes": c.nodes,
            "payload_bytes": c.payload,
            "messages": total,
            "in_flight": c.in_flight,
            "rate": c.rate,
            "duration_secs": c.rate.map(|_| c.duration.as_secs_f64()),
            "p2p_samples": p2p_h.len(),
            "warmup": warmup,
            "store_bytes": c.store_bytes,
            "seen_capacity": c.seen_capacity,
        }),
        results,
        gsp_version: env!("CARGO_PKG_VERSION").to_owned(),
        git_sha: env!("GSP_GIT_SHA").to_owned(),
        timestamp: report::timestamp_now(),
        host: sys::HostInfo::detect(),
    })
}
