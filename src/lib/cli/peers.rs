//! `gsp peers`: the members a node knows, as a table or JSON.

use std::fmt::Write as _;

use anyhow::Context as _;
use comfy_table::{Cell, Table, presets::UTF8_BORDERS_ONLY};
use serde::Serialize;

use super::{
    GlobalArgs, client,
    exit::ExitStatus,
    output::{self, count},
};
use crate::{
    clock::unix_ns as now_unix_ns,
    core::{
        membership::{MemberView, record::MemberState},
        resources::{
            aggregate::{Aggregate, aggregate},
            inventory::Inventory,
        },
    },
    runtime::view::{NodeJson, sorted},
    transport::{
        membership::{
            convert::{RecordLimits, record_from_pb},
            extras::inventory_from_pb,
        },
        pb::admin::v1 as pb,
    },
};

/// Schema of `gsp peers --json`.
pub const SCHEMA: &str = "gsp.peers.v1";

/// Arguments of `gsp peers`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "Examples:
  gsp peers                                   # every member the node at --addr knows
  gsp peers --state dead --state left         # only those
  gsp peers --label zone=eu --json | jq '.nodes[].node_name'
  gsp peers --summary                         # cluster totals, nodes by tag
  gsp peers --detailed --json                 # with each up member's hardware inventory")]
pub(crate) struct PeersArgs {
    /// Only members in this state (repeatable): alive, suspect, dead, left.
    #[arg(long, value_parser = ["alive", "suspect", "dead", "left"])]
    state: Vec<String>,
    /// Only members with this label (repeatable; all must match).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_label)]
    label: Vec<(String, String)>,
    /// Print the cluster's resources at a glance instead: totals over alive
    /// nodes, nodes by tag, nodes by free resources.
    #[arg(long, conflicts_with = "detailed")]
    summary: bool,
    /// Also fetch each up member's hardware inventory (CPU, OS, GPUs and their processes, disks, interfaces).
    #[arg(long)]
    detailed: bool,
    /// Every column: last seen, totals next to free amounts, labels, node id
    /// (the default table fits 100 columns).
    #[arg(long, short)]
    wide: bool,
}

/// Schema of `gsp peers --summary --json`.
pub const SUMMARY_SCHEMA: &str = "gsp.summary.v1";

#[derive(Serialize)]
struct SummaryJson {
    schema: &'static str,
    #[serde(flatten)]
    view: Aggregate,
}

pub(crate) fn parse_label(s: &str) -> Result<(String, String), String> {
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
    /// Why the node asked cannot write its data dir (`null`: it can).
    data_dir_error: Option<String>,
}

/// Members of a `ListMembers` answer as views.
pub(crate) fn views(resp: pb::ListMembersResponse) -> anyhow::Result<Vec<MemberView>> {
    Ok(views_with_inventory(resp)?
        .into_iter()
        .map(|(v, _)| v)
        .collect())
}

/// Members with the inventory each carries (only with `detailed`).
fn views_with_inventory(
    resp: pb::ListMembersResponse,
) -> anyhow::Result<Vec<(MemberView, Option<Inventory>)>> {
    let limits = RecordLimits::default();
    resp.members
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let mut info = m
                .info
                .with_context(|| format!("member {i} has no record"))?;
            let last_seen = info.last_seen;
            let inventory = info.gsp_inventory.take().map(inventory_from_pb);
            let record = record_from_pb(info, &format!("members[{i}]"), &limits, now_unix_ns())?;
            Ok((
                MemberView {
                    record,
                    local: m.local,
                    last_seen_unix_ns: last_seen,
                    in_state_for: std::time::Duration::from_millis(m.in_state_ms),
                },
                inventory,
            ))
        })
        .collect()
}

