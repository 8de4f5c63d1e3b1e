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
  gsp watch --snapshot --json                 # every member now (kind \"member\"), then the events
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
    /// First every member the node lists now, one line each of kind
    /// `member` (state as listed), then the events from then on: nothing
    /// between the two is lost.
    #[arg(long, conflicts_with = "messages")]
    snapshot: bool,
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
    // The stream first: events that happen while the snapshot is read wait
    // in it.
    let stream = client
        .watch(pb::WatchRequest {})
        .await
        .map_err(|s| client::call_failed(&global.addr, s))?
        .into_inner();
    if args.snapshot {
        let mut req = tonic::Request::new(pb::ListMembersRequest::default());
        req.set_timeout(client::timeout(&global));
        let members = client
            .list_members(req)
            .await
            .map_err(|s| client::call_failed(&global.addr, s))?
            .into_inner();
        let now = crate::clock::unix_ns();
        let mut text = String::new();
        for v in super::peers::views(members)? {
            let r = &v.record;
            text.push_str(&line(
                &pb::Event {
                    kind: "member".to_owned(),
                    node_id: r.id.to_string(),
                    node_name: r.name.clone(),
                    address: r.address.clone(),
                    state: r.state.as_str().to_owned(),
                    incarnation: r.version.incarnation,
                    version: r.version.counter,
                    time_unix_ns: now,
                    maintenance: r.maintenance.as_str().to_owned(),
                    ..pb::Event::default()
                },
                global.json,
            )?);
        }
        output::stdout(&text)?;
    }
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
