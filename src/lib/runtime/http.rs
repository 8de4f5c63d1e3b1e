//! The HTTP side port: the web view at `/`, iarnet's node list for
//! dashboards, this node's jobs and broadcasts, Prometheus metrics, and
//! health checks. With `--require-token-for-reads` everything but the page
//! itself and the health checks needs `authorization: Bearer TOKEN`.

pub mod activity;
pub mod maint;
pub mod page;

use std::net::SocketAddr;

use axum::{
    Json, Router,
    extract::{ConnectInfo, Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
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

/// Lets a read through unless reads need the token and it is missing or
/// wrong: then 401 with a `gsp.error.v1` object.
async fn reads_allowed(
    State(s): State<HttpState>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match s.sources.auth.check_http_read(header, Some(from)) {
        Ok(()) => next.run(request).await,
        Err(why) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(serde_json::json!({
                "schema": "gsp.error.v1",
                "code": "unauthenticated",
                "message": why,
            })),
        )
            .into_response(),
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
    let reads = Router::new()
        .route("/api/resource/discovery/nodes", get(nodes))
        .route("/api/resource/discovery/summary", get(summary))
        .route("/api/jobs", get(activity::jobs))
        .route("/api/broadcasts", get(activity::broadcasts))
        .route("/metrics", get(metrics_text))
        .route("/api/maintenance", get(maint::current))
        .route("/api/maintenance/audit", get(maint::audit))
        .route_layer(middleware::from_fn_with_state(state.clone(), reads_allowed));
    let app = Router::new()
        .route("/", get(page::index))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(reads)
        .with_state(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
}
