//! The JSON report (`gsp.bench.v1`), documented in `bench-results/README.md`.

use std::{
    path::{Path, PathBuf},
    time::SystemTime,
};

use base64::Engine as _;
use hdrhistogram::{
    Histogram,
    serialization::{Serializer as _, V2DeflateSerializer},
};
use serde::{Deserialize, Serialize};

use super::{config::BenchConfig, error::BenchError, sys::HostInfo};

/// Schema identifier of the report.
pub const SCHEMA: &str = "gsp.bench.v1";

/// A whole bench report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// What was run.
    pub scenario: ScenarioInfo,
    /// gsp's measurements.
    pub results: Results,
    /// Raw-TCP measurements from the same run; absent with `--no-baseline`.
    pub baseline: Option<Baseline>,
    /// gsp throughput / raw-TCP throughput (medians over iterations); absent
    /// without a baseline.
    pub efficiency: Option<f64>,
    /// The same workload over mutual TLS, measured in the same run; only with
    /// `--tls` (absent from the document otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsResults>,
    /// Data plane tuning used.
    pub tuning: Tuning,
    /// `gsp --version`'s crate version.
    pub gsp_version: String,
    /// Commit the binary was built from.
    pub git_sha: String,
    /// When the run finished, RFC 3339 UTC.
    pub timestamp: String,
    /// The machine.
    pub host: HostInfo,
}

/// The workload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ScenarioInfo {
    /// Scenario name (`flood`).
    pub name: String,
    /// Nodes in the mesh.
    pub nodes: usize,
    /// Messages per ordered pair per iteration.
    pub messages_per_peer: usize,
    /// Payload size in bytes.
    pub payload_bytes: u64,
    /// Counted iterations.
    pub iterations: usize,
    /// Uncounted warm-up iterations.
    pub warmup: usize,
}

impl ScenarioInfo {
    /// Whether `other` ran the same workload: scenario, nodes, messages
    /// per peer and payload (how often it ran may differ).
    pub fn same_workload(&self, other: &Self) -> bool {
        (
            &self.name,
            self.nodes,
            self.messages_per_peer,
            self.payload_bytes,
        ) == (
            &other.name,
            other.nodes,
            other.messages_per_peer,
            other.payload_bytes,
        )
    }

    /// The workload in words: `flood with 4 nodes, 30 messages per peer,
    /// 524288 byte payloads`.
    pub fn workload(&self) -> String {
        format!(
            "{} with {} nodes, {} messages per peer, {} byte payloads",
            self.name, self.nodes, self.messages_per_peer, self.payload_bytes
        )
    }
}

/// Latency summary in nanoseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct LatencyNs {
    /// Smallest.
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

/// Per-iteration convergence summary in nanoseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConvergenceNs {
    /// Fastest iteration.
    pub min: u64,
    /// Median iteration.
    pub p50: u64,
    /// Slowest iteration.
    pub max: u64,
}

/// One counted iteration.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct IterationSummary {
    /// First send to last ACK, gsp.
    pub convergence_ns: u64,
    /// Payload bytes per second, gsp.
    pub throughput_bytes_per_sec: f64,
    /// The same for raw TCP, when measured.
    pub tcp_convergence_ns: Option<u64>,
    /// The same for gsp over mutual TLS; only with `--tls` (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_convergence_ns: Option<u64>,
    /// ACK latency p99 of this iteration alone, gsp (absent in reports from
    /// before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_p99_ns: Option<u64>,
    /// What this iteration cost the process per message, gsp (absent in
    /// older reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_message: Option<PerMessage>,
}

/// Costs of one iteration per message sent, over the whole process (every
/// node, sender and receiver side). The counts move with the code far more
/// than with the host; CPU time moves with both.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct PerMessage {
    /// CPU time (user + system), nanoseconds.
    pub cpu_ns: f64,
    /// Heap allocations (absent when the binary does not count them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocations: Option<f64>,
    /// Bytes those allocations requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated_bytes: Option<f64>,
    /// write(2)-family system calls (absent where not measurable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_syscalls: Option<f64>,
    /// Context switches, voluntary and involuntary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_switches: Option<f64>,
}

/// The median of a figure over the counted iterations, with its range.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Spread {
    /// Median over iterations.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Self {
            median: super::verdict::median(&v),
            min: v[0],
            max: v[v.len() - 1],
        })
    }

    /// (max - min) / median, in percent: how much the figure moved between
    /// iterations (0 when the median is 0).
    pub fn range_pct(&self) -> f64 {
        if self.median.abs() > f64::EPSILON {
            (self.max - self.min) / self.median.abs() * 100.0
        } else {
            0.0
        }
    }
}

