//! `gsp maint`: shows or changes a node's maintenance state (normal,
//! maintenance, disabled): the node at `--addr`, or with `--node` another
//! member, routed through it.

use std::{fmt::Write as _, time::Duration};

use serde::Serialize;

use super::{
    GlobalArgs, client,
    exit::{ExitStatus, NegativeOutcome, Unreachable, UsageError},
    output,
};
use crate::{
    core::maintenance::{MAX_REASON_BYTES, Maintenance},
    runtime::{admin::maint::ROUTED_REFUSAL, http::maint::MaintJson, view::rfc3339},
    transport::{
        membership::convert::{maintenance_from_pb, maintenance_to_pb},
        pb::admin::v1 as pb,
    },
};

/// Default time to wait for the target's confirmation.
pub(super) const DEFAULT_MAINT_TIMEOUT: Duration = Duration::from_secs(10);

/// Arguments of `gsp maint`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "Examples:
  gsp maint status
  gsp maint status --all                             # every up member, one row each
  gsp maint set maintenance --reason 'kernel 6.12'   # drain the node at --addr
  gsp maint set disabled --node edge-9 --json        # routed to edge-9
  gsp maint set normal --node edge-9")]
pub(crate) struct MaintArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Show the state, why, who set it and when.
    Status(StatusArgs),
    /// Change the state; setting the current one again succeeds and changes
    /// nothing. Needs the admin token when the node has one.
    Set(SetArgs),
}

/// Where a request goes.
type Target = super::nodeset::RoutedNodes;

#[derive(Debug, clap::Args)]
struct StatusArgs {
    #[command(flatten)]
    target: Target,
    /// Every up member (each asked through the node at --addr), one row
    /// each; exit 1 if any did not answer.
    #[arg(long, conflicts_with = "node")]
    all: bool,
}

/// What `gsp maint status --all --json` prints.
#[derive(Debug, Serialize)]
struct ListJson {
    schema: &'static str,
    /// `gsp.maint.v1` objects (with `changed` after a `set`).
    members: Vec<Printed>,
    /// Members that did not answer: `node_name` and `error`.
    unanswered: Vec<super::fanout::Unanswered>,
}

#[derive(Debug, clap::Args)]
struct SetArgs {
    /// normal (takes work), maintenance (no new work: left out of queries,
    /// health NOT_SERVING; keeps gossiping and relaying), or disabled (also
    /// refuses broadcast payloads).
    #[arg(value_name = "STATE", value_parser = parse_state)]
    state: Maintenance,
    /// Why; kept with the state and in the audit trail.
    #[arg(long, default_value = "")]
    reason: String,
    #[command(flatten)]
    target: Target,
}

fn parse_state(s: &str) -> Result<Maintenance, String> {
    s.parse()
}

/// What `gsp maint --json` prints: `gsp.maint.v1` plus whether this call
/// changed anything.
#[derive(Debug, Serialize)]
struct Printed {
    #[serde(flatten)]
    status: MaintJson,
    /// For `set`: whether the state changed (false: it already was STATE).
    #[serde(skip_serializing_if = "Option::is_none")]
    changed: Option<bool>,
}

