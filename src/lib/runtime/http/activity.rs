//! The side port's view of what this node does: its jobs (`/api/jobs`) and
//! the broadcasts it sent (`/api/broadcasts`), for the web view and scripts.

use axum::{Json, extract::State, response::IntoResponse};
use serde::Serialize;

use crate::runtime::{
    broadcast::recent::{RECENT_BROADCASTS, RecentBroadcast},
    http::HttpState,
    view::rfc3339,
};

/// Jobs listed at most, newest first; `total` says how many the node keeps.
pub const MAX_LISTED_JOBS: usize = 100;

/// One job as `/api/jobs` lists it.
#[derive(Debug, Serialize)]
struct JobLine {
    job_id: String,
    name: String,
    /// The first step's command line.
    command: String,
    status: &'static str,
    /// Meaningful once the job ended.
    exit_code: i32,
    actor: String,
    created_at: String,
    /// Null while it runs.
    ended_at: Option<String>,
}

/// `gsp.http-jobs.v1`.
#[derive(Debug, Serialize)]
struct JobsPage {
    schema: &'static str,
    node_id: String,
    node_name: String,
    /// Whether this node runs jobs (`--exec`).
    exec: bool,
    jobs: Vec<JobLine>,
    /// Jobs the node keeps (the page lists the newest [`MAX_LISTED_JOBS`]).
    total: usize,
}

pub(super) async fn jobs(State(s): State<HttpState>) -> impl IntoResponse {
    let jobs = &s.sources.jobs;
    let all = jobs.list();
    let total = all.len();
    let lines = all
        .iter()
        .rev()
        .take(MAX_LISTED_JOBS)
        .map(|j| {
            let g = j.lock();
            let st = &g.state;
            JobLine {
                job_id: j.id.clone(),
                name: st.spec.name.clone(),
                command: st
                    .spec
                    .steps
                    .first()
                    .map(|step| step.argv.join(" "))
                    .unwrap_or_default(),
                status: st.status().as_str(),
                exit_code: st.exit_code(),
                actor: j.actor.clone(),
                created_at: rfc3339(st.created_unix_ns),
                ended_at: (st.ended_unix_ns != 0).then(|| rfc3339(st.ended_unix_ns)),
            }
        })
        .collect();
    let (node_id, node_name) = jobs.node().clone();
    Json(JobsPage {
        schema: "gsp.http-jobs.v1",
        node_id,
        node_name,
        exec: jobs.config().enabled,
        jobs: lines,
        total,
    })
}

/// One broadcast, with its send time as RFC 3339.
#[derive(Debug, Serialize)]
struct BroadcastLine {
    #[serde(flatten)]
    b: RecentBroadcast,
    sent_at: String,
}

/// `gsp.http-broadcasts.v1`.
#[derive(Debug, Serialize)]
struct BroadcastsPage {
    schema: &'static str,
    broadcasts: Vec<BroadcastLine>,
    /// How many the node keeps.
    capacity: usize,
}

pub(super) async fn broadcasts(State(s): State<HttpState>) -> impl IntoResponse {
    Json(BroadcastsPage {
        schema: "gsp.http-broadcasts.v1",
        broadcasts: s
            .sources
            .broadcast
            .recent()
            .into_iter()
            .map(|b| BroadcastLine {
                sent_at: rfc3339(b.sent_unix_ns),
                b,
            })
            .collect(),
        capacity: RECENT_BROADCASTS,
    })
}
