//! The node's maintenance state at run time: applies a change to the gossiped
//! record (so the cluster stops sending the node work), the broadcast engine
//! (disabled refuses payloads), gRPC health (NOT_SERVING unless normal) and the
//! state file; keeps the audit trail and streams audit events.

pub mod store;

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;
use tonic_health::{ServingStatus, server::HealthReporter};
use tracing::info;

use self::store::{Store, StoreError};
use super::{
    broadcast::BroadcastEngine,
    membership::{MembershipAgent, now},
};
use crate::core::maintenance::{
    self, ChangeError, ChangeRequest, MaintStatus, Maintenance, Transition,
    audit::{AuditEntry, AuditLog, DEFAULT_AUDIT_CAPACITY},
};

/// Audit events buffered per watcher; a slower watcher is told how many it missed.
const AUDIT_EVENTS_QUEUE: usize = 64;

/// A change that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MaintError {
    /// The request was invalid.
    #[error(transparent)]
    Invalid(#[from] ChangeError),
    /// The state could not be persisted; nothing changed.
    #[error("state not changed: {0}")]
    Persist(#[from] StoreError),
}

struct State {
    status: MaintStatus,
    audit: AuditLog,
}

/// The maintenance state of the running node. Cheap to clone.
#[derive(Clone)]
pub struct MaintenanceControl {
    state: Arc<Mutex<State>>,
    /// Serializes changes end to end, so effects apply in the order of changes.
    changing: Arc<tokio::sync::Mutex<()>>,
    store: Option<Store>,
    agent: MembershipAgent,
    engine: BroadcastEngine,
    health: HealthReporter,
    events: broadcast::Sender<AuditEntry>,
}

impl std::fmt::Debug for MaintenanceControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaintenanceControl")
            .field("status", &self.status())
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Reads the persisted state (normal without a data directory) and its audit
/// trail, before the node starts, so the node's first record carries it.
///
/// # Errors
/// The state file exists but cannot be read.
pub fn load(store: Option<&Store>) -> Result<(MaintStatus, AuditLog), StoreError> {
    let mut audit = AuditLog::new(DEFAULT_AUDIT_CAPACITY);
    let status = match store {
        Some(s) => s.load(&mut audit)?,
        None => MaintStatus::default(),
    };
    Ok((status, audit))
}

impl MaintenanceControl {
    /// Takes over `status` (already in the agent's record) and applies it to the
    /// engine and health.
    pub async fn start(
        loaded: (MaintStatus, AuditLog),
        store: Option<Store>,
        agent: MembershipAgent,
        engine: BroadcastEngine,
        health: HealthReporter,
    ) -> Self {
        let (status, audit) = loaded;
        let (events, _) = broadcast::channel(AUDIT_EVENTS_QUEUE);
        let this = Self {
            state: Arc::new(Mutex::new(State { status, audit })),
            changing: Arc::new(tokio::sync::Mutex::new(())),
            store,
            agent,
            engine,
            health,
            events,
        };
        let s = this.status();
        if s.state != Maintenance::Normal {
            info!(state = s.state.as_str(), reason = %s.reason, actor = %s.actor, "restored maintenance state");
        }
        this.apply_effects(s.state).await;
        this
    }

    /// The current state.
    pub fn status(&self) -> MaintStatus {
        self.lock().status.clone()
    }

    /// The current state and the one before the last change (the current one
    /// for a node never changed, or whose trail lost that change).
    pub fn status_and_previous(&self) -> (MaintStatus, Maintenance) {
        let s = self.lock();
        let previous = s
            .audit
            .newest(1)
            .first()
            .filter(|e| e.state == s.status.state)
            .map_or(s.status.state, |e| e.previous_state);
        (s.status.clone(), previous)
    }

    /// The newest `n` audit entries, newest first, and how many were dropped at
    /// the log's bound since the node started.
    pub fn audit(&self, n: usize) -> (Vec<AuditEntry>, u64) {
        let s = self.lock();
        (s.audit.newest(n), s.audit.dropped())
    }

    /// Audit events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<AuditEntry> {
        self.events.subscribe()
    }

    /// Changes the state: persisted first (a change that cannot be saved is not
    /// made), then gossiped with a version bump, applied and audited. Setting
    /// the current state again succeeds and changes nothing.
    ///
    /// # Errors
    /// The request is invalid or the state file cannot be written.
    pub async fn set(&self, req: ChangeRequest) -> Result<Transition, MaintError> {
        let _serial = self.changing.lock().await;
        let (t, entry) = {
            let mut s = self.lock();
            let t = maintenance::apply(&s.status, req, now().unix_ns)?;
            if !t.changed {
                return Ok(t);
            }
            let entry = AuditEntry::new(self.agent.local_id().as_str(), &t);
            let mut audit = s.audit.clone();
            audit.push(entry.clone());
            if let Some(store) = &self.store {
                store.save(&t.status, &audit)?;
            }
            s.status = t.status.clone();
            s.audit = audit;
            (t, entry)
        };
        let state = t.status.state;
        self.agent.with_state(|m| {
            m.update_local(now(), |r| r.maintenance = state);
        });
        self.apply_effects(state).await;
        info!(
            target: "audit",
            node_id = %entry.node_id,
            previous_state = entry.previous_state.as_str(),
            state = entry.state.as_str(),
            reason = %entry.reason,
            actor = %entry.actor,
            "maintenance state changed"
        );
        // No watcher is fine.
        let _ = self.events.send(entry);
        Ok(t)
    }

    async fn apply_effects(&self, state: Maintenance) {
        if state == Maintenance::Disabled {
            self.engine
                .disable("the node is disabled (gsp maint set normal to enable it)");
        } else {
            self.engine.enable();
        }
        let serving = if state == Maintenance::Normal {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.health.set_service_status("", serving).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
