//! The HTTP side port: iarnet's node list for dashboards, Prometheus metrics,
//! and a health check.

pub mod maint;

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::metrics::Sources;
use super::{
    membership::now,
    metrics,
    view::{NodeJson, sorted},
};
use crate::core::resources::aggregate::aggregate;

/// What the handlers read.
#[derive(Clone)]
pub(super) struct HttpState {
    pub(super) sources: Sources,
    shutdown: CancellationToken,
}

/// iarnet's response wrapper.
#[derive(Serialize)]
struct Wrapped<T> {
    code: u16,
    message: &'static str,
    data: T,
}

#[derive(Serialize)]
struct NodesData {
    nodes: Vec<NodeJson>,
    total: usize,
}

async fn nodes(State(s): State<HttpState>) -> impl IntoResponse {
    let now = now();
    let members = sorted(s.sources.agent.with_state(|st| st.members(now)));
    let nodes: Vec<NodeJson> = members.iter().map(NodeJson::from_view).collect();
    Json(Wrapped {
        code: 200,
        message: "success",
        data: NodesData {
            total: nodes.len(),
            nodes,
        },
    })
}

async fn summary(State(s): State<HttpState>) -> impl IntoResponse {
    let records = s.sources.agent.with_state(|st| st.all_records());
    Json(Wrapped {
        code: 200,
        message: "success",
        data: aggregate(records.iter().map(|r| &**r)),
    })
}

async fn metrics_text(State(s): State<HttpState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics::render(&s.sources),
    )
}

async fn healthz(State(s): State<HttpState>) -> impl IntoResponse {
    if s.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else {
        (StatusCode::OK, "ok\n")
    }
}

/// Readiness for work: 503 while the node is in maintenance, disabled,
/// shutting down (load balancers drain it) or cannot write its data dir (it
/// could not record jobs); `/healthz` stays liveness.
async fn readyz(State(s): State<HttpState>) -> impl IntoResponse {
    let state = s.sources.maintenance.status().state;
    if s.shutdown.is_cancelled() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down\n".to_owned(),
        )
    } else if state != crate::core::maintenance::Maintenance::Normal {
        (StatusCode::SERVICE_UNAVAILABLE, format!("{state}\n"))
    } else if let Some(why) = s.sources.data_dir.failure() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("data dir not writable: {why}\n"),
        )
    } else {
        (StatusCode::OK, "ok\n".to_owned())
    }
}

/// Serves the side port on `listener` until `shutdown` fires.
///
/// # Errors
/// The listener fails.
pub async fn serve(
    listener: TcpListener,
    sources: Sources,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let state = HttpState {
        sources,
        shutdown: shutdown.clone(),
    };
    let app = Router::new()
        .route("/api/resource/discovery/nodes", get(nodes))
        .route("/api/resource/discovery/summary", get(summary))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/maintenance", get(super::http::maint::current))
        .route("/api/maintenance/audit", get(super::http::maint::audit))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
