//! `gsp node --on-message CMD`: runs CMD (through `sh -c`) once per delivered
//! broadcast, with the payload on stdin and `GSP_MESSAGE_ID`, `GSP_TOPIC`,
//! `GSP_ORIGIN`, `GSP_HOPS` in the environment. At most `concurrency` run at
//! once; each is killed at `timeout`. The runner reads deliveries from its own
//! bounded queue, so a slow handler never blocks gossip: when the queue is full,
//! deliveries are skipped for the handler and counted
//! (`gsp_broadcast_local_drops_total`).

use std::{process::Stdio, sync::Arc, time::Duration};

use tokio::{io::AsyncWriteExt as _, process::Command, sync::Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::broadcast::{BroadcastEngine, Delivery, stats};

/// Default handlers running at once.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Default time a handler may run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The on-message command and its limits.
#[derive(Debug, Clone)]
pub struct OnMessageConfig {
    /// Shell command line.
    pub command: String,
    /// Runs at once, at most.
    pub concurrency: usize,
    /// A run is killed after this long.
    pub timeout: Duration,
}

impl OnMessageConfig {
    /// `command` with the default limits.
    pub fn new(command: impl Into<String>) -> Self {
        Self {
            command: command.into(),
            concurrency: DEFAULT_CONCURRENCY,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Runs the handler for every delivery until `shutdown`.
pub async fn run(engine: BroadcastEngine, config: OnMessageConfig, shutdown: CancellationToken) {
    let mut sub = match engine.subscribe(None) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot run the on-message command");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let config = Arc::new(config);
    loop {
        let d = tokio::select! {
            d = sub.messages.recv() => d,
            () = shutdown.cancelled() => return,
        };
        let Some(d) = d else { return };
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => p,
            () = shutdown.cancelled() => return,
        };
        let Ok(permit) = permit else { return };
        let (engine, config) = (engine.clone(), Arc::clone(&config));
        tokio::spawn(async move {
            let _permit = permit;
            run_one(&engine, &config, d).await;
        });
    }
}

async fn run_one(engine: &BroadcastEngine, config: &OnMessageConfig, d: Delivery) {
    let s = engine.stats();
    stats::inc(&s.handler_runs);
    let child = Command::new("sh")
        .arg("-c")
        .arg(&config.command)
        .env("GSP_MESSAGE_ID", d.id.to_string())
        .env("GSP_TOPIC", &d.topic)
        .env("GSP_ORIGIN", d.origin.as_str())
        .env("GSP_HOPS", d.hops.to_string())
        .stdin(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            stats::inc(&s.handler_failures);
            warn!(command = %config.command, error = %e, "cannot start the on-message command");
            return;
        }
    };
    let stdin = child.stdin.take();
    let payload = d.payload.clone();
    let feed = async move {
        if let Some(mut stdin) = stdin {
            // A handler that ignores its input closes the pipe; that is fine.
            let _ = stdin.write_all(&payload).await;
        }
    };
    let outcome =
        tokio::time::timeout(config.timeout, async { tokio::join!(feed, child.wait()).1 }).await;
    match outcome {
        Ok(Ok(status)) if status.success() => {
            debug!(message_id = %d.id, "on-message command done");
        }
        Ok(Ok(status)) => {
            stats::inc(&s.handler_failures);
            warn!(message_id = %d.id, %status, "on-message command failed");
        }
        Ok(Err(e)) => {
            stats::inc(&s.handler_failures);
            warn!(message_id = %d.id, error = %e, "on-message command failed");
        }
        Err(_) => {
            stats::inc(&s.handler_timeouts);
            warn!(message_id = %d.id, timeout = ?config.timeout, "on-message command timed out; killed");
            let _ = child.kill().await;
        }
    }
}
