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

Exit status: 0 when every member up on the node at --addr confirmed; 1 when the
member is up there (nothing changed; --force insists) or some members did not
confirm (listed; gossip still carries the left state to them, a prune only what
was asked); 2 for this node or an ambiguous name; 3 for an unknown member, a
refused token or an unreachable node.")]
pub(crate) struct ForceLeaveArgs {
    /// The member: id, or a name only one member has.
    #[arg(value_name = "ID|NAME")]
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

pub(crate) async fn run(args: ForceLeaveArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    let timeout = global.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let req = pb::ForceLeaveRequest {
        node: args.node.clone(),
        prune: args.prune,
        force: args.force,
        timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
    };
    let mut admin = client::admin(&global).await?;
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
    if global.json {
        output::json(&printed)?;
    } else {
        output::stdout(&render(&printed))?;
    }
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
        return Ok(ExitStatus::Negative);
    }
    Ok(ExitStatus::Success)
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
