//! The load generator behind `gsp bench`: an in-process cluster over real gRPC on
//! loopback, the flood workload, a raw-TCP baseline measured in the same run,
//! HdrHistograms, the JSON report and regression comparison.

pub mod alloc;
pub mod broadcast;
mod broadcast_report;
pub mod cluster;
pub mod compare;
pub mod config;
pub mod error;
pub mod flood;
pub mod membership;
pub mod node_thread;
pub mod progress;
pub mod report;
pub mod resources;
pub mod sys;
pub mod tcp;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use rand::{RngCore as _, SeedableRng as _, rngs::StdRng};

use self::{
    cluster::LocalCluster,
    config::BenchConfig,
    error::BenchError,
    flood::FloodPlan,
    progress::{IterationOutcome, Progress},
    report::{Baseline, ConvergenceNs, IterationSummary, Report, Results, ScenarioInfo, Tuning},
    sys::HostInfo,
    tcp::TcpMesh,
};

/// Runs the configured bench and returns its report (not yet written).
///
/// # Errors
/// Invalid settings, a setup failure, a failed message, or a missed deadline.
pub async fn run(config: &BenchConfig, progress: Arc<dyn Progress>) -> Result<Report, BenchError> {
    config.validate().map_err(BenchError::Config)?;
    let payload = payload(config.payload_bytes)?;
    let mut cluster = LocalCluster::start(config.nodes, &config.data_plane).await?;
    let tcp = if config.baseline {
        Some(TcpMesh::start(config.nodes, config.payload_bytes).await?)
    } else {
        None
    };
    let per_iteration = config.messages_per_iteration();
    let rounds = config.warmup + config.iterations;
    let phases = if tcp.is_some() { 2 } else { 1 };
    progress.phase(
        config.scenario.name(),
        per_iteration * rounds as u64 * phases,
    );

    let mut gsp_hist = report::new_histogram()?;
    let mut tcp_hist = report::new_histogram()?;
    let mut iterations = Vec::with_capacity(config.iterations);
    let mut cpu = Duration::ZERO;
    let mut allocs: Option<(u64, u64)> = alloc::snapshot().map(|_| (0, 0));
    let mut sent = 0;
    for round in 0..rounds {
        let counted = round >= config.warmup;
        let plan = FloodPlan {
            iteration: round + 1,
            messages_per_peer: config.messages_per_peer,
            timeout: config.iteration_timeout,
            kill_after_acks: if round == config.warmup {
                config.faults.kill_node_after_acks
            } else {
                None
            },
        };
        let cpu_before = sys::cpu_time();
        let allocs_before = alloc::snapshot();
        let gsp = flood::run_iteration(&mut cluster, &payload, &plan, &progress).await?;
        let cpu_used = sys::cpu_time().saturating_sub(cpu_before);
        let allocs_used = alloc::snapshot()
            .zip(allocs_before)
            .map(|((n1, b1), (n0, b0))| (n1.saturating_sub(n0), b1.saturating_sub(b0)));
        let raw = match &tcp {
            Some(mesh) => Some(
                mesh.run_iteration(
                    &payload,
                    config.messages_per_peer,
                    round + 1,
                    config.iteration_timeout,
                    &progress,
                )
                .await?,
            ),
            None => None,
        };
        if counted {
            cpu += cpu_used;
            allocs = allocs
                .zip(allocs_used)
                .map(|((n, b), (dn, db))| (n + dn, b + db));
            sent += per_iteration;
            record(&mut gsp_hist, &gsp)?;
            if let Some(raw) = &raw {
                record(&mut tcp_hist, raw)?;
            }
            iterations.push(IterationSummary {
                convergence_ns: nanos(gsp.convergence),
                throughput_bytes_per_sec: gsp.throughput(),
                tcp_convergence_ns: raw.as_ref().map(|r| nanos(r.convergence)),
            });
        }
    }
    progress.finish();
    cluster.shutdown().await;
    if let Some(mesh) = tcp {
        mesh.shutdown();
    }

    let bytes_per_iteration = per_iteration * config.payload_bytes;
    let conv: Vec<u64> = iterations.iter().map(|i| i.convergence_ns).collect();
    let conv_p50 = report::median(&conv);
    let per_sec = |n: u64, ns: u64| {
        if ns == 0 {
            0.0
        } else {
            n as f64 * 1e9 / ns as f64
        }
    };
    let throughput = per_sec(bytes_per_iteration, conv_p50);
    let baseline = if config.baseline {
        let tcp_conv: Vec<u64> = iterations
            .iter()
            .filter_map(|i| i.tcp_convergence_ns)
            .collect();
        let tcp_p50 = report::median(&tcp_conv);
        Some(Baseline {
            tcp_throughput_bytes_per_sec: per_sec(bytes_per_iteration, tcp_p50),
            tcp_convergence_ns: tcp_p50,
            tcp_ack_latency_ns: report::summarize(&tcp_hist),
        })
    } else {
        None
    };
    let efficiency = baseline
        .as_ref()
        .filter(|b| b.tcp_throughput_bytes_per_sec > 0.0)
        .map(|b| throughput / b.tcp_throughput_bytes_per_sec);
    Ok(Report {
        schema: report::SCHEMA.to_owned(),
        scenario: ScenarioInfo::from_config(config),
        results: Results {
            messages_sent: sent,
            messages_acked: gsp_hist.len(),
            errors: 0,
            ack_latency_ns: report::summarize(&gsp_hist),
            convergence_ns: ConvergenceNs {
                min: conv.iter().copied().min().unwrap_or(0),
                p50: conv_p50,
                max: conv.iter().copied().max().unwrap_or(0),
            },
            throughput_bytes_per_sec: throughput,
            messages_per_sec: per_sec(per_iteration, conv_p50),
            cpu_seconds: cpu.as_secs_f64(),
            allocations_per_message: allocs.map(|(n, _)| n as f64 / sent.max(1) as f64),
            allocated_bytes_per_message: allocs.map(|(_, b)| b as f64 / sent.max(1) as f64),
            peak_rss_bytes: sys::peak_rss_bytes(),
            histogram: report::encode_histogram(&gsp_hist)?,
            iterations,
        },
        baseline,
        efficiency,
        tuning: Tuning::from_config(config),
        gsp_version: env!("CARGO_PKG_VERSION").to_owned(),
        git_sha: env!("GSP_GIT_SHA").to_owned(),
        timestamp: report::timestamp_now(),
        host: HostInfo::detect(),
    })
}

/// A deterministic pseudo-random payload (incompressible, reproducible).
fn payload(len: u64) -> Result<Bytes, BenchError> {
    let len = usize::try_from(len).map_err(|_| {
        BenchError::Config(format!("payload of {len} bytes does not fit in memory"))
    })?;
    let mut buf = vec![0u8; len];
    StdRng::seed_from_u64(0x6773_7062_656e_6368).fill_bytes(&mut buf);
    Ok(Bytes::from(buf))
}

fn record(
    h: &mut hdrhistogram::Histogram<u64>,
    outcome: &IterationOutcome,
) -> Result<(), BenchError> {
    for &ns in &outcome.ack_latencies_ns {
        h.record(ns.max(1)).map_err(|e| {
            BenchError::Setup(format!("latency {ns} ns out of histogram range: {e}"))
        })?;
    }
    Ok(())
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
