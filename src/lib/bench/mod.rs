//! The load generator behind `gsp bench`: an in-process cluster over real gRPC on
//! loopback, the flood workload, a raw-TCP baseline measured in the same run (and
//! with `--tls` the same workload over mutual TLS), HdrHistograms, the JSON report
//! and regression comparison.

pub mod alloc;
pub mod broadcast;
mod broadcast_report;
pub mod cluster;
pub mod compare;
pub mod config;
pub mod error;
pub mod flood;
pub mod html;
pub mod membership;
pub mod membership_sim;
pub mod node_thread;
pub mod progress;
pub mod report;
pub mod resources;
pub mod swarm_sim;
pub mod sys;
pub mod tcp;
pub mod tls;
pub mod verdict;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use rand::{RngCore as _, SeedableRng as _, rngs::StdRng};

use self::{
    cluster::LocalCluster,
    config::BenchConfig,
    error::BenchError,
    flood::FloodPlan,
    progress::{IterationOutcome, Progress},
    report::{
        Baseline, ConvergenceNs, IterationSummary, Report, Results, ScenarioInfo, TlsResults,
        Tuning,
    },
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
    let mut cluster = LocalCluster::start(config.nodes, &config.data_plane, None).await?;
    let mut tls_cluster = if config.tls {
        let (tls, _files) = tls::bench_tls_config()?;
        Some(LocalCluster::start(config.nodes, &config.data_plane, Some(&tls)).await?)
    } else {
        None
    };
    let tcp = if config.baseline {
        Some(TcpMesh::start(config.nodes, config.payload_bytes).await?)
    } else {
        None
    };
    let per_iteration = config.messages_per_iteration();
    let rounds = config.warmup + config.iterations;
    let phases = 1 + u64::from(tls_cluster.is_some()) + u64::from(tcp.is_some());
    progress.phase(
        config.scenario.name(),
        per_iteration * rounds as u64 * phases,
    );

    let mut plaintext = Tally::new()?;
    let mut tls_tally = Tally::new()?;
    let mut tcp_hist = report::new_histogram()?;
    let mut iterations = Vec::with_capacity(config.iterations);
    let mut sent = 0;
    for round in 0..rounds {
        let counted = round >= config.warmup;
        let plan = FloodPlan {
            phase: "gsp",
            iteration: round + 1,
            messages_per_peer: config.messages_per_peer,
            timeout: config.iteration_timeout,
            kill_after_acks: if round == config.warmup {
                config.faults.kill_node_after_acks
            } else {
                None
            },
        };
        let tls_plan = FloodPlan {
            phase: "gsp+tls",
            kill_after_acks: None,
            ..plan.clone()
        };
        // Plaintext and TLS alternate which goes first, so that neither always
        // runs right after the other.
        let tls_first = round % 2 == 1;
        let mut tls_run = None;
        if tls_first && let Some(c) = tls_cluster.as_mut() {
            tls_run = Some(measure(c, &payload, &tls_plan, &progress).await?);
        }
        let gsp = measure(&mut cluster, &payload, &plan, &progress).await?;
        if !tls_first && let Some(c) = tls_cluster.as_mut() {
            tls_run = Some(measure(c, &payload, &tls_plan, &progress).await?);
        }
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
            sent += per_iteration;
            plaintext.add(&gsp)?;
            if let Some(t) = &tls_run {
                tls_tally.add(t)?;
            }
            if let Some(raw) = &raw {
                record(&mut tcp_hist, raw)?;
            }
            iterations.push(IterationSummary {
                convergence_ns: nanos(gsp.outcome.convergence),
                throughput_bytes_per_sec: gsp.outcome.throughput(),
                tcp_convergence_ns: raw.as_ref().map(|r| nanos(r.convergence)),
                tls_convergence_ns: tls_run.as_ref().map(|t| nanos(t.outcome.convergence)),
                ack_p99_ns: p99(&gsp.outcome.ack_latencies_ns),
                per_message: Some(gsp.per_message(per_iteration)),
            });
        }
    }
    progress.finish();
    cluster.shutdown().await;
    if let Some(c) = tls_cluster {
        c.shutdown().await;
    }
    if let Some(mesh) = tcp {
        mesh.shutdown();
    }

    let bytes_per_iteration = per_iteration * config.payload_bytes;
    let conv_p50 = report::median(&plaintext.conv);
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
    let vs_tcp = |t: f64| {
        baseline
            .as_ref()
            .filter(|b| b.tcp_throughput_bytes_per_sec > 0.0)
            .map(|b| t / b.tcp_throughput_bytes_per_sec)
    };
    let efficiency = vs_tcp(throughput);
    let tls = if config.tls {
        let tls_p50 = report::median(&tls_tally.conv);
        let tls_throughput = per_sec(bytes_per_iteration, tls_p50);
        let ratio = if throughput > 0.0 {
            tls_throughput / throughput
        } else {
            0.0
        };
        Some(TlsResults {
            messages_acked: tls_tally.hist.len(),
            ack_latency_ns: report::summarize(&tls_tally.hist),
            convergence_ns: tls_tally.convergence(),
            throughput_bytes_per_sec: tls_throughput,
            messages_per_sec: per_sec(per_iteration, tls_p50),
            cpu_seconds: tls_tally.cpu.as_secs_f64(),
            allocations_per_message: tls_tally.allocs.map(|(n, _)| n as f64 / sent.max(1) as f64),
            histogram: report::encode_histogram(&tls_tally.hist)?,
            tls_vs_plaintext: ratio,
            target: tls::TLS_VS_PLAINTEXT_TARGET,
            target_met: tls::target_met(ratio),
            efficiency: vs_tcp(tls_throughput),
        })
    } else {
        None
    };
    Ok(Report {
        schema: report::SCHEMA.to_owned(),
        scenario: ScenarioInfo::from_config(config),
        results: Results {
            messages_sent: sent,
            messages_acked: plaintext.hist.len(),
            errors: 0,
            ack_latency_ns: report::summarize(&plaintext.hist),
            convergence_ns: plaintext.convergence(),
            throughput_bytes_per_sec: throughput,
            messages_per_sec: per_sec(per_iteration, conv_p50),
            cpu_seconds: plaintext.cpu.as_secs_f64(),
            allocations_per_message: plaintext.allocs.map(|(n, _)| n as f64 / sent.max(1) as f64),
            allocated_bytes_per_message: plaintext
                .allocs
                .map(|(_, b)| b as f64 / sent.max(1) as f64),
            peak_rss_bytes: sys::peak_rss_bytes(),
            histogram: report::encode_histogram(&plaintext.hist)?,
            per_message: report::PerMessageSpread::of(
                &iterations
                    .iter()
                    .filter_map(|i| i.per_message)
                    .collect::<Vec<_>>(),
            ),
            iterations,
        },
        baseline,
        efficiency,
        tls,
        tuning: Tuning::from_config(config),
        gsp_version: env!("CARGO_PKG_VERSION").to_owned(),
        git_sha: env!("GSP_GIT_SHA").to_owned(),
        timestamp: report::timestamp_now(),
        host: HostInfo::detect(),
    })
}