/// [`PerMessage`] over the counted iterations, each with its spread.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct PerMessageSpread {
    /// CPU time, nanoseconds.
    pub cpu_ns: Spread,
    /// Heap allocations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocations: Option<Spread>,
    /// Bytes allocated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated_bytes: Option<Spread>,
    /// write(2)-family system calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_syscalls: Option<Spread>,
    /// Context switches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_switches: Option<Spread>,
}

impl PerMessageSpread {
    /// The spread of each figure over `iterations`; `None` without any.
    pub fn of(iterations: &[PerMessage]) -> Option<Self> {
        let all = |f: fn(&PerMessage) -> Option<f64>| -> Option<Spread> {
            let v: Option<Vec<f64>> = iterations.iter().map(f).collect();
            Spread::of(&v?)
        };
        Some(Self {
            cpu_ns: all(|p| Some(p.cpu_ns))?,
            allocations: all(|p| p.allocations),
            allocated_bytes: all(|p| p.allocated_bytes),
            write_syscalls: all(|p| p.write_syscalls),
            context_switches: all(|p| p.context_switches),
        })
    }
}

/// gsp's measurements over the counted iterations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// Messages sent, summed over counted iterations.
    pub messages_sent: u64,
    /// Messages ACKed, summed over counted iterations.
    pub messages_acked: u64,
    /// Messages that failed (the run stops at the first, so 0 in a written report).
    pub errors: u64,
    /// Send-to-ACK latency of every message.
    pub ack_latency_ns: LatencyNs,
    /// First send to last ACK, per iteration.
    pub convergence_ns: ConvergenceNs,
    /// Payload bytes per second at the median convergence time.
    pub throughput_bytes_per_sec: f64,
    /// Messages per second at the median convergence time.
    pub messages_per_sec: f64,
    /// CPU time (user + system) of the whole process during gsp iterations.
    pub cpu_seconds: f64,
    /// Peak RSS of the whole bench process.
    pub peak_rss_bytes: u64,
    /// Heap allocations in the process during gsp iterations, per message (all
    /// nodes, sender and receiver side); absent when the binary does not count.
    pub allocations_per_message: Option<f64>,
    /// Bytes those allocations requested, per message.
    pub allocated_bytes_per_message: Option<f64>,
    /// Per-message costs over the counted iterations, each with its spread
    /// (absent in older reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_message: Option<PerMessageSpread>,
    /// The ACK latency HdrHistogram, V2 + deflate, base64; mergeable across runs.
    pub histogram: String,
    /// Each counted iteration.
    pub iterations: Vec<IterationSummary>,
}

/// Raw-TCP measurements.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baseline {
    /// Payload bytes per second at the median convergence time.
    pub tcp_throughput_bytes_per_sec: f64,
    /// Median first-send-to-last-ACK time.
    pub tcp_convergence_ns: u64,
    /// Send-to-ACK latency of every raw-TCP message.
    pub tcp_ack_latency_ns: LatencyNs,
}

/// gsp over mutual TLS (every node serving and dialing with TLS), over the
/// counted iterations; the plaintext figures are in [`Results`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TlsResults {
    /// Messages ACKed, summed over counted iterations.
    pub messages_acked: u64,
    /// Send-to-ACK latency of every message.
    pub ack_latency_ns: LatencyNs,
    /// First send to last ACK, per iteration.
    pub convergence_ns: ConvergenceNs,
    /// Payload bytes per second at the median convergence time.
    pub throughput_bytes_per_sec: f64,
    /// Messages per second at the median convergence time.
    pub messages_per_sec: f64,
    /// CPU time of the whole process during TLS iterations.
    pub cpu_seconds: f64,
    /// Heap allocations during TLS iterations, per message; absent when the
    /// binary does not count.
    pub allocations_per_message: Option<f64>,
    /// The ACK latency HdrHistogram, V2 + deflate, base64.
    pub histogram: String,
    /// TLS throughput / plaintext throughput (medians over iterations); 0 when
    /// plaintext throughput is 0.
    pub tls_vs_plaintext: f64,
    /// The goal for `tls_vs_plaintext` (TLS costs at most 15%: 0.85).
    pub target: f64,
    /// Whether `tls_vs_plaintext >= target`.
    pub target_met: bool,
    /// TLS throughput / raw-TCP throughput; absent without a baseline.
    pub efficiency: Option<f64>,
}

/// Data plane settings in effect.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tuning {
    /// Chunk size.
    pub max_chunk_bytes: usize,
    /// HTTP/2 max frame size.
    pub h2_max_frame_bytes: u32,
    /// HTTP/2 stream window.
    pub h2_stream_window_bytes: u32,
    /// HTTP/2 connection window.
    pub h2_connection_window_bytes: u32,
    /// Messages in flight per link.
    pub max_in_flight: usize,
    /// Payload bytes in flight per link.
    pub max_in_flight_bytes: u64,
}

