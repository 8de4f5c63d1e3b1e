//! `gsp bench broadcast`'s report, and its point-to-point yardstick.

use std::time::Instant;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{error::BenchError, report, sys};
use crate::{core::message::OutboundMessage, runtime::node::NodeHandle};

/// What was measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BroadcastResults {
    /// Broadcasts started.
    pub broadcasts: u64,
    /// Broadcasts every expected member confirmed.
    pub converged: u64,
    /// Broadcasts that timed out.
    pub timed_out: u64,
    /// Send to last receipt at the origin, nanoseconds (converged broadcasts).
    pub convergence_ns: report::LatencyNs,
    /// The convergence histogram, V2 + deflate, base64.
    pub convergence_histogram: String,
    /// One point-to-point transfer of the same payload, send to hop ACK, ns.
    pub p2p_ack_ns: report::LatencyNs,
    /// convergence p99 / point-to-point p99.
    pub p99_vs_p2p: f64,
    /// Payload bytes delivered to other nodes per second of wall time.
    pub goodput_bytes_per_sec: f64,
    /// Broadcast payload bytes put on links / (payload * (nodes - 1) * broadcasts);
    /// 1.0 is the ideal, naive flooding on a full mesh is nodes - 1.
    pub payload_copy_ratio: f64,
    /// Wall time of the broadcast phase, seconds.
    pub wall_secs: f64,
    /// Achieved broadcasts per second (open loop).
    pub achieved_rate: f64,
    /// Process RSS sampled once per second during the broadcast phase, bytes.
    pub rss_samples_bytes: Vec<u64>,
    /// Last RSS sample / the one after the first second (1.0 is flat).
    pub rss_growth: f64,
    /// Receipt messages sent per broadcast per node (merging makes it < 1).
    pub receipt_messages_per_delivery: f64,
    /// Payload sends retried, all nodes.
    pub send_retries: u64,
    /// Deliveries dropped for slow local consumers, all nodes.
    pub local_drops: u64,
    /// CPU time of the process over the broadcast phase, seconds.
    pub cpu_secs: f64,
}

/// A broadcast report (`gsp.bench.v1`, scenario `broadcast`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BroadcastReport {
    /// `gsp.bench.v1`.
    pub schema: String,
    /// The workload.
    pub scenario: serde_json::Value,
    /// What was measured.
    pub results: BroadcastResults,
    /// Crate version.
    pub gsp_version: String,
    /// Commit.
    pub git_sha: String,
    /// When the run finished.
    pub timestamp: String,
    /// The machine.
    pub host: sys::HostInfo,
}

/// Point-to-point transfers of the payload, one at a time, node i to node i+1
/// taking turns; each timed from send to its hop ACK.
pub(super) struct PointToPoint {
    links: Vec<crate::transport::data_plane::link::PeerLink>,
    template: OutboundMessage,
    histogram: hdrhistogram::Histogram<u64>,
    done: usize,
}

impl PointToPoint {
    pub(super) async fn new(nodes: &[NodeHandle], payload: &Bytes) -> Result<Self, BenchError> {
        let n = nodes.len();
        let mut links = Vec::with_capacity(n);
        for i in 0..n {
            let j = (i + 1) % n;
            let link = nodes[i]
                .connect(nodes[j].advertise())
                .await
                .map_err(|e| BenchError::Setup(format!("link {i} -> {j}: {e}")))?;
            links.push(link);
        }
        Ok(Self {
            links,
            template: OutboundMessage::new(nodes[0].node_id().clone(), "", payload.clone(), 0),
            histogram: report::new_histogram()?,
            done: 0,
        })
    }

    pub(super) async fn once(&mut self) -> Result<(), BenchError> {
        let n = self.links.len();
        let i = self.done % n;
        let msg = self.template.with_new_id();
        let t = Instant::now();
        let result = match self.links[i].send(&msg).await {
            Ok(a) => a.await,
            Err(e) => Err(e),
        };
        result.map_err(|source| BenchError::Send {
            phase: "p2p",
            iteration: self.done,
            from: i,
            to: (i + 1) % n,
            source,
        })?;
        let _ = self
            .histogram
            .record(t.elapsed().as_nanos().try_into().unwrap_or(u64::MAX).max(1));
        self.done += 1;
        Ok(())
    }

    pub(super) fn close(self) -> hdrhistogram::Histogram<u64> {
        for l in &self.links {
            l.close("bench finished");
        }
        self.histogram
    }
}
