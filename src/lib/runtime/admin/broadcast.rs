//! The admin service's broadcast calls: `Send` (what `gsp send` calls) and
//! `WatchMessages` (what `gsp watch --messages` calls).

use std::{sync::atomic::Ordering, time::Duration};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::runtime::broadcast::{BroadcastEngine, Progress, SendOptions, SendRefused};
use crate::{core::ack_tracker::Ending, transport::pb::admin::v1 as pb};

/// Longest a send may wait for receipts.
pub const MAX_SEND_TIMEOUT: Duration = Duration::from_secs(3600);
/// Default time a send waits for receipts.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages buffered per `WatchMessages` stream before the sender waits on the
/// client (the engine's own queue of 64 is behind it).
const WATCH_QUEUE: usize = 16;
/// A watcher that does not read for this long is dropped.
const STALLED_WATCHER: Duration = Duration::from_secs(30);

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Starts a broadcast and streams its progress.
///
/// # Errors
/// The engine refused it: too large or reserved topic (INVALID_ARGUMENT), node
/// unavailable (UNAVAILABLE), too many in flight (RESOURCE_EXHAUSTED).
pub fn send(
    engine: &BroadcastEngine,
    shutdown: &CancellationToken,
    r: pb::SendRequest,
) -> Result<ReceiverStream<Result<pb::SendProgress, Status>>, Status> {
    let timeout = if r.timeout_ms == 0 {
        DEFAULT_SEND_TIMEOUT
    } else {
        Duration::from_millis(u64::from(r.timeout_ms)).min(MAX_SEND_TIMEOUT)
    };
    let opts = SendOptions {
        topic: r.topic,
        ttl: r.ttl.unwrap_or(crate::core::broadcast::config::DEFAULT_TTL),
        timeout,
    };
    let payload_bytes = r.payload.len() as u64;
    let mut handle = engine.send(r.payload, &opts).map_err(|e| match e {
        SendRefused::TooLarge { .. } | SendRefused::ReservedTopic(_) => {
            Status::invalid_argument(e.to_string())
        }
        SendRefused::Unavailable(_) => Status::unavailable(e.to_string()),
        SendRefused::Busy(_) => Status::resource_exhausted(e.to_string()),
    })?;
    let (tx, rx) = mpsc::channel(handle.expected.len() + 2);
    let started = pb::SendProgress {
        kind: Some(pb::send_progress::Kind::Started(pb::SendStarted {
            message_id: Bytes::copy_from_slice(handle.id.as_bytes()),
            payload_bytes,
            expected: handle.expected.iter().map(ToString::to_string).collect(),
            disabled: handle.disabled.iter().map(ToString::to_string).collect(),
        })),
    };
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        if tx.send(Ok(started)).await.is_err() {
            return;
        }
        loop {
            let p = tokio::select! {
                p = handle.progress.recv() => p,
                () = tx.closed() => return,
                () = shutdown.cancelled() => {
                    let _ = tx.send(Err(Status::unavailable("node is shutting down"))).await;
                    return;
                }
            };
            let Some(p) = p else { return };
            let (kind, last) = match p {
                Progress::Acked { node, latency } => (
                    pb::send_progress::Kind::Ack(pb::SendAck {
                        node_id: node.to_string(),
                        latency_us: micros(latency),
                    }),
                    false,
                ),
                Progress::Done(c) => (
                    pb::send_progress::Kind::Done(pb::SendDone {
                        converged: c.ending == Ending::Converged,
                        elapsed_us: micros(c.finished.saturating_duration_since(c.started)),
                        missing: c.missing.iter().map(ToString::to_string).collect(),
                        departed: c.departed.iter().map(ToString::to_string).collect(),
                    }),
                    true,
                ),
            };
            let item = pb::SendProgress { kind: Some(kind) };
            if tx.send(Ok(item)).await.is_err() || last {
                return;
            }
        }
    });
    Ok(ReceiverStream::new(rx))
}

/// Streams messages delivered on this node.
///
/// # Errors
/// Too many watchers are connected (RESOURCE_EXHAUSTED).
pub fn watch_messages(
    engine: &BroadcastEngine,
    shutdown: &CancellationToken,
    r: pb::WatchMessagesRequest,
) -> Result<ReceiverStream<Result<pb::DeliveredMessage, Status>>, Status> {
    let topic = (!r.topic.is_empty()).then_some(r.topic);
    let mut sub = engine
        .subscribe(topic)
        .map_err(|e| Status::resource_exhausted(e.to_string()))?;
    let (tx, rx) = mpsc::channel(WATCH_QUEUE);
    let shutdown = shutdown.clone();
    let engine = engine.clone();
    tokio::spawn(async move {
        let mut reported = 0;
        loop {
            let d = tokio::select! {
                d = sub.messages.recv() => d,
                () = tx.closed() => return,
                () = shutdown.cancelled() => {
                    let _ = tx.send(Err(Status::unavailable("node is shutting down"))).await;
                    return;
                }
            };
            let Some(d) = d else { return };
            let dropped = sub.dropped.load(Ordering::Relaxed);
            let msg = pb::DeliveredMessage {
                message_id: Bytes::copy_from_slice(d.id.as_bytes()),
                origin_name: engine.name_of(&d.origin).unwrap_or_default(),
                origin: d.origin.to_string(),
                topic: d.topic,
                payload: d.payload,
                hops: d.hops,
                created_unix_ns: d.created_unix_ns,
                missed: dropped - reported,
            };
            reported = dropped;
            if tokio::time::timeout(STALLED_WATCHER, tx.send(Ok(msg)))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Ok(ReceiverStream::new(rx))
}