/// One gsp iteration and what it cost the process.
struct Measured {
    outcome: IterationOutcome,
    cpu: Duration,
    /// Allocations and bytes, when the binary counts them.
    allocs: Option<(u64, u64)>,
    /// System calls and context switches, where measurable.
    counters: Option<sys::ProcessCounters>,
}

impl Measured {
    /// This iteration's costs per message of `messages`.
    fn per_message(&self, messages: u64) -> report::PerMessage {
        let n = messages.max(1) as f64;
        let per = |x: u64| x as f64 / n;
        report::PerMessage {
            cpu_ns: self.cpu.as_nanos() as f64 / n,
            allocations: self.allocs.map(|(a, _)| per(a)),
            allocated_bytes: self.allocs.map(|(_, b)| per(b)),
            write_syscalls: self.counters.map(|c| per(c.write_syscalls)),
            context_switches: self.counters.map(|c| per(c.context_switches)),
        }
    }
}

/// Runs one flood iteration on `cluster`, timing the process's CPU and
/// counting its allocations around it.
async fn measure(
    cluster: &mut LocalCluster,
    payload: &Bytes,
    plan: &FloodPlan,
    progress: &Arc<dyn Progress>,
) -> Result<Measured, BenchError> {
    let cpu_before = sys::cpu_time();
    let allocs_before = alloc::snapshot();
    let counters_before = sys::process_counters();
    let outcome = flood::run_iteration(cluster, payload, plan, progress).await?;
    let cpu = sys::cpu_time().saturating_sub(cpu_before);
    let counters = sys::process_counters()
        .zip(counters_before)
        .map(|(after, before)| after.since(before));
    let allocs = alloc::snapshot()
        .zip(allocs_before)
        .map(|((n1, b1), (n0, b0))| (n1.saturating_sub(n0), b1.saturating_sub(b0)));
    Ok(Measured {
        outcome,
        cpu,
        allocs,
        counters,
    })
}

/// The counted iterations of one gsp variant (plaintext or TLS), summed.
struct Tally {
    hist: hdrhistogram::Histogram<u64>,
    /// Convergence of each iteration, nanoseconds.
    conv: Vec<u64>,
    cpu: Duration,
    allocs: Option<(u64, u64)>,
}

impl Tally {
    fn new() -> Result<Self, BenchError> {
        Ok(Self {
            hist: report::new_histogram()?,
            conv: Vec::new(),
            cpu: Duration::ZERO,
            allocs: alloc::snapshot().map(|_| (0, 0)),
        })
    }

    fn add(&mut self, m: &Measured) -> Result<(), BenchError> {
        record(&mut self.hist, &m.outcome)?;
        self.conv.push(nanos(m.outcome.convergence));
        self.cpu += m.cpu;
        self.allocs = self
            .allocs
            .zip(m.allocs)
            .map(|((n, b), (dn, db))| (n + dn, b + db));
        Ok(())
    }

    fn convergence(&self) -> ConvergenceNs {
        ConvergenceNs {
            min: self.conv.iter().copied().min().unwrap_or(0),
            p50: report::median(&self.conv),
            max: self.conv.iter().copied().max().unwrap_or(0),
        }
    }
}

/// `n` per `ns` nanoseconds, per second; 0 for no time.
fn per_sec(n: u64, ns: u64) -> f64 {
    if ns == 0 {
        0.0
    } else {
        n as f64 * 1e9 / ns as f64
    }
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

/// The 99th percentile of `samples` (nearest rank), if any.
fn p99(samples: &[u64]) -> Option<u64> {
    let mut v = samples.to_vec();
    v.sort_unstable();
    let rank = (v.len() * 99).div_ceil(100);
    v.get(rank.checked_sub(1)?).copied()
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