impl ScenarioInfo {
    /// The scenario part of a report for `config`.
    pub fn from_config(c: &BenchConfig) -> Self {
        Self {
            name: c.scenario.name().to_owned(),
            nodes: c.nodes,
            messages_per_peer: c.messages_per_peer,
            payload_bytes: c.payload_bytes,
            iterations: c.iterations,
            warmup: c.warmup,
        }
    }
}

impl Tuning {
    /// The tuning part of a report for `config`.
    pub fn from_config(c: &BenchConfig) -> Self {
        let d = &c.data_plane;
        Self {
            max_chunk_bytes: d.max_chunk_bytes,
            h2_max_frame_bytes: d.h2_max_frame_bytes,
            h2_stream_window_bytes: d.h2_stream_window_bytes,
            h2_connection_window_bytes: d.h2_connection_window_bytes,
            max_in_flight: d.max_in_flight,
            max_in_flight_bytes: d.max_in_flight_bytes,
        }
    }
}

/// A histogram of nanosecond latencies (1 ns .. 1 h, 3 significant digits).
///
/// # Errors
/// Never in practice: the bounds are valid constants.
pub fn new_histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
        .map_err(|e| BenchError::Setup(format!("histogram: {e}")))
}

/// Summarizes a histogram.
pub fn summarize(h: &Histogram<u64>) -> LatencyNs {
    LatencyNs {
        min: h.min(),
        p50: h.value_at_quantile(0.50),
        p90: h.value_at_quantile(0.90),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
        mean: h.mean(),
    }
}

/// Serializes a histogram as V2 + deflate, base64 (standard alphabet).
///
/// # Errors
/// Serialization failed.
pub fn encode_histogram(h: &Histogram<u64>) -> Result<String, BenchError> {
    let mut buf = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .map_err(|e| BenchError::Setup(format!("histogram serialization: {e:?}")))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(buf))
}

/// Reads back what [`encode_histogram`] wrote.
///
/// # Errors
/// Not base64, or not a V2 histogram.
pub fn decode_histogram(s: &str) -> Result<Histogram<u64>, String> {
    use hdrhistogram::serialization::Deserializer;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| format!("histogram is not base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("histogram cannot be read: {e:?}"))
}

/// Median of a non-empty slice (lower middle for even lengths); 0 when empty.
pub fn median(values: &[u64]) -> u64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0)
}

/// Now as RFC 3339 UTC, seconds precision.
pub fn timestamp_now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Writes `report` as `<dir>/<scenario>-<timestamp>.json` and returns the path.
///
/// # Errors
/// The directory or file cannot be written.
pub fn write(report: &Report, dir: &Path) -> Result<PathBuf, BenchError> {
    write_json(report, dir, &report.scenario.name, &report.timestamp)
}

/// Writes any report as `<dir>/<scenario>-<timestamp>.json` and returns the path.
///
/// # Errors
/// The directory or file cannot be written.
pub fn write_json<T: Serialize>(
    report: &T,
    dir: &Path,
    scenario: &str,
    timestamp: &str,
) -> Result<PathBuf, BenchError> {
    let stamp = timestamp.replace([':', '-'], "");
    let path = dir.join(format!("{scenario}-{stamp}.json"));
    let io = |source| BenchError::Write {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut json = serde_json::to_vec_pretty(report).map_err(|e| io(std::io::Error::other(e)))?;
    json.push(b'\n');
    std::fs::write(&path, json).map_err(io)?;
    Ok(path)
}

/// A flood report for `--compare`, from the JSON already read from `file`.
///
/// # Errors
/// It is not a `gsp.bench.v1` flood report.
pub fn from_value(value: serde_json::Value, file: &str) -> Result<Report, String> {
    let report: Report = serde_json::from_value(value)
        .map_err(|e| format!("{file} is not a gsp bench report: {e}"))?;
    if report.schema != SCHEMA {
        return Err(format!(
            "{file} has schema '{}', expected '{SCHEMA}'",
            report.schema
        ));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use hdrhistogram::serialization::Deserializer;

    use super::*;

    #[test]
    fn histograms_round_trip_through_base64() {
        let mut h = new_histogram().unwrap();
        for v in [1_000u64, 2_000, 3_000, 1_000_000] {
            h.record(v).unwrap();
        }
        let s = encode_histogram(&h).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&s)
            .unwrap();
        let back: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .unwrap();
        assert_eq!(back.len(), 4);
        assert_eq!(decode_histogram(&s).unwrap().len(), 4);
        assert!(decode_histogram("not base64!").is_err());
        assert_eq!(back.max(), h.max());
    }

    #[test]
    fn median_takes_the_lower_middle() {
        assert_eq!(median(&[5, 1, 3]), 3);
        assert_eq!(median(&[4, 1, 3, 2]), 2);
        assert_eq!(median(&[]), 0);
    }
}
