//! `gsp watch --messages`: broadcasts delivered on a node, as JSON Lines (the
//! payload base64-encoded) or, with `--raw`, the payload bytes themselves.

use base64::Engine as _;
use serde::Serialize;

use crate::cli::{GlobalArgs, client, exit::ExitStatus, output};
use crate::{core::ids::MessageId, runtime::view::rfc3339, transport::pb::admin::v1 as pb};

/// Schema of each `gsp watch --messages` line.
pub(super) const SCHEMA: &str = "gsp.message.v1";

#[derive(Serialize)]
struct MessageJson<'a> {
    schema: &'static str,
    message_id: String,
    origin: &'a str,
    origin_name: &'a str,
    topic: &'a str,
    size: usize,
    hops: u32,
    created: String,
    #[serde(serialize_with = "crate::runtime::view::int_string::serialize")]
    created_unix_ns: i64,
    payload: String,
    missed: u64,
}

fn line(m: &pb::DeliveredMessage) -> anyhow::Result<String> {
    let mut s = serde_json::to_string(&MessageJson {
        schema: SCHEMA,
        message_id: MessageId::from_slice(&m.message_id)
            .map(|id| id.to_string())
            .unwrap_or_default(),
        origin: &m.origin,
        origin_name: &m.origin_name,
        topic: &m.topic,
        size: m.payload.len(),
        hops: m.hops,
        created: rfc3339(m.created_unix_ns),
        created_unix_ns: m.created_unix_ns,
        payload: base64::engine::general_purpose::STANDARD.encode(&m.payload),
        missed: m.missed,
    })?;
    s.push('\n');
    Ok(s)
}

fn write_raw(payload: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(payload)?;
    out.flush()
}

/// Streams delivered messages until Ctrl-C (exit 130), `--timeout` (exit 0), or
/// the node going away (exit 3).
pub(crate) async fn run(
    topic: Option<String>,
    raw: bool,
    global: GlobalArgs,
) -> anyhow::Result<ExitStatus> {
    let mut client = client::admin(&global).await?;
    let stream = client
        .watch_messages(pb::WatchMessagesRequest {
            topic: topic.unwrap_or_default(),
        })
        .await
        .map_err(|s| client::call_failed(&global.addr, s))?
        .into_inner();
    crate::cli::watch::stream_until(&global, stream, |m| {
        if m.missed > 0 {
            output::stderr(&format!(
                "warning: {} messages were dropped because this watcher read too slowly\n",
                m.missed
            ));
        }
        if raw {
            write_raw(&m.payload)?;
        } else {
            output::stdout(&line(&m)?)?;
        }
        Ok(())
    })
    .await
}
