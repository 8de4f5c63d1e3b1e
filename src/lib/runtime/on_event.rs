//! `gsp node --on-event [KIND,...=]CMD` (Serf's event handlers): runs CMD
//! (through `sh -c`, see [`super::handler`]) for membership and maintenance
//! events, with the event as JSON on stdin and `GSP_EVENT`, the member's and
//! the local node's identity in the environment.
//!
//! Events are handled in the order they happen, `concurrency` at a time (1 by
//! default, as Serf does, so one member's `dead` never races its
//! `alive_again`). The node keeps [`crate::runtime::membership::EVENT_BUFFER`]
//! events for the handlers; when they fall further behind, the oldest are
//! skipped, counted (`gsp_event_handler_dropped_total`) and logged.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use tokio::sync::{Semaphore, broadcast::error::RecvError};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{
    handler::{HookOutcome, HookRun, run_hook},
    membership::{MembershipAgent, stats::MembershipStats},
    view::rfc3339,
};
use crate::core::membership::events::{EventKind, MembershipEvent};

/// Default handlers running at once.
pub const DEFAULT_CONCURRENCY: usize = 1;
/// Default time a handler may run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// One `--on-event` handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHandler {
    /// The kinds it runs for.
    pub kinds: Vec<EventKind>,
    /// Shell command line.
    pub command: String,
}

impl EventHandler {
    /// Parses `[KIND,...=]CMD`. Without kinds, every kind but `updated` (which
    /// fires whenever a member republishes its resources).
    ///
    /// # Errors
    /// An unknown kind, or no command.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (kinds, command) = match spec.split_once('=') {
            Some((head, cmd))
                if !head.is_empty()
                    && head
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b',') =>
            {
                let mut kinds = Vec::new();
                for k in head.split(',').filter(|k| !k.is_empty()) {
                    let kind = EventKind::ALL
                        .into_iter()
                        .find(|e| e.as_str() == k)
                        .ok_or_else(|| {
                            format!(
                                "--on-event: unknown event kind '{k}' in '{spec}'; kinds are {} (write `env {head}=... CMD` to set a variable)",
                                kind_names()
                            )
                        })?;
                    if !kinds.contains(&kind) {
                        kinds.push(kind);
                    }
                }
                (kinds, cmd)
            }
            _ => (
                EventKind::ALL
                    .into_iter()
                    .filter(|k| *k != EventKind::Updated)
                    .collect(),
                spec,
            ),
        };
        if command.trim().is_empty() {
            return Err(format!("--on-event: '{spec}' has no command"));
        }
        Ok(Self {
            kinds,
            command: command.to_owned(),
        })
    }
}

