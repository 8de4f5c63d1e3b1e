//! `gsp node --on-message CMD`: runs CMD (through `sh -c`) once per delivered
//! broadcast, with the payload on stdin and `GSP_MESSAGE_ID`, `GSP_TOPIC`,
//! `GSP_ORIGIN`, `GSP_HOPS` in the environment. At most `concurrency` run at
//! once; each is killed (its process group) at `timeout`; output and exit
//! status are logged (see [`super::handler`]). The runner reads deliveries from its own
//! bounded queue, so a slow handler never blocks gossip: when the queue is full,
//! deliveries are skipped for the handler and counted
//! (`gsp_broadcast_local_drops_total`).

use std::{sync::Arc, time::Duration};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{
    broadcast::{BroadcastEngine, Delivery, stats},
    handler::{HookOutcome, HookRun, run_hook},
};

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
    let started = std::time::Instant::now();
    let outcome = run_hook(HookRun {
        hook: "on-message",
        subject: d.id.to_string(),
        command: &config.command,
        env: vec![
            ("GSP_MESSAGE_ID", d.id.to_string()),
            ("GSP_TOPIC", d.topic.clone()),
            ("GSP_ORIGIN", d.origin.as_str().to_owned()),
            (
                "GSP_ORIGIN_NAME",
                engine.name_of(&d.origin).unwrap_or_default(),
            ),
            ("GSP_HOPS", d.hops.to_string()),
        ],
        stdin: d.payload.clone(),
        timeout: config.timeout,
        log_success: false,
    })
    .await;
    s.handler_seconds.observe(started.elapsed());
    match outcome {
        HookOutcome::Succeeded => {}
        HookOutcome::Failed => stats::inc(&s.handler_failures),
        HookOutcome::TimedOut => stats::inc(&s.handler_timeouts),
    }
}
