//! The side port's maintenance endpoints: the current state, and the audit
//! trail of the last changes (newest first).

use axum::{
    Json,
    extract::{Query, State},
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};

use crate::core::maintenance::audit::{AuditEntry, DEFAULT_AUDIT_CAPACITY};
use crate::runtime::{http::HttpState, view::rfc3339};

/// `gsp.maint.v1`, as `gsp maint status --json` prints it.
#[derive(Debug, Serialize)]
pub struct MaintJson {
    /// Always "gsp.maint.v1".
    pub schema: &'static str,
    /// The node.
    pub node_id: String,
    /// Its name.
    pub node_name: String,
    /// normal, maintenance, disabled.
    pub state: &'static str,
    /// The state before the last change.
    pub previous_state: &'static str,
    /// Why.
    pub reason: String,
    /// Who.
    pub actor: String,
    /// When, RFC 3339; null if never changed.
    pub changed_at: Option<String>,
}

/// One audit entry on the wire.
#[derive(Debug, Serialize)]
struct AuditJson {
    node_id: String,
    node_name: String,
    previous_state: &'static str,
    state: &'static str,
    reason: String,
    actor: String,
    changed_at: String,
}

impl AuditJson {
    /// `e`, about the node named `node_name` (the trail's own node).
    fn of(e: &AuditEntry, node_name: &str) -> Self {
        Self {
            node_id: e.node_id.clone(),
            node_name: node_name.to_owned(),
            previous_state: e.previous_state.as_str(),
            state: e.state.as_str(),
            reason: e.reason.clone(),
            actor: e.actor.clone(),
            changed_at: rfc3339(e.changed_unix_ns),
        }
    }
}

#[derive(Debug, Serialize)]
struct AuditPage {
    schema: &'static str,
    entries: Vec<AuditJson>,
    /// Entries dropped at the trail's bound since the node started.
    dropped: u64,
    capacity: usize,
}

#[derive(Debug, Deserialize)]
pub(super) struct AuditParams {
    limit: Option<usize>,
}

pub(super) async fn current(State(s): State<HttpState>) -> impl IntoResponse {
    let (status, previous) = s.sources.maintenance.status_and_previous();
    let local = s.sources.agent.with_state(|m| m.local().clone());
    Json(MaintJson {
        schema: "gsp.maint.v1",
        node_id: local.id.to_string(),
        node_name: local.name.clone(),
        state: status.state.as_str(),
        previous_state: previous.as_str(),
        reason: status.reason,
        actor: status.actor,
        changed_at: (status.changed_unix_ns != 0).then(|| rfc3339(status.changed_unix_ns)),
    })
}

pub(super) async fn audit(
    State(s): State<HttpState>,
    Query(p): Query<AuditParams>,
) -> impl IntoResponse {
    let limit = p.limit.unwrap_or(20).min(DEFAULT_AUDIT_CAPACITY);
    let (entries, dropped) = s.sources.maintenance.audit(limit);
    let name = s.sources.agent.with_state(|m| m.local().name.clone());
    Json(AuditPage {
        schema: "gsp.maint-audit.v1",
        entries: entries.iter().map(|e| AuditJson::of(e, &name)).collect(),
        dropped,
        capacity: DEFAULT_AUDIT_CAPACITY,
    })
}
