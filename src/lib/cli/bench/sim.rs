//! `gsp bench sim`: one swarm broadcast over thousands of simulated nodes (the
//! pure broadcast cores and a link model, in simulated time), to see how the
//! protocol scales without thousands of hosts.

use std::{fmt::Write as _, time::Duration};

use serde::Serialize;

use super::BenchArgs;
use crate::{
    bench::{report, swarm_sim, sys::HostInfo},
    cli::{
        GlobalArgs,
        exit::{ExitStatus, UsageError},
    },
    core::units::HumanBytes,
};

/// The JSON report.
#[derive(Debug, Serialize)]
struct SimReport {
    schema: &'static str,
    scenario: serde_json::Value,
    results: Results,
    gsp_version: String,
    git_sha: String,
    timestamp: String,
    host: HostInfo,
}

#[derive(Debug, Serialize)]
struct Results {
    live: usize,
    delivered: usize,
    extra_deliveries: u64,
    corrupt_deliveries: u64,
    converged: bool,
    completion_ms: f64,
    floor_ms: f64,
    ratio_to_floor: f64,
    origin_bytes: u64,
    max_node_bytes: u64,
    copy_ratio: f64,
    pieces: u64,
    events: u64,
    wall_secs: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub(super) fn run(args: &BenchArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let baseline = super::baseline(args, "sim")?;
    let nodes = args.nodes.unwrap_or(1000);
    if nodes < 2 {
        return Err(UsageError(format!("--nodes must be at least 2, got {nodes}")).into());
    }
    let rate = args.link.unwrap_or(1_000_000_000);
    if rate == 0 {
        return Err(UsageError("--link must be above 0".to_owned()).into());
    }
    if args.dead >= nodes {
        return Err(UsageError(format!(
            "--dead {} leaves no live node besides the origin of {nodes}",
            args.dead
        ))
        .into());
    }
    let mut config = swarm_sim::SimConfig {
        nodes,
        payload_bytes: args.payload,
        rate: rate as f64 / 8.0,
        // Spread over the cluster, never the origin.
        dead: (1..=args.dead)
            .map(|k| k * (nodes - 1) / (args.dead + 1) + 1)
            .collect(),
        seed: args.seed,
        ..swarm_sim::SimConfig::default()
    };
    if let Some(k) = args.swarm_fanout {
        if !(2..=16).contains(&k) {
            return Err(UsageError(format!("--swarm-fanout must be 2..16, got {k}")).into());
        }
        config.broadcast.swarm_fanout = k;
    }
    let started = std::time::Instant::now();
    let r = swarm_sim::run(&config);
    let results = Results {
        live: r.live,
        delivered: r.delivered,
        extra_deliveries: r.extra_deliveries,
        corrupt_deliveries: r.corrupt_deliveries,
        converged: r.converged,
        completion_ms: ms(r.completion),
        floor_ms: ms(r.floor),
        ratio_to_floor: r.completion.as_secs_f64() / r.floor.as_secs_f64().max(1e-12),
        origin_bytes: r.origin_bytes,
        max_node_bytes: r.max_node_bytes,
        copy_ratio: r.copy_ratio,
        pieces: r.pieces,
        events: r.events,
        wall_secs: started.elapsed().as_secs_f64(),
    };
    let ok = r.delivered == r.live && r.extra_deliveries == 0 && r.corrupt_deliveries == 0;
    let report = SimReport {
        schema: "gsp.bench.v1",
        scenario: serde_json::json!({
            "name": "sim",
            "nodes": nodes,
            "payload_bytes": args.payload,
            "link_bit_s": rate,
            "latency_ms": ms(config.latency),
            "dead": config.dead.len(),
            "swarm_fanout": config.broadcast.swarm_fanout,
            "seed": config.seed,
        }),
        results,
        gsp_version: env!("CARGO_PKG_VERSION").to_owned(),
        git_sha: env!("GSP_GIT_SHA").to_owned(),
        timestamp: report::timestamp_now(),
        host: HostInfo::detect(),
    };
    let regressed = super::emit(
        &report,
        args,
        baseline.as_ref(),
        global,
        ("sim", &report.timestamp.clone()),
        render,
    )?;
    Ok(if ok && !regressed {
        ExitStatus::Success
    } else {
        ExitStatus::Negative
    })
}

fn render(r: &SimReport) -> String {
    let x = &r.results;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "simulated broadcast of {} to {} nodes ({} dead), links {} bit/s: {}/{} live nodes delivered, {} twice, {} corrupt",
        HumanBytes(r.scenario["payload_bytes"].as_u64().unwrap_or(0)),
        r.scenario["nodes"],
        r.scenario["dead"],
        r.scenario["link_bit_s"],
        x.delivered,
        x.live,
        x.extra_deliveries,
        x.corrupt_deliveries
    );
    let _ = writeln!(
        out,
        "last delivery {:.1} ms, floor (one download) {:.1} ms: {:.2}x; {} pieces",
        x.completion_ms, x.floor_ms, x.ratio_to_floor, x.pieces
    );
    let _ = writeln!(
        out,
        "origin uploaded {} (payload x {:.2}); busiest node {}; copy ratio {:.3}; {} events in {:.1} s",
        HumanBytes(x.origin_bytes),
        x.origin_bytes as f64 / r.scenario["payload_bytes"].as_f64().unwrap_or(1.0).max(1.0),
        HumanBytes(x.max_node_bytes),
        x.copy_ratio,
        x.events,
        x.wall_secs
    );
    out
}