fn kind_names() -> String {
    EventKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The handlers and their limits.
#[derive(Debug, Clone)]
pub struct OnEventConfig {
    /// Handlers, each run for its kinds.
    pub handlers: Vec<EventHandler>,
    /// Runs at once, at most (1: in event order).
    pub concurrency: usize,
    /// A run is killed after this long.
    pub timeout: Duration,
}

/// This node, as handlers see it.
#[derive(Debug, Clone)]
pub struct LocalNode {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// Runs the handlers for every event until `shutdown`.
pub async fn run(
    agent: MembershipAgent,
    config: OnEventConfig,
    local: LocalNode,
    shutdown: CancellationToken,
) {
    // Every event since the agent started: a seed's `joined` happens while
    // the node is still starting, before this task runs.
    let mut events = agent
        .events_from_start()
        .unwrap_or_else(|| agent.subscribe());
    let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let config = Arc::new(config);
    let local = Arc::new(local);
    loop {
        let e = tokio::select! {
            e = events.recv() => e,
            () = shutdown.cancelled() => return,
        };
        let e = match e {
            Ok(e) => e,
            Err(RecvError::Lagged(n)) => {
                agent
                    .stats()
                    .event_hook_dropped
                    .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                warn!(
                    skipped = n,
                    "on-event commands fell behind; the oldest events were skipped for them"
                );
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        for h in config.handlers.iter().filter(|h| h.kinds.contains(&e.kind)) {
            let permit = tokio::select! {
                p = Arc::clone(&slots).acquire_owned() => p,
                () = shutdown.cancelled() => return,
            };
            let Ok(permit) = permit else { return };
            let labels = agent.with_state(|m| m.get(&e.id).map(|r| r.labels.clone()));
            let run = hook_run(h, &e, &labels.unwrap_or_default(), &local, config.timeout);
            let agent = agent.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let stats = agent.stats();
                MembershipStats::inc(&stats.event_hook_runs);
                let started = std::time::Instant::now();
                let outcome = run_hook(run.as_run()).await;
                stats.event_hook_seconds.observe(started.elapsed());
                match outcome {
                    HookOutcome::Succeeded => {}
                    HookOutcome::Failed => MembershipStats::inc(&stats.event_hook_failures),
                    HookOutcome::TimedOut => MembershipStats::inc(&stats.event_hook_timeouts),
                }
            });
        }
    }
}

/// A run, owned so it can move into a task.
struct OwnedRun {
    subject: String,
    command: String,
    env: Vec<(&'static str, String)>,
    stdin: Bytes,
    timeout: Duration,
}

impl OwnedRun {
    fn as_run(&self) -> HookRun<'_> {
        HookRun {
            hook: "on-event",
            subject: self.subject.clone(),
            command: &self.command,
            env: self.env.clone(),
            stdin: self.stdin.clone(),
            timeout: self.timeout,
            log_success: true,
        }
    }
}

fn hook_run(
    h: &EventHandler,
    e: &MembershipEvent,
    labels: &std::collections::BTreeMap<String, String>,
    local: &LocalNode,
    timeout: Duration,
) -> OwnedRun {
    let labels_json = serde_json::to_string(labels).unwrap_or_else(|_| "{}".to_owned());
    let json = serde_json::json!({
        "schema": "gsp.event.v1",
        "kind": e.kind.as_str(),
        "node_id": e.id.as_str(),
        "node_name": e.name,
        "address": e.address,
        "state": e.state.as_str(),
        "incarnation": e.version.incarnation.to_string(),
        "version": e.version.counter,
        "time": rfc3339(e.at_unix_ns),
        "time_unix_ns": e.at_unix_ns.to_string(),
        "maintenance": e.maintenance.as_str(),
        "labels": labels,
        "local_node_id": local.id,
        "local_node_name": local.name,
    });
    let mut stdin = json.to_string().into_bytes();
    stdin.push(b'\n');
    OwnedRun {
        subject: format!("{} {}", e.kind.as_str(), e.name),
        command: h.command.clone(),
        env: vec![
            ("GSP_EVENT", e.kind.as_str().to_owned()),
            ("GSP_MEMBER_ID", e.id.to_string()),
            ("GSP_MEMBER_NAME", e.name.clone()),
            ("GSP_MEMBER_ADDRESS", e.address.clone()),
            ("GSP_MEMBER_STATE", e.state.as_str().to_owned()),
            ("GSP_MEMBER_MAINTENANCE", e.maintenance.as_str().to_owned()),
            ("GSP_MEMBER_LABELS", labels_json),
            ("GSP_NODE_ID", local.id.clone()),
            ("GSP_NODE_NAME", local.name.clone()),
        ],
        stdin: Bytes::from(stdin),
        timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_names_kinds_or_takes_every_kind_but_updated() {
        let h = EventHandler::parse("dead,left=/bin/page --now").expect("parse");
        assert_eq!(h.kinds, [EventKind::Dead, EventKind::Left]);
        assert_eq!(h.command, "/bin/page --now");
        let all = EventHandler::parse("logger -t gsp").expect("parse");
        assert_eq!(all.command, "logger -t gsp");
        assert!(!all.kinds.contains(&EventKind::Updated));
        assert_eq!(all.kinds.len(), EventKind::ALL.len() - 1);
        // A command with '=' further on is a command.
        let cmd = EventHandler::parse("echo a=b").expect("parse");
        assert_eq!(cmd.command, "echo a=b");
        let upd = EventHandler::parse("updated=true").expect("parse");
        assert_eq!(upd.kinds, [EventKind::Updated]);
    }

    #[test]
    fn a_bad_spec_names_the_problem() {
        let e = EventHandler::parse("dead,gone=x").expect_err("unknown kind");
        assert!(e.contains("'gone'") && e.contains("alive_again"), "{e}");
        let e = EventHandler::parse("foo=1 cmd").expect_err("variable-looking");
        assert!(e.contains("env foo=..."), "{e}");
        let e = EventHandler::parse("dead=  ").expect_err("no command");
        assert!(e.contains("no command"), "{e}");
    }
}
