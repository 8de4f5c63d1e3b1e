//! `gsp bench resources`: the cost of resource awareness. Local-view query
//! latency over a large view, CPU per probe tick (and per NVML reading, with
//! `--nvml-library`), what binding GPUs adds to a job's start, and an idle
//! node's CPU.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use rand::{Rng as _, SeedableRng as _, rngs::StdRng};
use serde::{Deserialize, Serialize};

use super::{error::BenchError, progress::Progress, report, sys};
use crate::{
    core::{
        ids::NodeId,
        membership::{
            config::MembershipConfig,
            record::{Amounts, Capacity, Gpu, MemberRecord, Tags},
        },
        resources::{capacity::Sample, request::ResourceRequest},
    },
    probe::{
        FakeProbe, ResourceProbe, SystemProbe,
        gpu::{Gpus, job_of},
    },
    runtime::{
        jobs::JobsConfig,
        membership::{AgentConfig, MembershipAgent, now},
        node::{NodeConfig, NodeHandle, ProbeChoice},
    },
    transport::membership::memory::MemoryNetwork,
};

/// Settings of the resources scenario.
#[derive(Debug, Clone)]
pub struct ResourcesBenchConfig {
    /// Members in the view queried.
    pub view_nodes: usize,
    /// Queries timed.
    pub queries: usize,
    /// Probe ticks timed.
    pub probe_ticks: usize,
    /// Nodes of the idle cluster.
    pub idle_nodes: usize,
    /// How long the idle cluster is watched.
    pub idle_window: Duration,
    /// The NVML library whose readings are timed (none: not timed).
    pub nvml_library: Option<std::path::PathBuf>,
    /// Job starts timed, half of them binding a GPU.
    pub job_starts: usize,
}

impl Default for ResourcesBenchConfig {
    fn default() -> Self {
        Self {
            view_nodes: 1000,
            queries: 10_000,
            probe_ticks: 200,
            idle_nodes: 3,
            idle_window: Duration::from_secs(30),
            nvml_library: None,
            job_starts: 400,
        }
    }
}

/// Results of the resources scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResourcesResults {
    /// Members in the view queried.
    pub view_nodes: usize,
    /// Queries timed.
    pub queries: usize,
    /// Latency of one local-view query (lock, match, rank), nanoseconds.
    pub query_latency_ns: report::LatencyNs,
    /// Matches per query (on average).
    pub matches_per_query: f64,
    /// CPU time of one probe tick (sysinfo CPU and memory, NVML, `/dev`), ms,
    /// averaged over the ticks timed.
    pub probe_tick_cpu_ms: f64,
    /// CPU time of one NVML reading of every device (`--nvml-library`), ms;
    /// absent without a library.
    pub nvml_tick_cpu_ms: Option<f64>,
    /// Devices that reading found.
    pub nvml_devices: usize,
    /// Devices of the node jobs start on.
    pub job_node_gpus: usize,
    /// A job's start (request to its `started` event) binding one GPU, ns.
    pub gpu_job_start_ns: report::LatencyNs,
    /// The same without a GPU, ns.
    pub plain_job_start_ns: report::LatencyNs,
    /// Nodes in the idle cluster (default settings: 1 s rounds, 30 s resource readings).
    pub idle_nodes: usize,
    /// Seconds watched.
    pub idle_window_secs: f64,
    /// CPU of the whole process over the window, per node, in percent of one core.
    pub idle_cpu_pct_per_node: f64,
}

/// A resources report (`gsp.bench.v1`, scenario `resources`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResourcesReport {
    /// `gsp.bench.v1`.
    pub schema: String,
    /// `{"name": "resources"}`.
    pub scenario: serde_json::Value,
    /// What was measured.
    pub results: ResourcesResults,
    /// Crate version.
    pub gsp_version: String,
    /// Commit.
    pub git_sha: String,
    /// When the run finished.
    pub timestamp: String,
    /// The machine.
    pub host: sys::HostInfo,
}

/// CPU time of one NVML reading of every device through `library`, ms, and
/// the devices found.
fn nvml_ticks(library: &std::path::Path, n: usize) -> Result<(f64, usize), BenchError> {
    let mut gpus = Gpus::open(Some(&library.to_path_buf()));
    let found = gpus.read(job_of).devices.len();
    if found == 0 {
        return Err(BenchError::Setup(format!(
            "NVML through {} found no GPU (the node's log says why); nothing to time",
            library.display()
        )));
    }
    let before = sys::thread_cpu_time();
    for _ in 0..n {
        let _ = gpus.read(job_of);
    }
    let ms = sys::thread_cpu_time().saturating_sub(before).as_secs_f64() * 1e3 / n as f64;
    Ok((ms, found))
}

