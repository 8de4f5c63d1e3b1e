//! `gsp bench resources`: query latency, probe cost, idle CPU.

use std::fmt::Write as _;

use super::BenchArgs;
use crate::{
    bench::resources::{self, ResourcesBenchConfig, ResourcesReport},
    cli::{
        GlobalArgs,
        exit::{ExitStatus, UsageError},
    },
};

pub(super) async fn run(args: BenchArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    if args.compare.is_some() {
        return Err(UsageError("--compare supports flood reports only".to_owned()).into());
    }
    let config = ResourcesBenchConfig {
        view_nodes: args.nodes.unwrap_or(1000).max(1),
        idle_window: args.traffic_window,
        ..ResourcesBenchConfig::default()
    };
    let progress = super::progress(&global);
    let report = resources::run(&config, progress.as_ref()).await?;
    super::emit(
        &report,
        &args,
        &global,
        ("resources", &report.timestamp),
        render,
    )?;
    Ok(ExitStatus::Success)
}

fn render(r: &ResourcesReport) -> String {
    let x = &r.results;
    let q = &x.query_latency_ns;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "local-view query over {} nodes ({} queries, {:.0} matches each): p50 {:.1} us, p99 {:.1} us, max {:.1} us",
        x.view_nodes,
        x.queries,
        x.matches_per_query,
        q.p50 as f64 / 1e3,
        q.p99 as f64 / 1e3,
        q.max as f64 / 1e3
    );
    let _ = writeln!(out, "probe tick CPU: {:.3} ms", x.probe_tick_cpu_ms);
    let _ = writeln!(
        out,
        "idle CPU: {:.3}% of one core per node ({} nodes at default settings, {:.0} s)",
        x.idle_cpu_pct_per_node, x.idle_nodes, x.idle_window_secs
    );
    out
}