pub(crate) async fn run(args: MaintArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    let timeout = global.timeout.unwrap_or(DEFAULT_MAINT_TIMEOUT);
    let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
    let (reply, is_set) = match args.action {
        Action::Status(s) if s.all => {
            let up = up_members(&global).await?;
            return many(&global, timeout, up, Call::Get).await;
        }
        Action::Status(s) => {
            let Some(node_id) = s.target.single() else {
                let set = named(&global, &s.target.node).await?;
                return many(&global, timeout, set, Call::Get).await;
            };
            let req = pb::GetMaintenanceRequest {
                node_id,
                timeout_ms,
            };
            let mut admin = client::admin(&global).await?;
            let call = admin.get_maintenance(req);
            (
                finish(&global, timeout, "gsp maint status", call).await?,
                false,
            )
        }
        Action::Set(s) => {
            if s.reason.len() > MAX_REASON_BYTES {
                return Err(UsageError(format!(
                    "--reason is {} bytes; at most {MAX_REASON_BYTES} are allowed",
                    s.reason.len()
                ))
                .into());
            }
            let Some(node_id) = s.target.single() else {
                let set = named(&global, &s.target.node).await?;
                let call = Call::Set {
                    state: maintenance_to_pb(s.state).into(),
                    reason: s.reason,
                };
                return many(&global, timeout, set, call).await;
            };
            let req = pb::SetMaintenanceRequest {
                node_id,
                state: maintenance_to_pb(s.state).into(),
                reason: s.reason,
                timeout_ms,
            };
            let mut admin = client::admin(&global).await?;
            let call = admin.set_maintenance(req);
            (
                finish(&global, timeout, "gsp maint status", call).await?,
                true,
            )
        }
    };
    let printed = Printed {
        status: to_json(&reply),
        changed: is_set.then_some(reply.changed),
    };
    if global.json {
        output::json(&printed)?;
    } else {
        output::stdout(&render(&printed.status, printed.changed))?;
    }
    Ok(ExitStatus::Success)
}

/// Waits for the answer: no answer within `timeout` is a negative result
/// (exit 1); refusals and unreachable nodes exit 3. `what` names the check to
/// suggest when the outcome is unknown.
pub(super) async fn finish<R>(
    global: &GlobalArgs,
    timeout: Duration,
    what: &str,
    call: impl Future<Output = Result<tonic::Response<R>, tonic::Status>>,
) -> anyhow::Result<R> {
    // The node gives a routed request `timeout`; its answer needs a moment more.
    let slack = Duration::from_millis(500);
    match tokio::time::timeout(timeout + slack, call).await {
        Err(_) => Err(NegativeOutcome(format!(
            "the target did not confirm within {timeout:?} (the change may still happen; check \
             with `{what}`)"
        ))
        .into()),
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => match s.code() {
            tonic::Code::DeadlineExceeded => Err(NegativeOutcome(format!(
                "the target did not confirm in time: {}",
                s.message()
            ))
            .into()),
            tonic::Code::InvalidArgument => Err(UsageError(s.message().to_owned()).into()),
            tonic::Code::NotFound | tonic::Code::FailedPrecondition => {
                Err(Unreachable(s.message().to_owned()).into())
            }
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
                // A routed target names itself; otherwise it was the node at --addr.
                let msg = if s.message().starts_with(ROUTED_REFUSAL) {
                    s.message().to_owned()
                } else {
                    format!(
                        "the node at {} refused the credentials: {}",
                        global.addr,
                        s.message()
                    )
                };
                Err(Unreachable(msg).into())
            }
            _ => Err(client::call_failed(&global.addr, s)),
        },
    }
}

/// (id, name) of every up member, through the node at `--addr`.
pub(super) async fn up_members(global: &GlobalArgs) -> anyhow::Result<Vec<(String, String)>> {
    Ok(super::run::place::members(global)
        .await?
        .into_iter()
        .filter(|v| v.record.state.is_up())
        .map(|v| (v.record.id.to_string(), v.record.name.clone()))
        .collect())
}

/// (id, name) of the members the node sets name.
async fn named(global: &GlobalArgs, specs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    Ok(super::run::named_members(global, specs)
        .await?
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect())
}

/// What is asked of each member.
#[derive(Debug, Clone)]
enum Call {
    Get,
    Set { state: i32, reason: String },
}

