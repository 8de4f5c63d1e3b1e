//! `gsp audit`: who changed which node's maintenance state, when and why,
//! read over gRPC from the nodes' audit trails (each keeps its last 100
//! changes, persisted with its state): the node at `--addr`, the members
//! `--node` names, or every up member with `--all`, each asked through the
//! node at `--addr`; one list, newest first.

use std::{fmt::Write as _, time::Duration};

use serde::Serialize;

use super::{
    GlobalArgs, client,
    exit::{ExitStatus, UsageError},
    maint::{DEFAULT_MAINT_TIMEOUT, finish},
    output, parse,
    run::named_members,
};
use crate::{
    runtime::view::{int_string, rfc3339},
    transport::{membership::convert::maintenance_from_pb, pb::admin::v1 as pb},
};

/// Schema of `gsp audit --json`.
pub(super) const SCHEMA: &str = "gsp.audit.v1";

/// Arguments of `gsp audit`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "Examples:
  gsp audit                                   # the node at --addr
  gsp audit --all --since 24h                 # every up member, the last day
  gsp audit --node 'edge[1-4]' --json | jq -r '.entries[] | [.changed_at, .node_name, .actor] | @tsv'")]
pub(crate) struct AuditArgs {
    /// These members: an id, a name or a node set (`edge[1-5,9]`,
    /// `@role=gpu`); repeatable. Default: the node at --addr.
    #[arg(long, value_name = "NODES", conflicts_with = "all")]
    node: Vec<String>,
    /// Every up member.
    #[arg(long)]
    all: bool,
    /// Only changes this recent (seconds, or 30m, 24h, 7d).
    #[arg(long, value_name = "AGE", value_parser = parse::duration)]
    since: Option<Duration>,
    /// At most this many entries per node (each keeps 100).
    #[arg(long, default_value_t = 20, value_name = "N")]
    limit: u32,
}

/// One change.
#[derive(Debug, Serialize)]
struct EntryJson {
    node_id: String,
    node_name: String,
    previous_state: &'static str,
    state: &'static str,
    reason: String,
    actor: String,
    changed_at: String,
    #[serde(with = "int_string")]
    changed_unix_ns: i64,
}

/// `gsp.audit.v1`.
#[derive(Debug, Serialize)]
struct AuditJson {
    schema: &'static str,
    entries: Vec<EntryJson>,
    /// Per node answering: entries its trail dropped at its bound.
    dropped: Vec<DroppedJson>,
    unanswered: Vec<super::fanout::Unanswered>,
}

#[derive(Debug, Serialize)]
struct DroppedJson {
    node_id: String,
    node_name: String,
    dropped: u64,
}

fn state_name(v: i32) -> &'static str {
    maintenance_from_pb(v).unwrap_or_default().as_str()
}

/// `gsp audit`: exit 0; 1 when some of several nodes did not answer; 3 when
/// the node at `--addr` (or the only one asked) cannot be reached or refuses.
pub(crate) async fn run(args: AuditArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    if args.limit == 0 {
        return Err(UsageError("--limit must be at least 1".to_owned()).into());
    }
    let since_unix_ns = match args.since {
        Some(d) => {
            crate::clock::unix_ns().saturating_sub(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        }
        None => 0,
    };
    let timeout = global.timeout.unwrap_or(DEFAULT_MAINT_TIMEOUT);
    let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
    let admin = client::admin(&global).await?;
    // (id, name) of each node asked; an empty id is the node at --addr.
    let targets: Vec<(String, String)> = if args.all {
        super::maint::up_members(&global).await?
    } else if args.node.is_empty() {
        vec![(String::new(), global.addr.clone())]
    } else {
        named_members(&global, &args.node)
            .await?
            .into_iter()
            .map(|t| (t.id, t.name))
            .collect()
    };
    let single = targets.len() == 1;
    let results = super::fanout::each(targets, super::fanout::WINDOW, |(id, name)| {
        let (mut admin, global) = (admin.clone(), global.clone());
        let limit = args.limit;
        async move {
            let call = admin.get_audit(pb::GetAuditRequest {
                node_id: id.clone(),
                limit,
                since_unix_ns,
                timeout_ms,
            });
            let r = finish(&global, timeout, "gsp audit --node", call).await;
            (id, name, r)
        }
    })
    .await;
    let mut out = AuditJson {
        schema: SCHEMA,
        entries: Vec::new(),
        dropped: Vec::new(),
        unanswered: Vec::new(),
    };
    for (node_id, node_name, r) in results {
        match r {
            Ok(reply) => {
                if reply.dropped > 0 {
                    out.dropped.push(DroppedJson {
                        node_id: reply.node_id.clone(),
                        node_name: reply.node_name.clone(),
                        dropped: reply.dropped,
                    });
                }
                out.entries
                    .extend(reply.entries.into_iter().map(|e| EntryJson {
                        node_id: reply.node_id.clone(),
                        node_name: reply.node_name.clone(),
                        previous_state: state_name(e.previous_state),
                        state: state_name(e.state),
                        reason: e.reason,
                        actor: e.actor,
                        changed_at: rfc3339(e.changed_unix_ns),
                        changed_unix_ns: e.changed_unix_ns,
                    }));
            }
            // One node asked: its failure is the command's (exit 3 for a
            // refusal or an unreachable node).
            Err(e) if single => return Err(e),
            Err(e) => out.unanswered.push(super::fanout::Unanswered {
                node_id,
                node_name,
                error: format!("{e:#}"),
            }),
        }
    }
    out.entries
        .sort_by_key(|e| std::cmp::Reverse(e.changed_unix_ns));
    if global.json {
        output::json(&out)?;
    } else {
        output::stdout(&render(&out, &global))?;
    }
    Ok(super::fanout::status(&out.unanswered))
}

fn render(a: &AuditJson, global: &GlobalArgs) -> String {
    let mut text = String::new();
    if a.entries.is_empty() {
        text.push_str("no maintenance changes recorded\n");
    } else {
        let color = global.color.resolve();
        let mut t = super::style::table(false, color);
        t.set_header(vec!["WHEN", "NODE", "FROM", "TO", "REASON", "BY"]);
        for e in &a.entries {
            t.add_row(vec![
                comfy_table::Cell::new(&e.changed_at),
                comfy_table::Cell::new(&e.node_name),
                super::style::state(e.previous_state, color),
                super::style::state(e.state, color),
                comfy_table::Cell::new(&e.reason),
                comfy_table::Cell::new(&e.actor),
            ]);
        }
        let _ = writeln!(text, "{t}");
    }
    for d in &a.dropped {
        let _ = writeln!(
            text,
            "{}: {} older dropped at the trail's bound",
            d.node_name,
            output::count(d.dropped, "change")
        );
    }
    text.push_str(&super::fanout::unanswered_lines(&a.unanswered));
    text
}