pub(crate) async fn run(args: PeersArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    let mut client = client::admin(&global).await?;
    let mut req = tonic::Request::new(pb::ListMembersRequest {
        detailed: args.detailed,
    });
    req.set_timeout(client::timeout(&global));
    let resp = client
        .list_members(req)
        .await
        .map_err(|s| client::call_failed(&global.addr, s))?
        .into_inner();
    if !resp.security_warning.is_empty() {
        output::stderr(&format!("warning: {}\n", resp.security_warning));
    }
    let data_dir_error = (!resp.data_dir_error.is_empty()).then(|| resp.data_dir_error.clone());
    if let Some(why) = &data_dir_error {
        output::stderr(&format!(
            "warning: the node at {} cannot write its data dir: {why}\n",
            global.addr
        ));
    }
    let mut members = views_with_inventory(resp)?;
    members.retain(|(m, _)| {
        (args.state.is_empty()
            || args
                .state
                .iter()
                .any(|s| MemberState::parse(s) == Some(m.record.state)))
            && args
                .label
                .iter()
                .all(|(k, v)| m.record.labels.get(k) == Some(v))
    });
    let inventories: std::collections::HashMap<String, Inventory> = members
        .iter()
        .filter_map(|(m, inv)| inv.clone().map(|i| (m.record.id.to_string(), i)))
        .collect();
    let members: Vec<MemberView> = sorted(members.into_iter().map(|(m, _)| m).collect());
    if args.summary {
        let view = aggregate(members.iter().map(|m| &m.record));
        if global.json {
            output::json(&SummaryJson {
                schema: SUMMARY_SCHEMA,
                view,
            })?;
        } else {
            output::stdout(&render_summary(&view))?;
        }
        return Ok(ExitStatus::Success);
    }
    if global.json {
        let nodes: Vec<NodeJson> = members
            .iter()
            .map(|m| NodeJson {
                inventory: inventories.get(m.record.id.as_str()).cloned(),
                ..NodeJson::from_view(m)
            })
            .collect();
        output::json(&PeersJson {
            schema: SCHEMA,
            total: nodes.len(),
            nodes,
            data_dir_error,
        })?;
    } else {
        let mut text = render(&members, args.wide, global.color.resolve());
        if args.detailed {
            text.push_str(&render_inventories(&members, &inventories));
        }
        output::stdout(&text)?;
    }
    Ok(ExitStatus::Success)
}

fn render_summary(v: &Aggregate) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY);
    t.set_header(vec!["", "TOTAL", "USED", "FREE"]);
    t.add_row(vec![
        "CPU (millicores)".to_owned(),
        v.cpu.total.to_string(),
        v.cpu.used.to_string(),
        v.cpu.available.to_string(),
    ]);
    let mem = |n: i64| crate::core::units::HumanBytes(u64::try_from(n).unwrap_or(0)).to_string();
    t.add_row(vec![
        "memory".to_owned(),
        mem(v.memory.total),
        mem(v.memory.used),
        mem(v.memory.available),
    ]);
    t.add_row(vec![
        "GPUs".to_owned(),
        v.gpu.total.to_string(),
        v.gpu.used.to_string(),
        v.gpu.available.to_string(),
    ]);
    let mut out = format!(
        "{} alive ({} without published resources)\n{t}\n",
        count(v.nodes as u64, "node"),
        v.nodes_without_resources
    );
    for (tag, list) in [
        ("cpu", &v.by_tag.cpu),
        ("gpu", &v.by_tag.gpu),
        ("memory", &v.by_tag.memory),
        ("camera", &v.by_tag.camera),
    ] {
        let _ = writeln!(
            out,
            "tag {tag}: {} {}",
            count(list.len() as u64, "node"),
            list.join(", ")
        );
    }
    for m in &v.gpu_models {
        let _ = writeln!(
            out,
            "GPU {}: {} on {}, {} free, {} of {} memory free",
            m.name,
            count(m.devices, "device"),
            count(m.nodes, "node"),
            m.free,
            crate::core::units::HumanBytes(m.memory_free_bytes),
            crate::core::units::HumanBytes(m.memory_total_bytes)
        );
    }
    let _ = writeln!(out, "most free first:");
    for r in v.by_available.iter().take(10) {
        let _ = writeln!(
            out,
            "  {:<20} gpu {:>3}  cpu {:>7}m  mem {}",
            r.node_name,
            r.gpu_available,
            r.cpu_available,
            mem(r.memory_available)
        );
    }
    out
}

