//! The flood workload over the gsp data plane: every node sends M payloads to every
//! other node, serially per link and in parallel across links (seed 002).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use tokio::{sync::mpsc, task::JoinSet, time::Instant};

use super::{
    cluster::LocalCluster,
    error::BenchError,
    progress::{IterationOutcome, Progress},
};
use crate::{
    core::message::OutboundMessage,
    transport::data_plane::link::{AckFuture, PeerLink},
};

/// One iteration's parameters.
#[derive(Debug, Clone)]
pub struct FloodPlan {
    /// What is measured, for error messages: `gsp` or `gsp+tls`.
    pub phase: &'static str,
    /// Iteration number, for error messages.
    pub iteration: usize,
    /// Messages per ordered pair.
    pub messages_per_peer: usize,
    /// Deadline for the whole iteration.
    pub timeout: Duration,
    /// Kill the last node after this many ACKs.
    pub kill_after_acks: Option<u64>,
}

struct PairResult {
    latencies_ns: Vec<u64>,
    last_ack: Option<Instant>,
}

/// Runs one flood iteration over `cluster`'s links with `payload`.
///
/// # Errors
/// A message fails (a peer vanished, a rejection, an ACK timeout) or the iteration
/// misses its deadline.
pub async fn run_iteration(
    cluster: &mut LocalCluster,
    payload: &Bytes,
    plan: &FloodPlan,
    progress: &Arc<dyn Progress>,
) -> Result<IterationOutcome, BenchError> {
    let acked = Arc::new(AtomicU64::new(0));
    let expected: u64 =
        cluster.links.iter().map(|l| l.len() as u64).sum::<u64>() * plan.messages_per_peer as u64;
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for (from, links) in cluster.links.iter().enumerate() {
        let Some(node) = cluster.nodes[from].as_ref() else {
            continue;
        };
        // One checksum per node; every message reuses the payload buffer.
        let template = OutboundMessage::new(
            node.node_id().clone(),
            "bench",
            payload.clone(),
            crate::clock::unix_ns(),
        );
        for (to, link) in links {
            tasks.spawn(send_pair(
                link.clone(),
                template.clone(),
                plan.messages_per_peer,
                Arc::clone(&acked),
                Arc::clone(progress),
                (from, *to),
            ));
        }
    }
    let collect = async {
        let mut outcome = IterationOutcome::default();
        let mut last_ack = start;
        while let Some(joined) = tasks.join_next().await {
            let pair = match joined {
                Ok(Ok(p)) => p,
                Ok(Err((from, to, source))) => {
                    return Err(BenchError::Send {
                        phase: plan.phase,
                        iteration: plan.iteration,
                        from,
                        to,
                        source,
                    });
                }
                Err(e) => return Err(BenchError::Setup(format!("sender task failed: {e}"))),
            };
            if let Some(t) = pair.last_ack {
                last_ack = last_ack.max(t);
            }
            outcome.messages += pair.latencies_ns.len() as u64;
            outcome.ack_latencies_ns.extend(pair.latencies_ns);
        }
        outcome.convergence = last_ack.saturating_duration_since(start);
        outcome.bytes = outcome.messages * payload.len() as u64;
        Ok(outcome)
    };
    let kill = async {
        match plan.kill_after_acks {
            Some(n) => {
                while acked.load(Ordering::Relaxed) < n {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Some(())
            }
            None => std::future::pending().await,
        }
    };
    let deadline = tokio::time::sleep(plan.timeout);
    tokio::pin!(collect, kill, deadline);
    let mut killed = false;
    loop {
        tokio::select! {
            r = &mut collect => return r,
            Some(()) = &mut kill, if !killed => {
                killed = true;
                let last = cluster.nodes.len() - 1;
                cluster.kill(last);
            }
            () = &mut deadline => {
                return Err(BenchError::Timeout {
                    phase: plan.phase,
                    iteration: plan.iteration,
                    timeout: plan.timeout,
                    acked: acked.load(Ordering::Relaxed),
                    expected,
                });
            }
        }
    }
}

type PairError = (usize, usize, crate::transport::error::SendError);

/// Sends `count` messages on one link and collects their ACKs as they come.
async fn send_pair(
    link: PeerLink,
    template: OutboundMessage,
    count: usize,
    acked: Arc<AtomicU64>,
    progress: Arc<dyn Progress>,
    (from, to): (usize, usize),
) -> Result<PairResult, PairError> {
    // ACK futures complete in order on a link; a collector awaits them while the
    // sender keeps the link busy.
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, AckFuture)>();
    let collector = tokio::spawn(async move {
        let mut latencies_ns = Vec::with_capacity(count);
        let mut last_ack = None;
        while let Some((submitted, ack)) = rx.recv().await {
            let d = ack.await.map_err(|e| (from, to, e))?;
            let ns = d.acked_at.saturating_duration_since(submitted).as_nanos();
            latencies_ns.push(u64::try_from(ns).unwrap_or(u64::MAX));
            last_ack = Some(d.acked_at);
            acked.fetch_add(1, Ordering::Relaxed);
            progress.advance(1);
        }
        Ok(PairResult {
            latencies_ns,
            last_ack,
        })
    });
    for _ in 0..count {
        let msg = template.with_new_id();
        let submitted = Instant::now();
        match link.send(&msg).await {
            Ok(ack) => {
                if tx.send((submitted, ack)).is_err() {
                    break;
                }
            }
            Err(e) => {
                collector.abort();
                return Err((from, to, e));
            }
        }
    }
    drop(tx);
    match collector.await {
        Ok(r) => r,
        Err(e) => Err((
            from,
            to,
            crate::transport::error::SendError::LinkClosed {
                peer: link.peer().clone(),
                reason: format!("ACK collector failed: {e}"),
            },
        )),
    }
}
