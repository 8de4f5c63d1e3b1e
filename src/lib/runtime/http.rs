//! The HTTP side port: iarnet's node list for dashboards, Prometheus metrics,
//! and a health check.

use std::sync::Arc;

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

use super::{
    membership::{MembershipAgent, now},
    metrics,
    view::{NodeJson, sorted},
};
use crate::transport::{data_plane::stats::DataPlaneStats, traffic::Traffic};

/// What the handlers read.
#[derive(Clone)]
struct HttpState {
    agent: MembershipAgent,
    data_plane: Arc<DataPlaneStats>,
    traffic: Arc<Traffic>,
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
    let members = sorted(s.agent.with_state(|st| st.members(now)));
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

async fn metrics_text(State(s): State<HttpState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::render(&s.agent, &s.data_plane, &s.traffic),
    )
}

async fn healthz(State(s): State<HttpState>) -> impl IntoResponse {
    if s.shutdown.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else {
        (StatusCode::OK, "ok\n")
    }
}

/// Serves the side port on `listener` until `shutdown` fires.
///
/// # Errors
/// The listener fails.
pub async fn serve(
    listener: TcpListener,
    agent: MembershipAgent,
    data_plane: Arc<DataPlaneStats>,
    traffic: Arc<Traffic>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let state = HttpState {
        agent,
        data_plane,
        traffic,
        shutdown: shutdown.clone(),
    };
    let app = Router::new()
        .route("/api/resource/discovery/nodes", get(nodes))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
