//! `gsp force-leave NODE`: Serf's force-leave. The node at `--addr` marks a
//! member that is gone left (with `--prune`, removes it) and asks every
//! member up there to do the same now, instead of waiting for the node TTL.

use std::{fmt::Write as _, time::Duration};

use serde::Serialize;

use super::{
    GlobalArgs, client,
    exit::{ExitStatus, NegativeOutcome, Unreachable, UsageError},
    output,
};
use crate::transport::pb::admin::v1 as pb;

/// Default time the other members get to confirm.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Arguments of `gsp force-leave`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "Examples:
  gsp force-leave edge-9                # a dead member: left everywhere now
  gsp force-leave edge-9 --prune        # and gone from every member list now
  gsp force-leave 0193c5e2-... --json   # by id; one gsp.force-leave.v1 object
  gsp force-leave 'edge[3-5]'           # a node set: each in turn, gsp.force-leave.list.v1 with --json

Exit status: 0 when every member up on the node at --addr confirmed; 1 when the
member is up there (nothing changed; --force insists) or some members did not
confirm (listed; gossip still carries the left state to them, a prune only what
was asked); 2 for this node or an ambiguous name; 3 for an unknown member, a
refused token or an unreachable node.")]
pub(crate) struct ForceLeaveArgs {
    /// The member: id, or a name only one member has; or a node set
    /// (`edge[3-5]`, `@rack=r12`), each member forced in turn.
    #[arg(value_name = "NODES")]
    node: String,
    /// Also remove it from every member list now (a tombstone keeps stale
    /// gossip from bringing it back; a restarted node can rejoin).
    #[arg(long)]
    prune: bool,
    /// Also for a member believed up: a running member refutes the claim and
    /// stays, so this only helps with one that is gone but not yet detected.
    #[arg(long)]
    force: bool,
}

/// `gsp.force-leave.v1`.
#[derive(Debug, Serialize)]
struct Printed {
    schema: &'static str,
    node_id: String,
    node_name: String,
    previous_state: String,
    /// left, or removed (prune).
    state: &'static str,
    /// Members asked, and what each did.
    members: Vec<MemberOutcome>,
    /// How many applied it or already had it.
    confirmed: usize,
}

#[derive(Debug, Serialize)]
struct MemberOutcome {
    node_id: String,
    node_name: String,
    outcome: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    error: String,
}

/// `gsp force-leave NODES --json` for a node set: one outcome per member.
#[derive(Debug, Serialize)]
struct ListJson {
    schema: &'static str,
    results: Vec<Printed>,
    /// Members it could not be done for, with why and the exit status that
    /// failure alone would have given.
    failed: Vec<FailedJson>,
}

#[derive(Debug, Serialize)]
struct FailedJson {
    node: String,
    error: String,
    exit_code: u8,
}

pub(crate) async fn run(args: ForceLeaveArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    if super::nodeset::one_name(std::slice::from_ref(&args.node)) {
        let (printed, status) = one(&args, &global, &args.node).await?;
        if global.json {
            output::json(&printed)?;
        } else {
            output::stdout(&render(&printed))?;
        }
        return Ok(status);
    }
    // A node set: the names it spells, and the members (up or not) with the
    // labels it names; each forced to leave in turn.
    let patterns =
        super::nodeset::expand(&args.node).map_err(|e| UsageError(format!("NODE: {e}")))?;
    let mut names = Vec::new();
    let mut views = None;
    for p in &patterns {
        match p {
            super::nodeset::Pattern::Name(n) => names.push(n.clone()),
            super::nodeset::Pattern::Label(..) => {
                if views.is_none() {
                    views = Some(super::run::place::members(&global).await?);
                }
                names.extend(
                    views
                        .iter()
                        .flatten()
                        .filter(|v| {
                            !v.local
                                && p.matches(v.record.id.as_str(), &v.record.name, &v.record.labels)
                        })
                        .map(|v| v.record.id.to_string()),
                );
            }
        }
    }
    // Each member once, in the order named (`a,b,a` or a name that a label
    // also matches would otherwise be forced twice).
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    let mut list = ListJson {
        schema: "gsp.force-leave.list.v1",
        results: Vec::new(),
        failed: Vec::new(),
    };
    let mut worst = ExitStatus::Success;
    for name in names {
        match one(&args, &global, &name).await {
            Ok((printed, status)) => {
                if status.code() > worst.code() {
                    worst = status;
                }
                list.results.push(printed);
            }
            Err(e) => {
                let status = super::exit::status_for(&e);
                if status.code() > worst.code() {
                    worst = status;
                }
                list.failed.push(FailedJson {
                    node: name,
                    error: format!("{e:#}"),
                    exit_code: status.code(),
                });
            }
        }
    }
    if global.json {
        output::json(&list)?;
    } else {
        let mut text: String = list.results.iter().map(render).collect();
        for f in &list.failed {
            let _ = writeln!(text, "{}: {}", f.node, f.error);
        }
        output::stdout(&text)?;
    }
    Ok(worst)
}

