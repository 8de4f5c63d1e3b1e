//! `gsp watch`: membership events as they happen, as lines or JSON Lines; with
//! `--messages`, delivered broadcasts (see `messages`).

mod messages;

use std::fmt::Write as _;

use serde::Serialize;
use tokio_stream::StreamExt as _;

use super::{GlobalArgs, client, exit::ExitStatus, output};
use crate::{runtime::view::rfc3339, transport::pb::admin::v1 as pb};

/// Schema of each `gsp watch --json` line.
pub const SCHEMA: &str = "gsp.event.v1";

/// Arguments of `gsp watch`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "Examples:
  gsp watch                                   # membership events as lines, until Ctrl-C
  gsp watch --json | jq -c 'select(.kind == \"dead\")'
  gsp watch --messages --topic deploy         # delivered broadcasts as JSON Lines
  gsp watch --messages --raw > payloads.bin   # payload bytes only")]
pub(crate) struct WatchArgs {
    /// Stream delivered broadcasts instead of membership events: one JSON line
    /// each (schema gsp.message.v1, payload base64), whatever --json says.
    #[arg(long)]
    messages: bool,
    /// Only broadcasts on this topic.
    #[arg(long, requires = "messages", value_name = "NAME")]
    topic: Option<String>,
    /// Write each payload's bytes to stdout as they are, nothing else.
    #[arg(long, requires = "messages")]
    raw: bool,
}

#[derive(Serialize)]
struct EventJson<'a> {
    schema: &'static str,
    kind: &'a str,
    node_id: &'a str,
    node_name: &'a str,
    address: &'a str,
    state: &'a str,
    #[serde(serialize_with = "crate::runtime::view::int_string::serialize")]
    incarnation: u64,
    version: u64,
    time: String,
    #[serde(serialize_with = "crate::runtime::view::int_string::serialize")]
    time_unix_ns: i64,
    missed: u64,
    /// normal, maintenance, disabled (empty for `lagged`).
    maintenance: &'a str,
    /// For this node's own maintenance changes: the state before, why, who.
    #[serde(skip_serializing_if = "str::is_empty")]
    previous_maintenance: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    actor: &'a str,
}

fn line(e: &pb::Event, json: bool) -> anyhow::Result<String> {
    if json {
        let mut s = serde_json::to_string(&EventJson {
            schema: SCHEMA,
            kind: &e.kind,
            node_id: &e.node_id,
            node_name: &e.node_name,
            address: &e.address,
            state: &e.state,
            incarnation: e.incarnation,
            version: e.version,
            time: rfc3339(e.time_unix_ns),
            time_unix_ns: e.time_unix_ns,
            missed: e.missed,
            maintenance: &e.maintenance,
            previous_maintenance: &e.previous_maintenance,
            reason: &e.reason,
            actor: &e.actor,
        })?;
        s.push('\n');
        return Ok(s);
    }
    if e.kind == "lagged" {
        return Ok(format!(
            "{} lagged: {} events were dropped\n",
            rfc3339(e.time_unix_ns),
            e.missed
        ));
    }
    let mut out = format!(
        "{} {:<11} {} ({}) {} {}",
        rfc3339(e.time_unix_ns),
        e.kind,
        e.node_name,
        e.node_id,
        e.address,
        e.state
    );
    if e.kind == "maintenance" {
        if e.previous_maintenance.is_empty() {
            let _ = write!(out, " -> {}", e.maintenance);
        } else {
            let _ = write!(
                out,
                " {} -> {} by {}",
                e.previous_maintenance, e.maintenance, e.actor
            );
        }
        if !e.reason.is_empty() {
            let _ = write!(out, " ({})", e.reason);
        }
    }
    out.push('\n');
    Ok(out)
}

/// Streams events until Ctrl-C (exit 130), `--timeout` (exit 0), or the node
/// going away (exit 3).
pub(crate) async fn run(args: WatchArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    if args.messages {
        return messages::run(args.topic, args.raw, global).await;
    }
    let mut client = client::admin(&global).await?;
    let stream = client
        .watch(pb::WatchRequest {})
        .await
        .map_err(|s| client::call_failed(&global.addr, s))?
        .into_inner();
    stream_until(&global, stream, |e| {
        output::stdout(&line(&e, global.json)?).map_err(Into::into)
    })
    .await
}

/// Hands each item of `stream` to `each` until Ctrl-C (exit 130), `--timeout`
/// (exit 0), or the node going away (exit 3).
pub(super) async fn stream_until<T>(
    global: &GlobalArgs,
    mut stream: tonic::Streaming<T>,
    mut each: impl FnMut(T) -> anyhow::Result<()>,
) -> anyhow::Result<ExitStatus> {
    let deadline = async {
        match global.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(ExitStatus::Interrupted),
            () = &mut deadline => return Ok(ExitStatus::Success),
            item = stream.next() => match item {
                Some(Ok(item)) => each(item)?,
                Some(Err(status)) => return Err(client::stream_broken(&global.addr, &status)),
                None => return Err(client::stream_broken(
                    &global.addr,
                    &tonic::Status::unavailable("the stream ended"),
                )),
            },
        }
    }
}
