//! `gsp bench membership`: join, crash detection, traffic and false positives.

use std::fmt::Write as _;

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};

use super::BenchArgs;
use crate::{
    bench::{
        error::BenchError,
        membership::{self, MembershipBenchConfig, MembershipReport},
    },
    cli::{
        GlobalArgs,
        exit::{ExitStatus, NegativeOutcome, UsageError},
    },
};

pub(super) async fn run(args: BenchArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    let baseline = super::baseline(&args, "membership")?;
    let nodes = args.nodes.unwrap_or(50);
    let config = MembershipBenchConfig {
        nodes,
        gossip_interval: args
            .gossip_interval
            .unwrap_or_else(|| MembershipBenchConfig::default_round(nodes)),
        kills: args.kills,
        stalls: args.stalls,
        stall: args.stall,
        traffic_window: args.traffic_window,
        phase_timeout: global
            .timeout
            .unwrap_or(MembershipBenchConfig::default().phase_timeout),
        ..MembershipBenchConfig::default()
    };
    if config.nodes < 3 || config.nodes > 200 {
        return Err(UsageError(format!(
            "--nodes must be between 3 and 200 for membership (got {})",
            config.nodes
        ))
        .into());
    }
    if config.gossip_interval < std::time::Duration::from_millis(10) {
        return Err(UsageError("--gossip-interval must be at least 10ms".to_owned()).into());
    }
    let progress = super::progress(&global);
    let report = tokio::task::spawn_blocking(move || membership::run(&config, progress.as_ref()))
        .await?
        .map_err(|e| match e {
            BenchError::Setup(m) => {
                anyhow::Error::new(NegativeOutcome(m)).context("membership bench did not complete")
            }
            other => other.into(),
        })?;
    let regressed = super::emit(
        &report,
        &args,
        baseline.as_ref(),
        &global,
        (&report.scenario.name, &report.timestamp),
        render,
    )?;
    Ok(if regressed {
        ExitStatus::Negative
    } else {
        ExitStatus::Success
    })
}

fn render(r: &MembershipReport) -> String {
    let res = &r.results;
    let mut out = format!(
        "gsp bench membership: {} nodes, {} ms rounds, {} crashes, {} stalls of {} ms\n",
        r.scenario.nodes, res.gossip_interval_ms, r.scenario.kills, res.stalls, res.stall_ms
    );
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY);
    t.set_header(vec!["", "rounds", "ms"]);
    t.add_row(vec![
        "join: all see all (after last start)".to_owned(),
        format!("{:.1}", res.join_rounds),
        format!("{:.0}", res.join_ms),
    ]);
    let d = &res.detection_rounds;
    for (name, v) in [
        ("crash detected by all, p50", d.p50),
        ("crash detected by all, p99", d.p99),
        ("crash detected by all, max", d.max),
    ] {
        t.add_row(vec![
            name.to_owned(),
            format!("{v:.1}"),
            format!("{:.0}", v * res.gossip_interval_ms),
        ]);
    }
    out.push_str(&t.to_string());
    out.push('\n');
    let _ = writeln!(
        out,
        "idle traffic per node: {:.0} B/s sent+received ({:.0} B/s sent)",
        res.traffic_bytes_per_sec_per_node, res.sent_bytes_per_sec_per_node
    );
    let _ = writeln!(
        out,
        "false positives: {} over {:.0} rounds; stalled node suspected {} times",
        res.false_positives, res.rounds_observed, res.stalled_node_suspected
    );
    let _ = writeln!(
        out,
        "cpu {:.1} s ({:.2} ms per node per round), peak RSS {:.0} MiB ({:.2} MiB per node)",
        res.cpu_seconds,
        res.cpu_ms_per_node_round,
        res.peak_rss_bytes as f64 / f64::from(1u32 << 20),
        res.rss_bytes_per_node as f64 / f64::from(1u32 << 20)
    );
    out
}