/// Forces `node` to leave: what to print, and the exit status it gives.
async fn one(
    args: &ForceLeaveArgs,
    global: &GlobalArgs,
    node: &str,
) -> anyhow::Result<(Printed, ExitStatus)> {
    let timeout = global.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let req = pb::ForceLeaveRequest {
        node: node.to_owned(),
        prune: args.prune,
        force: args.force,
        timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
    };
    let mut admin = client::admin(global).await?;
    // The node waits `timeout` for the members; its answer needs a moment more.
    let slack = Duration::from_millis(500);
    let reply = match tokio::time::timeout(timeout + slack, admin.force_leave(req)).await {
        Err(_) => {
            return Err(NegativeOutcome(format!(
                "node at {} did not answer within {timeout:?} (the member may be marked left \
                 anyway; check with `gsp peers --state left`)",
                global.addr
            ))
            .into());
        }
        Ok(Ok(r)) => r.into_inner(),
        Ok(Err(s)) => {
            let msg = s.message().to_owned();
            return Err(match s.code() {
                tonic::Code::InvalidArgument => UsageError(msg).into(),
                tonic::Code::FailedPrecondition => {
                    NegativeOutcome(format!("nothing changed: {msg}")).into()
                }
                tonic::Code::NotFound => Unreachable(msg).into(),
                _ => client::call_failed(&global.addr, s),
            });
        }
    };
    let confirmed = reply
        .members
        .iter()
        .filter(|m| m.outcome == "applied" || m.outcome == "unchanged")
        .count();
    let printed = Printed {
        schema: "gsp.force-leave.v1",
        node_id: reply.node_id,
        node_name: reply.node_name,
        previous_state: reply.previous_state,
        state: if reply.removed { "removed" } else { "left" },
        members: reply
            .members
            .into_iter()
            .map(|m| MemberOutcome {
                node_id: m.node_id,
                node_name: m.node_name,
                outcome: m.outcome,
                error: m.error,
            })
            .collect(),
        confirmed,
    };
    let missing = printed.members.len() - confirmed;
    if missing > 0 {
        let then = if args.prune {
            "they list it until their node TTL"
        } else {
            "gossip still carries the left state to them"
        };
        output::note(&format!(
            "{missing} of {} did not confirm; {then}",
            output::count(printed.members.len() as u64, "member")
        ));
        return Ok((printed, ExitStatus::Negative));
    }
    Ok((printed, ExitStatus::Success))
}

fn render(p: &Printed) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({}): {} -> {} here; {}/{} other members confirmed",
        p.node_name,
        p.node_id,
        p.previous_state,
        p.state,
        p.confirmed,
        p.members.len()
    );
    for m in &p.members {
        let err = if m.error.is_empty() {
            String::new()
        } else {
            format!(": {}", m.error)
        };
        let _ = writeln!(out, "  {:<20} {}{err}", m.node_name, m.outcome);
    }
    out
}