fn render_inventories(
    members: &[MemberView],
    inventories: &std::collections::HashMap<String, Inventory>,
) -> String {
    let mut out = String::new();
    for m in members {
        let Some(i) = inventories.get(m.record.id.as_str()) else {
            continue;
        };
        let _ = writeln!(
            out,
            "\n{} ({}): {} {} cores / {} threads, {}, {} kernel {}",
            m.record.name,
            i.hostname,
            i.cpu_model,
            i.cpu_physical_cores,
            i.cpu_logical_cores,
            i.arch,
            i.os,
            i.kernel
        );
        out.push_str(&render_gpus(&m.record.gpus, i));
        for d in &i.disks {
            let _ = writeln!(
                out,
                "  disk {} on {} ({}): {} free of {}",
                d.name,
                d.mount_point,
                d.file_system,
                crate::core::units::HumanBytes(d.available_bytes),
                crate::core::units::HumanBytes(d.total_bytes)
            );
        }
        for n in &i.interfaces {
            let _ = writeln!(
                out,
                "  interface {} {} {}",
                n.name,
                n.mac,
                n.addresses.join(" ")
            );
        }
    }
    out
}

/// The devices' UUIDs cut short, as short ids go (`--json` has them whole):
/// the prefix and first 8 hex digits (`GPU-5e2c7b1a`); where two devices of
/// the node share those, the prefix and last 8 (`GPU-…00000007`); where they
/// share those too, whole.
fn short_uuids<'a>(uuids: &[&'a str]) -> Vec<std::borrow::Cow<'a, str>> {
    use std::borrow::Cow;
    let head = |u: &'a str| -> Cow<'a, str> {
        Cow::Borrowed(u.char_indices().nth(12).map_or(u, |(i, _)| &u[..i]))
    };
    let tail = |u: &'a str| -> Cow<'a, str> {
        let n = u.chars().count();
        if n <= 17 {
            return Cow::Borrowed(u);
        }
        let prefix = u.find('-').map_or("", |i| &u[..=i]);
        let start = u.char_indices().nth(n - 8).map_or(0, |(i, _)| i);
        Cow::Owned(format!("{prefix}…{}", &u[start..]))
    };
    let unique = |cut: &[Cow<'_, str>]| {
        let mut seen = std::collections::HashSet::new();
        cut.iter().all(|c| seen.insert(c.as_ref()))
    };
    let heads: Vec<_> = uuids.iter().map(|u| head(u)).collect();
    if unique(&heads) {
        return heads;
    }
    let tails: Vec<_> = uuids.iter().map(|u| tail(u)).collect();
    if unique(&tails) {
        return tails;
    }
    uuids.iter().map(|u| Cow::Borrowed(*u)).collect()
}