/// `gsp maint status --all`, or `status`/`set` on a node set: each member
/// asked through the node at `--addr`, 64 at a time; one row each.
async fn many(
    global: &GlobalArgs,
    timeout: Duration,
    targets: Vec<(String, String)>,
    call: Call,
) -> anyhow::Result<ExitStatus> {
    let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
    let admin = client::admin(global).await?;
    let is_set = matches!(call, Call::Set { .. });
    let results = super::fanout::each(targets, super::fanout::WINDOW, |(id, name)| {
        let (mut admin, global, call) = (admin.clone(), global.clone(), call.clone());
        async move {
            let r = match call {
                Call::Get => {
                    let c = admin.get_maintenance(pb::GetMaintenanceRequest {
                        node_id: id.clone(),
                        timeout_ms,
                    });
                    finish(&global, timeout, "gsp maint status --node", c).await
                }
                Call::Set { state, reason } => {
                    let c = admin.set_maintenance(pb::SetMaintenanceRequest {
                        node_id: id.clone(),
                        state,
                        reason,
                        timeout_ms,
                    });
                    finish(&global, timeout, "gsp maint status --node", c).await
                }
            };
            let printed = r.map(|r| Printed {
                status: to_json(&r),
                changed: is_set.then_some(r.changed),
            });
            (id, name, printed.map_err(|e| format!("{e:#}")))
        }
    })
    .await;
    let mut list = ListJson {
        schema: "gsp.maint.list.v1",
        members: Vec::new(),
        unanswered: Vec::new(),
    };
    for (node_id, node_name, r) in results {
        match r {
            Ok(m) => list.members.push(m),
            Err(error) => list.unanswered.push(super::fanout::Unanswered {
                node_id,
                node_name,
                error,
            }),
        }
    }
    list.members.sort_by(|a, b| {
        (&a.status.node_name, &a.status.node_id).cmp(&(&b.status.node_name, &b.status.node_id))
    });
    if global.json {
        output::json(&list)?;
    } else {
        let mut t = comfy_table::Table::new();
        t.load_style(comfy_table::presets::UTF8_BORDERS_ONLY);
        let mut header = vec!["NAME", "STATE", "REASON", "BY", "SINCE"];
        if is_set {
            header.push("CHANGED");
        }
        t.set_header(header);
        for m in &list.members {
            let mut row = vec![
                m.status.node_name.clone(),
                m.status.state.to_owned(),
                m.status.reason.clone(),
                m.status.actor.clone(),
                m.status
                    .changed_at
                    .clone()
                    .unwrap_or_else(|| "-".to_owned()),
            ];
            if let Some(c) = m.changed {
                row.push(if c { "yes" } else { "no" }.to_owned());
            }
            t.add_row(row);
        }
        let mut text = format!("{t}\n");
        text.push_str(&super::fanout::unanswered_lines(&list.unanswered));
        output::stdout(&text)?;
    }
    Ok(super::fanout::status(&list.unanswered))
}

fn state_name(v: i32) -> &'static str {
    maintenance_from_pb(v).unwrap_or_default().as_str()
}

fn to_json(r: &pb::MaintenanceReply) -> MaintJson {
    MaintJson {
        schema: "gsp.maint.v1",
        node_id: r.node_id.clone(),
        node_name: r.node_name.clone(),
        state: state_name(r.state),
        previous_state: state_name(r.previous_state),
        reason: r.reason.clone(),
        actor: r.actor.clone(),
        changed_at: (r.changed_unix_ns != 0).then(|| rfc3339(r.changed_unix_ns)),
    }
}

fn render(m: &MaintJson, changed: Option<bool>) -> String {
    let mut out = String::new();
    let headline = match changed {
        Some(true) => format!("{} -> {}", m.previous_state, m.state),
        Some(false) => format!("{} (already; nothing changed)", m.state),
        None if m.previous_state == m.state => m.state.to_owned(),
        None => format!("{} (was {})", m.state, m.previous_state),
    };
    let rows = [
        ("node", format!("{} ({})", m.node_name, m.node_id)),
        ("state", headline),
        ("reason", m.reason.clone()),
        ("actor", m.actor.clone()),
        (
            "changed",
            m.changed_at.clone().unwrap_or_else(|| "never".to_owned()),
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "{k:<8} {v}");
    }
    out
}