/// GPUs of the node [`job_starts`] starts jobs on.
const JOB_NODE_GPUS: usize = 8;

/// Starts `n` jobs (`true`) one after another on an in-process node with
/// [`JOB_NODE_GPUS`] GPUs, alternately binding one GPU and none, timing each
/// from the request to its `started` event.
async fn job_starts(n: usize) -> Result<(Histogram<u64>, Histogram<u64>), BenchError> {
    use crate::transport::pb::jobs::v1::{
        RunRequest, StepSpec, job_event::Kind, jobs_client::JobsClient,
    };
    let sample = Sample {
        cpu_total_millis: 64_000,
        memory_total_bytes: 512 << 30,
        gpus: (0..JOB_NODE_GPUS)
            .map(|i| Gpu {
                index: u32::try_from(i).unwrap_or(0),
                uuid: format!("GPU-bench000-0000-4000-8000-{i:012x}"),
                name: "NVIDIA H100 80GB HBM3".into(),
                memory_total_bytes: 80 << 30,
                ..Gpu::default()
            })
            .collect(),
        ..Sample::default()
    };
    let node = super::cluster::start_node(
        0,
        NodeConfig {
            name: "gpu-jobs".into(),
            probe: ProbeChoice::Fake(FakeProbe::constant(sample)),
            jobs: JobsConfig {
                enabled: true,
                max_running: 64,
                ..JobsConfig::default()
            },
            ..NodeConfig::default()
        },
    )
    .await?;
    let mut client = JobsClient::connect(format!("http://{}", node.advertise()))
        .await
        .map_err(|e| BenchError::Setup(format!("cannot connect to the job node: {e}")))?;
    let (mut gpu, mut plain) = (report::new_histogram()?, report::new_histogram()?);
    let mut started = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while started < n {
        let gpus = i64::from(started % 2 == 0);
        let req = RunRequest {
            steps: vec![StepSpec {
                argv: vec!["true".into()],
                ..StepSpec::default()
            }],
            reserve_gpus: gpus,
            ..RunRequest::default()
        };
        let t = Instant::now();
        let mut stream = match client.run(req).await {
            Ok(r) => r.into_inner(),
            // Before the node's first reading, it has no GPUs to give.
            Err(s) if s.code() == tonic::Code::ResourceExhausted && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            Err(s) => return Err(BenchError::Setup(format!("job start refused: {s}"))),
        };
        match stream.message().await {
            Ok(Some(e)) if matches!(e.kind, Some(Kind::Started(_))) => {}
            other => return Err(BenchError::Setup(format!("no started event: {other:?}"))),
        }
        let ns = u64::try_from(t.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let h = if gpus > 0 { &mut gpu } else { &mut plain };
        h.record(ns).map_err(|e| BenchError::Setup(e.to_string()))?;
        // To its end, so that its GPU is free again for the next.
        while let Ok(Some(_)) = stream.message().await {}
        started += 1;
    }
    node.shutdown().await;
    Ok((gpu, plain))
}

fn synthetic(i: usize, rng: &mut StdRng) -> MemberRecord {
    let mut r = MemberRecord::new(
        NodeId::parse(&format!("v{i:05}")).unwrap_or_else(|_| NodeId::random()),
        format!("v{i}"),
        format!("10.{}.{}.{}:50005", i / 65536, (i / 256) % 256, i % 256),
        "default".into(),
        1,
    );
    let total = Amounts {
        cpu_millis: rng.random_range(1..=64) * 1000,
        memory_bytes: rng.random_range(1..=512) << 30,
        gpus: rng.random_range(0..=8),
    };
    let used = Amounts {
        cpu_millis: rng.random_range(0..=total.cpu_millis),
        memory_bytes: rng.random_range(0..=total.memory_bytes),
        gpus: rng.random_range(0..=total.gpus),
    };
    r.capacity = Some(Capacity {
        total,
        used,
        available: Amounts {
            cpu_millis: total.cpu_millis - used.cpu_millis,
            memory_bytes: total.memory_bytes - used.memory_bytes,
            gpus: total.gpus - used.gpus,
        },
    });
    r.tags = Tags {
        cpu: true,
        gpu: total.gpus > 0,
        memory: true,
        camera: rng.random_bool(0.1),
    };
    r
}

/// Runs the scenario.
///
/// # Errors
/// A node cannot start.
pub async fn run(
    c: &ResourcesBenchConfig,
    progress: &dyn Progress,
) -> Result<ResourcesReport, BenchError> {
    progress.phase("resources", 4);
    // 1. Local-view queries over a large view.
    let net = MemoryNetwork::new(1);
    let mut rng = StdRng::seed_from_u64(7);
    let local = synthetic(0, &mut rng);
    let addr = local.address.clone();
    let agent = MembershipAgent::start(
        AgentConfig {
            membership: MembershipConfig {
                max_members: c.view_nodes + 1,
                ..MembershipConfig::default()
            },
            run_loops: false,
            ..AgentConfig::default()
        },
        local,
        Arc::new(net.transport(&addr)),
    );
    agent.with_state(|s| {
        for i in 1..c.view_nodes {
            s.admit(synthetic(i, &mut rng), now());
        }
    });
    let mut hist = report::new_histogram()?;
    let mut matched = 0usize;
    for q in 0..c.queries {
        let req = ResourceRequest {
            cpu_millis: rng.random_range(0..=16) * 1000,
            memory_bytes: rng.random_range(0..=64) << 30,
            gpus: i64::from(q % 3 == 0),
            ..ResourceRequest::default()
        };
        let t = Instant::now();
        let out = agent
            .query(req, 0, Duration::from_secs(1))
            .await
            .map_err(|e| BenchError::Setup(format!("query failed: {e}")))?;
        let ns = u64::try_from(t.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        hist.record(ns)
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        matched += out.answer.nodes.len();
    }
    progress.advance(1);

    // 2. Probe ticks.
    let ticks = tokio::task::spawn_blocking({
        let n = c.probe_ticks;
        move || {
            // The kernel accounts thread CPU in ticks, so time the ticks together.
            let mut probe = SystemProbe::new(None);
            let _ = probe.sample();
            let before = sys::thread_cpu_time();
            for _ in 0..n {
                let _ = probe.sample();
            }
            sys::thread_cpu_time().saturating_sub(before).as_secs_f64() * 1e3 / n.max(1) as f64
        }
    })
    .await
    .map_err(|e| BenchError::Setup(e.to_string()))?;
    let nvml = match c.nvml_library.clone() {
        Some(lib) => Some({
            let n = c.probe_ticks.max(1);
            tokio::task::spawn_blocking(move || nvml_ticks(&lib, n))
                .await
                .map_err(|e| BenchError::Setup(e.to_string()))??
        }),
        None => None,
    };
    progress.advance(1);

    // 3. Job starts on an 8-GPU node, with and without binding a GPU.
    let (gpu_starts, plain_starts) = job_starts(c.job_starts).await?;
    progress.advance(1);

    // 4. An idle cluster at default settings.
    let mut nodes = Vec::with_capacity(c.idle_nodes);
    for i in 0..c.idle_nodes {
        let seeds = nodes
            .first()
            .map(|n: &NodeHandle| vec![n.advertise().to_owned()])
            .unwrap_or_default();
        let config = NodeConfig {
            name: format!("idle-{i}"),
            membership: AgentConfig {
                seeds,
                ..AgentConfig::default()
            },
            ..NodeConfig::default()
        };
        nodes.push(super::cluster::start_node(i, config).await?);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu0 = sys::cpu_time();
    let t0 = Instant::now();
    tokio::time::sleep(c.idle_window).await;
    let cpu = sys::cpu_time().saturating_sub(cpu0).as_secs_f64();
    let wall = t0.elapsed().as_secs_f64();
    for n in nodes {
        n.shutdown().await;
    }
    progress.advance(1);
    progress.finish();

    Ok(ResourcesReport {
        schema: report::SCHEMA.to_owned(),
        scenario: serde_json::json!({ "name": "resources" }),
        results: ResourcesResults {
            view_nodes: c.view_nodes,
            queries: c.queries,
            query_latency_ns: report::summarize(&hist),
            matches_per_query: matched as f64 / c.queries.max(1) as f64,
            probe_tick_cpu_ms: ticks,
            nvml_tick_cpu_ms: nvml.map(|(ms, _)| ms),
            nvml_devices: nvml.map_or(0, |(_, n)| n),
            job_node_gpus: JOB_NODE_GPUS,
            gpu_job_start_ns: report::summarize(&gpu_starts),
            plain_job_start_ns: report::summarize(&plain_starts),
            idle_nodes: c.idle_nodes,
            idle_window_secs: wall,
            idle_cpu_pct_per_node: cpu / wall / c.idle_nodes.max(1) as f64 * 100.0,
        },
        gsp_version: env!("CARGO_PKG_VERSION").to_owned(),
        git_sha: env!("GSP_GIT_SHA").to_owned(),
        timestamp: report::timestamp_now(),
        host: sys::HostInfo::detect(),
    })
}