/// A member's GPU devices as a table (within 100 columns), the driver, and
/// the processes on them.
fn render_gpus(gpus: &[crate::core::membership::record::Gpu], i: &Inventory) -> String {
    let mut out = String::new();
    if gpus.is_empty() && i.gpu_driver.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "  NVIDIA driver {}, CUDA {}: {} GPU devices",
        if i.gpu_driver.is_empty() {
            "?"
        } else {
            &i.gpu_driver
        },
        if i.cuda_version.is_empty() {
            "?"
        } else {
            &i.cuda_version
        },
        gpus.len()
    );
    let uuids: Vec<&str> = gpus.iter().map(|g| g.uuid.as_str()).collect();
    let short = short_uuids(&uuids);
    if !gpus.is_empty() {
        let mut t = Table::new();
        t.load_style(UTF8_BORDERS_ONLY);
        t.set_header(vec![
            "GPU", "MODEL", "UUID", "FREE", "TOTAL", "UTIL", "PROCS", "STATE",
        ]);
        let mem = |b: u64| crate::core::units::HumanBytes(b).to_string();
        for (g, uuid) in gpus.iter().zip(&short) {
            let state = if g.held {
                "held"
            } else if g.busy {
                "busy"
            } else {
                "free"
            };
            let mut model: String = g.name.chars().take(24).collect();
            if !g.mig_parent.is_empty() && !g.name.contains("MIG") {
                model.insert_str(0, "MIG ");
            }
            t.add_row(vec![
                g.index.to_string(),
                model,
                uuid.to_string(),
                mem(g.memory_free_bytes()),
                mem(g.memory_total_bytes),
                format!("{}%", g.utilization_pct),
                if g.foreign_processes > 0 {
                    format!("{} ({} ext)", g.processes, g.foreign_processes)
                } else {
                    g.processes.to_string()
                },
                state.to_owned(),
            ]);
        }
        for line in t.to_string().lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    for p in &i.gpu_processes {
        let device = gpus.iter().position(|g| g.uuid == p.gpu_uuid).map_or_else(
            || p.gpu_uuid.clone(),
            |at| format!("GPU {} ({})", gpus[at].index, short[at]),
        );
        let _ = writeln!(
            out,
            "  process {} on {device}: {}, {}",
            p.pid,
            crate::core::units::HumanBytes(p.used_bytes),
            if p.job_id.is_empty() {
                "not started by gsp".to_owned()
            } else {
                format!("job {}", p.job_id)
            }
        );
    }
    out
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

/// `FOR` in a few characters: 42s, 17m, 5h, 3d.
fn for_how_long(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn render(members: &[MemberView], wide: bool, color: bool) -> String {
    // Long names and addresses wrap inside their cells rather than widening
    // the table past the terminal (100 columns into a pipe).
    let mut t = super::style::table(wide, color);
    let mut header = vec!["", "NAME", "ADDRESS", "STATE", "FOR"];
    if wide {
        header.push("SEEN");
    }
    header.extend(["CPU FREE", "MEM FREE", "GPU FREE", "MAINT", "EXEC"]);
    if wide {
        header.extend(["LABELS", "NODE ID"]);
    }
    t.set_header(header);
    for m in members {
        let r = &m.record;
        let bytes = |b: i64| crate::core::units::HumanBytes(u64::try_from(b).unwrap_or(0));
        // Free amounts; with --wide, free/total. A node that has not published
        // resources yet shows `-`.
        let (cpu, mem, gpu) = r.capacity.map_or_else(
            || ("-".to_owned(), "-".to_owned(), "-".to_owned()),
            |c| {
                let (a, tot) = (c.available, c.total);
                if wide {
                    (
                        format!("{}/{}m", a.cpu_millis, tot.cpu_millis),
                        format!("{}/{}", bytes(a.memory_bytes), bytes(tot.memory_bytes)),
                        format!("{}/{}", a.gpus, tot.gpus),
                    )
                } else {
                    (
                        format!("{}m", a.cpu_millis),
                        bytes(a.memory_bytes).to_string(),
                        a.gpus.to_string(),
                    )
                }
            },
        );
        let mut row = vec![
            Cell::new(if m.local { "*" } else { "" }),
            Cell::new(&r.name),
            Cell::new(&r.address),
            super::style::state(r.state.as_str(), color),
            Cell::new(for_how_long(m.in_state_for.as_secs())),
        ];
        if wide {
            row.push(Cell::new(if m.local {
                "-".to_owned()
            } else {
                ago(m.last_seen_unix_ns)
            }));
        }
        row.extend([
            Cell::new(cpu),
            Cell::new(mem),
            Cell::new(gpu),
            super::style::state(r.maintenance.as_str(), color),
            Cell::new(if r.exec { "yes" } else { "-" }),
        ]);
        if wide {
            row.push(Cell::new(
                r.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ));
            row.push(Cell::new(&r.id));
        }
        t.add_row(row);
    }
    let mut out = t.to_string();
    let up = members.iter().filter(|m| m.record.state.is_up()).count();
    let _ = writeln!(
        out,
        "\n{}, {up} up (* = the node answering)",
        count(members.len() as u64, "member")
    );
    out
}

#[cfg(test)]
mod tests {
    use super::short_uuids;

    #[test]
    fn short_uuids_stay_distinct_within_a_node() {
        let random = [
            "GPU-5e2c7b1a-0d4f-4a9e-8c1b-2f3e4d5c6b7a",
            "GPU-9a8b7c6d-1111-4222-8333-444455556666",
        ];
        assert_eq!(short_uuids(&random), ["GPU-5e2c7b1a", "GPU-9a8b7c6d"]);
        let serial = [
            "GPU-8e8e8e8e-0000-4000-8000-000000000000",
            "GPU-8e8e8e8e-0000-4000-8000-000000000001",
        ];
        assert_eq!(short_uuids(&serial), ["GPU-…00000000", "GPU-…00000001"]);
        let same_ends = [
            "MIG-aaaaaaaa-0000-4000-8000-000000000000",
            "MIG-aaaaaaaa-1111-4000-8000-000000000000",
        ];
        assert_eq!(short_uuids(&same_ends), same_ends);
    }
}
