//! What a bench run does: the scenario and its knobs. `Default` is the seed workload.

use std::{path::PathBuf, time::Duration};

use crate::transport::config::DataPlaneConfig;

/// Default node count (seed 002: 4).
pub const DEFAULT_NODES: usize = 4;
/// Default messages from every node to every other (seed 002: 30).
pub const DEFAULT_MESSAGES_PER_PEER: usize = 30;
/// Default payload (seed 002: 512 KiB).
pub const DEFAULT_PAYLOAD_BYTES: u64 = 512 << 10;
/// Default counted iterations.
pub const DEFAULT_ITERATIONS: usize = 5;
/// Default uncounted warm-up iterations.
pub const DEFAULT_WARMUP: usize = 1;
/// Default per-iteration deadline.
pub const DEFAULT_ITERATION_TIMEOUT: Duration = Duration::from_secs(60);

/// Which workload to run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Every node sends `messages_per_peer` payloads to every other node over the
    /// data plane; each is ACKed by its receiver (seed 002's workload).
    Flood,
    /// N nodes gossip over real gRPC: join convergence, crash detection,
    /// traffic per node, false positives (also under runtime stalls).
    Membership,
    /// The cost of resource awareness: local-view query latency over a large
    /// view, CPU per probe tick, an idle node's CPU.
    Resources,
    /// Reliable broadcast through the mesh: end-to-end convergence against a
    /// point-to-point transfer, payload copies per node, goodput, RSS under load.
    Broadcast,
    /// One swarm broadcast over thousands of simulated nodes: the pure
    /// broadcast cores with a per-node link model, in simulated time.
    Sim,
    /// Membership of thousands of simulated nodes: every node's pure SWIM
    /// core over a simulated network (latency, loss), in simulated time.
    MembershipSim,
}

impl Scenario {
    /// The scenario's name in reports and file names.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flood => "flood",
            Self::Membership => "membership",
            Self::Resources => "resources",
            Self::Broadcast => "broadcast",
            Self::Sim => "sim",
            Self::MembershipSim => "membership-sim",
        }
    }
}

/// Deliberate faults, for testing that the bench fails cleanly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultPlan {
    /// Stop the last node abruptly after this many ACKs in the first counted
    /// iteration.
    pub kill_node_after_acks: Option<u64>,
}

/// A bench run's settings.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The workload.
    pub scenario: Scenario,
    /// Nodes in the full mesh.
    pub nodes: usize,
    /// Messages from each node to each other node per iteration.
    pub messages_per_peer: usize,
    /// Payload size.
    pub payload_bytes: u64,
    /// Counted iterations.
    pub iterations: usize,
    /// Uncounted warm-up iterations.
    pub warmup: usize,
    /// Also measure the raw-TCP baseline.
    pub baseline: bool,
    /// Also measure the workload with every node on mutual TLS.
    pub tls: bool,
    /// Deadline for one iteration.
    pub iteration_timeout: Duration,
    /// Directory for the JSON report; `None` writes nothing.
    pub out_dir: Option<PathBuf>,
    /// Data plane tuning for the nodes.
    pub data_plane: DataPlaneConfig,
    /// Faults to inject.
    pub faults: FaultPlan,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            scenario: Scenario::Flood,
            nodes: DEFAULT_NODES,
            messages_per_peer: DEFAULT_MESSAGES_PER_PEER,
            payload_bytes: DEFAULT_PAYLOAD_BYTES,
            iterations: DEFAULT_ITERATIONS,
            warmup: DEFAULT_WARMUP,
            baseline: true,
            tls: false,
            iteration_timeout: DEFAULT_ITERATION_TIMEOUT,
            out_dir: Some(PathBuf::from("bench-results")),
            data_plane: DataPlaneConfig::default(),
            faults: FaultPlan::default(),
        }
    }
}

impl BenchConfig {
    /// Messages sent in one iteration.
    pub fn messages_per_iteration(&self) -> u64 {
        (self.nodes * self.nodes.saturating_sub(1) * self.messages_per_peer) as u64
    }

    /// Checks the settings, naming every problem at once.
    ///
    /// # Errors
    /// A list of problems, one per line.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.nodes < 2 {
            problems.push(format!("--nodes must be at least 2 (got {})", self.nodes));
        }
        if self.nodes > 64 {
            problems.push(format!(
                "--nodes must be at most 64 in one process (got {})",
                self.nodes
            ));
        }
        if self.messages_per_peer == 0 {
            problems.push("--messages-per-peer must be at least 1".to_owned());
        }
        if self.iterations == 0 {
            problems.push("--iterations must be at least 1".to_owned());
        }
        if self.payload_bytes > self.data_plane.max_payload_bytes {
            problems.push(format!(
                "--payload {} exceeds the data plane limit of {} bytes",
                self.payload_bytes, self.data_plane.max_payload_bytes
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "invalid bench settings:\n  - {}",
                problems.join("\n  - ")
            ))
        }
    }
}
