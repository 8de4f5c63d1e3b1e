//! `gsp peers`: the members a node knows, as a table or JSON.

use std::fmt::Write as _;

use anyhow::Context as _;
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde::Serialize;

use super::{GlobalArgs, client, exit::ExitStatus, output};
use crate::{
    core::membership::{MemberView, record::MemberState},
    runtime::view::{NodeJson, now_unix_ns, sorted},
    transport::{
        membership::convert::{RecordLimits, record_from_pb},
        pb::admin::v1 as pb,
    },
};

/// Schema of `gsp peers --json`.
pub const SCHEMA: &str = "gsp.peers.v1";

/// Arguments of `gsp peers`.
#[derive(Debug, clap::Args)]
pub(crate) struct PeersArgs {
    /// Only members in this state (repeatable): alive, suspect, dead, left.
    #[arg(long, value_parser = ["alive", "suspect", "dead", "left"])]
    state: Vec<String>,
    /// Only members with this label (repeatable; all must match).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_label)]
    label: Vec<(String, String)>,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("'{s}' is not KEY=VALUE")),
    }
}

#[derive(Serialize)]
struct PeersJson {
    schema: &'static str,
    nodes: Vec<NodeJson>,
    total: usize,
}

/// Members of a `ListMembers` answer as views.
fn views(resp: pb::ListMembersResponse) -> anyhow::Result<Vec<MemberView>> {
    let limits = RecordLimits::default();
    resp.members
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let info = m
                .info
                .with_context(|| format!("member {i} has no record"))?;
            let last_seen = info.last_seen;
            let record = record_from_pb(info, &format!("members[{i}]"), &limits, now_unix_ns())?;
            Ok(MemberView {
                record,
                local: m.local,
                last_seen_unix_ns: last_seen,
                in_state_for: std::time::Duration::from_millis(m.in_state_ms),
            })
        })
        .collect()
}

pub(crate) async fn run(args: PeersArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    let mut client = client::admin(&global).await?;
    let mut req = tonic::Request::new(pb::ListMembersRequest {});
    req.set_timeout(client::timeout(&global));
    let resp = client
        .list_members(req)
        .await
        .map_err(|s| client::call_failed(&global.addr, s))?
        .into_inner();
    let members: Vec<MemberView> = sorted(views(resp)?)
        .into_iter()
        .filter(|m| {
            args.state.is_empty()
                || args
                    .state
                    .iter()
                    .any(|s| MemberState::parse(s) == Some(m.record.state))
        })
        .filter(|m| {
            args.label
                .iter()
                .all(|(k, v)| m.record.labels.get(k) == Some(v))
        })
        .collect();
    if global.json {
        let nodes: Vec<NodeJson> = members.iter().map(NodeJson::from_view).collect();
        output::json(&PeersJson {
            schema: SCHEMA,
            total: nodes.len(),
            nodes,
        })?;
    } else {
        output::stdout(&render(&members))?;
    }
    Ok(ExitStatus::Success)
}

fn ago(unix_ns: i64) -> String {
    let secs = (now_unix_ns() - unix_ns).max(0) / 1_000_000_000;
    match secs {
        0 => "now".to_owned(),
        s if s < 120 => format!("{s}s ago"),
        s if s < 7200 => format!("{}m ago", s / 60),
        s => format!("{}h ago", s / 3600),
    }
}

fn render(members: &[MemberView]) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY);
    t.set_header(vec![
        "", "NAME", "ADDRESS", "STATE", "FOR", "SEEN", "CPU FREE", "MEM FREE", "GPU FREE", "MAINT",
        "LABELS", "NODE ID",
    ]);
    for m in members {
        let r = &m.record;
        let (cpu, mem, gpu) = r.capacity.map_or_else(
            || ("-".to_owned(), "-".to_owned(), "-".to_owned()),
            |c| {
                (
                    format!("{}/{}m", c.available.cpu_millis, c.total.cpu_millis),
                    format!(
                        "{}/{}",
                        crate::core::units::HumanBytes(
                            u64::try_from(c.available.memory_bytes).unwrap_or(0)
                        ),
                        crate::core::units::HumanBytes(
                            u64::try_from(c.total.memory_bytes).unwrap_or(0)
                        )
                    ),
                    format!("{}/{}", c.available.gpus, c.total.gpus),
                )
            },
        );
        let labels = r
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        t.add_row(vec![
            if m.local {
                "*".to_owned()
            } else {
                String::new()
            },
            r.name.clone(),
            r.address.clone(),
            r.state.as_str().to_owned(),
            format!("{}s", m.in_state_for.as_secs()),
            if m.local {
                "-".to_owned()
            } else {
                ago(m.last_seen_unix_ns)
            },
            cpu,
            mem,
            gpu,
            r.maintenance.as_str().to_owned(),
            labels,
            r.id.to_string(),
        ]);
    }
    let mut out = t.to_string();
    let up = members.iter().filter(|m| m.record.state.is_up()).count();
    let _ = writeln!(
        out,
        "\n{} members, {up} up (* = the node answering)",
        members.len()
    );
    out
}
