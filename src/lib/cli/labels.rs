//! `gsp labels`: shows or changes a node's labels at run time (Serf's
//! `serf tags`): the node at `--addr`, or with `--node` another member, routed
//! through it. Changes are persisted in the target's data dir and win over its
//! configuration until reset.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;

use super::{
    GlobalArgs, client,
    exit::{ExitStatus, UsageError},
    maint::{DEFAULT_MAINT_TIMEOUT, finish},
    output, peers,
};
use crate::{
    core::labels::{MAX_LABEL_BYTES, check_key},
    runtime::view::rfc3339,
    transport::pb::admin::v1 as pb,
};

/// Arguments of `gsp labels`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "Examples:
  gsp labels show
  gsp labels set rack=r12 role=gpu --node n3
  gsp labels unset role
  gsp labels reset rack        # the config file's value applies again
  gsp labels reset --all
  gsp labels show --json | jq .labels")]
pub(crate) struct LabelsArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Show the labels a node publishes, which come from its configuration and
    /// which were changed at run time, by whom and when.
    Show(Target),
    /// Set labels (KEY=VALUE...); they win over the configuration until reset.
    /// Needs the admin token when the node has one.
    Set {
        /// Labels to set.
        #[arg(value_name = "KEY=VALUE", required = true, value_parser = peers::parse_label)]
        labels: Vec<(String, String)>,
        #[command(flatten)]
        target: Target,
    },
    /// Remove labels, configured ones included, until reset.
    Unset {
        /// Keys to remove.
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Drop run-time changes so the configuration applies again.
    Reset {
        /// Keys to reset.
        #[arg(
            value_name = "KEY",
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        keys: Vec<String>,
        /// Reset every key changed at run time.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        target: Target,
    },
}

/// Where a request goes.
type Target = super::nodeset::RoutedNodes;

/// `gsp labels --node SET --json`: one `gsp.labels.v1` object per member.
#[derive(Debug, Serialize)]
struct ListJson {
    schema: &'static str,
    members: Vec<LabelsJson>,
    /// Members that did not answer.
    unanswered: Vec<super::fanout::Unanswered>,
}

/// `gsp.labels.v1`, as `gsp labels --json` prints it.
#[derive(Debug, Serialize)]
struct LabelsJson {
    schema: &'static str,
    node_id: String,
    node_name: String,
    /// What the node publishes.
    labels: BTreeMap<String, String>,
    /// What its configuration gives.
    configured: BTreeMap<String, String>,
    /// Changed at run time: value set, or null for removed.
    runtime: BTreeMap<String, Option<String>>,
    actor: String,
    changed_at: Option<String>,
    /// For set/unset/reset: whether the published labels changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    changed: Option<bool>,
}

pub(crate) async fn run(args: LabelsArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    let timeout = global.timeout.unwrap_or(DEFAULT_MAINT_TIMEOUT);
    let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
    let mut req = pb::SetLabelsRequest {
        timeout_ms,
        ..pb::SetLabelsRequest::default()
    };
    let target = match args.action {
        Action::Show(t) => {
            let Some(node_id) = t.single() else {
                return many(&global, timeout, &t.node, None).await;
            };
            let get = pb::GetLabelsRequest {
                node_id,
                timeout_ms,
            };
            let mut admin = client::admin(&global).await?;
            let reply = finish(&global, timeout, "gsp labels show", admin.get_labels(get)).await?;
            return print(&global, &reply, None);
        }
        Action::Set { labels, target } => {
            for (k, v) in &labels {
                check_key(k).map_err(|e| UsageError(e.to_string()))?;
                if v.len() > MAX_LABEL_BYTES {
                    return Err(UsageError(format!(
                        "label {k:?}: value is {} bytes; at most {MAX_LABEL_BYTES} are allowed",
                        v.len()
                    ))
                    .into());
                }
            }
            req.set = labels.into_iter().collect();
            target
        }
        Action::Unset { keys, target } => {
            check_keys(&keys)?;
            req.unset = keys;
            target
        }
        Action::Reset { keys, all, target } => {
            check_keys(&keys)?;
            req.reset = keys;
            req.reset_all = all;
            target
        }
    };
    let Some(node_id) = target.single() else {
        return many(&global, timeout, &target.node, Some(req)).await;
    };
    req.node_id = node_id;
    let mut admin = client::admin(&global).await?;
    let reply = finish(&global, timeout, "gsp labels show", admin.set_labels(req)).await?;
    let changed = reply.changed;
    print(&global, &reply, Some(changed))
}

