//! `gsp bench resources`: query latency, probe cost, idle CPU.

use std::fmt::Write as _;

use super::BenchArgs;
use crate::{
    bench::resources::{self, ResourcesBenchConfig, ResourcesReport},
    cli::{GlobalArgs, exit::ExitStatus},
};

pub(super) async fn run(args: BenchArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    let baseline = super::baseline(&args, "resources")?;
    let config = ResourcesBenchConfig {
        view_nodes: args.nodes.unwrap_or(1000).max(1),
        idle_window: args.traffic_window,
        nvml_library: args.nvml_library.clone(),
        ..ResourcesBenchConfig::default()
    };
    let progress = super::progress(&global);
    let report = resources::run(&config, progress.as_ref()).await?;
    let regressed = super::emit(
        &report,
        &args,
        baseline.as_ref(),
        &global,
        ("resources", &report.timestamp),
        render,
    )?;
    Ok(if regressed {
        ExitStatus::Negative
    } else {
        ExitStatus::Success
    })
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
    match x.nvml_tick_cpu_ms {
        Some(ms) => {
            let _ = writeln!(
                out,
                "NVML reading CPU: {ms:.3} ms for {} devices (off the runtime's threads)",
                x.nvml_devices
            );
        }
        None => {
            let _ = writeln!(out, "NVML reading CPU: not timed (no --nvml-library)");
        }
    }
    let (bound, plain) = (&x.gpu_job_start_ns, &x.plain_job_start_ns);
    let added_p99 = bound.p99.saturating_sub(plain.p99) as f64 / 1e6;
    let _ = writeln!(
        out,
        "job start on a {}-GPU node: binding 1 GPU p50 {:.3} ms, p99 {:.3} ms; no GPU p50 {:.3} ms, p99 {:.3} ms; binding adds {added_p99:.3} ms at p99 (target < 1 ms: {})",
        x.job_node_gpus,
        bound.p50 as f64 / 1e6,
        bound.p99 as f64 / 1e6,
        plain.p50 as f64 / 1e6,
        plain.p99 as f64 / 1e6,
        if added_p99 < 1.0 { "met" } else { "MISSED" }
    );
    let _ = writeln!(
        out,
        "idle CPU: {:.3}% of one core per node ({} nodes at default settings, {:.0} s)",
        x.idle_cpu_pct_per_node, x.idle_nodes, x.idle_window_secs
    );
    out
}