/// Shows (`set` is `None`) or changes the labels of each member the node
/// sets name, each routed through the node at `--addr`, 64 at a time.
async fn many(
    global: &GlobalArgs,
    timeout: std::time::Duration,
    specs: &[String],
    set: Option<pb::SetLabelsRequest>,
) -> anyhow::Result<ExitStatus> {
    let targets = super::run::named_members(global, specs).await?;
    let admin = client::admin(global).await?;
    let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
    let results = super::fanout::each(targets, super::fanout::WINDOW, |t| {
        let (mut admin, global, set) = (admin.clone(), global.clone(), set.clone());
        async move {
            let r = match set {
                None => {
                    let c = admin.get_labels(pb::GetLabelsRequest {
                        node_id: t.id.clone(),
                        timeout_ms,
                    });
                    finish(&global, timeout, "gsp labels show --node", c)
                        .await
                        .map(|r| to_json(&r, None))
                }
                Some(mut req) => {
                    req.node_id.clone_from(&t.id);
                    let c = admin.set_labels(req);
                    finish(&global, timeout, "gsp labels show --node", c)
                        .await
                        .map(|r| to_json(&r, Some(r.changed)))
                }
            };
            (t, r.map_err(|e| format!("{e:#}")))
        }
    })
    .await;
    let mut list = ListJson {
        schema: "gsp.labels.list.v1",
        members: Vec::new(),
        unanswered: Vec::new(),
    };
    for (t, r) in results {
        match r {
            Ok(j) => list.members.push(j),
            Err(error) => list.unanswered.push(super::fanout::Unanswered {
                node_id: t.id,
                node_name: t.name,
                error,
            }),
        }
    }
    list.members
        .sort_by(|a, b| (&a.node_name, &a.node_id).cmp(&(&b.node_name, &b.node_id)));
    if global.json {
        output::json(&list)?;
    } else {
        let mut text = list
            .members
            .iter()
            .map(render)
            .collect::<Vec<_>>()
            .join("\n");
        text.push_str(&super::fanout::unanswered_lines(&list.unanswered));
        output::stdout(&text)?;
    }
    Ok(super::fanout::status(&list.unanswered))
}

fn check_keys(keys: &[String]) -> anyhow::Result<()> {
    for k in keys {
        check_key(k).map_err(|e| UsageError(e.to_string()))?;
    }
    Ok(())
}

fn print(
    global: &GlobalArgs,
    r: &pb::LabelsReply,
    changed: Option<bool>,
) -> anyhow::Result<ExitStatus> {
    let json = to_json(r, changed);
    if global.json {
        output::json(&json)?;
    } else {
        output::stdout(&render(&json))?;
    }
    Ok(ExitStatus::Success)
}

fn to_json(r: &pb::LabelsReply, changed: Option<bool>) -> LabelsJson {
    let mut runtime: BTreeMap<String, Option<String>> = r
        .runtime_set
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    for k in &r.runtime_unset {
        runtime.insert(k.clone(), None);
    }
    LabelsJson {
        schema: "gsp.labels.v1",
        node_id: r.node_id.clone(),
        node_name: r.node_name.clone(),
        labels: r.labels.clone().into_iter().collect(),
        configured: r.configured.clone().into_iter().collect(),
        runtime,
        actor: r.actor.clone(),
        changed_at: (r.changed_unix_ns != 0).then(|| rfc3339(r.changed_unix_ns)),
        changed,
    }
}

fn render(j: &LabelsJson) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "node    {} ({})", j.node_name, j.node_id);
    match j.changed {
        Some(true) => out.push_str("labels  changed\n"),
        Some(false) => out.push_str("labels  unchanged (already so)\n"),
        None => {}
    }
    if j.labels.is_empty() {
        out.push_str("(no labels)\n");
    }
    for (k, v) in &j.labels {
        let origin = match j.runtime.get(k) {
            Some(_) => "runtime",
            None => "config",
        };
        let _ = writeln!(out, "  {k}={v}  [{origin}]");
    }
    for (k, v) in &j.runtime {
        if v.is_none() {
            let _ = writeln!(out, "  {k}  [removed at runtime]");
        }
    }
    if let Some(at) = &j.changed_at {
        let _ = writeln!(out, "last runtime change {at} by {}", j.actor);
    }
    out
}
