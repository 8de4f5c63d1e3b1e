//! `gsp bench membership-sim`: membership of thousands of simulated nodes
//! (every node's pure SWIM core over a simulated network), to see how the
//! protocol scales without thousands of processes.

use std::fmt::Write as _;

use serde::Serialize;

use super::BenchArgs;
use crate::{
    bench::{
        membership_sim::{self, MembershipSimConfig, MembershipSimReport},
        report,
        sys::HostInfo,
    },
    cli::{
        GlobalArgs,
        exit::{ExitStatus, UsageError},
    },
    core::membership::config::MembershipConfig,
};

/// The JSON report.
#[derive(Debug, Serialize)]
struct Report {
    schema: &'static str,
    scenario: serde_json::Value,
    results: MembershipSimReport,
    /// Join within 2 log2 N rounds, crashes detected, no healthy node dead,
    /// the partition healed.
    passed: bool,
    wall_secs: f64,
    gsp_version: String,
    git_sha: String,
    timestamp: String,
    host: HostInfo,
}

pub(super) fn run(args: &BenchArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let baseline = super::baseline(args, "membership-sim")?;
    let nodes = args.nodes.unwrap_or(1000);
    if nodes < 2 {
        return Err(UsageError(format!("--nodes must be at least 2, got {nodes}")).into());
    }
    if !(0.0..100.0).contains(&args.loss) {
        return Err(UsageError(format!(
            "--loss must be 0 to 100 (percent), got {}",
            args.loss
        ))
        .into());
    }
    if args.kills >= nodes.saturating_sub(1) {
        return Err(UsageError(format!(
            "--kills {} leaves too few of {nodes} nodes running",
            args.kills
        ))
        .into());
    }
    let mut membership = MembershipConfig::with_interval(
        args.gossip_interval
            .unwrap_or(crate::bench::membership::FAST_ROUND),
    );
    membership.records_signed = args.tls;
    let cfg = MembershipSimConfig {
        nodes,
        loss: args.loss / 100.0,
        crash: args.kills,
        // One node in a hundred (at least one) cut off after the crashes,
        // then healed.
        partition: (nodes / 100).max(1),
        seed: args.seed,
        membership,
        ..MembershipSimConfig::default()
    };
    let started = std::time::Instant::now();
    let r = membership_sim::run(&cfg);
    let join_bound = 2.0 * (nodes as f64).log2();
    let passed = r.join_rounds.is_some_and(|j| f64::from(j) <= join_bound)
        && (r.crashed == 0 || r.detection_rounds.is_some())
        && r.false_positives == 0
        && (cfg.partition == 0 || r.heal_rounds.is_some());
    let report = Report {
        schema: "gsp.bench.v1",
        scenario: serde_json::json!({
            "name": "membership-sim",
            "nodes": nodes,
            "gossip_interval_ms": args.gossip_interval.unwrap_or(crate::bench::membership::FAST_ROUND).as_secs_f64() * 1e3,
            "latency_ms": cfg.latency.as_secs_f64() * 1e3,
            "loss": cfg.loss,
            "crash": args.kills,
            "partition": cfg.partition,
            "seed": args.seed,
            "tls": args.tls,
        }),
        results: r,
        passed,
        wall_secs: started.elapsed().as_secs_f64(),
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
        ("membership-sim", &report.timestamp.clone()),
        render,
    )?;
    Ok(if passed && !regressed {
        ExitStatus::Success
    } else {
        ExitStatus::Negative
    })
}

fn rounds(r: Option<u32>) -> String {
    r.map_or_else(|| "never".to_owned(), |r| format!("{r} rounds"))
}

fn render(r: &Report) -> String {
    let x = &r.results;
    let mut out = String::new();
    let bound = 2.0 * (x.nodes as f64).log2();
    let _ = writeln!(
        out,
        "simulated membership of {} nodes: joined in {} (target <= 2 log2 N = {bound:.1}: {}), gossip settled {} later",
        x.nodes,
        rounds(x.join_rounds),
        if x.join_rounds.is_some_and(|j| f64::from(j) <= bound) {
            "met"
        } else {
            "MISSED"
        },
        rounds(x.settle_rounds),
    );
    let _ = writeln!(
        out,
        "idle: {:.0} bytes and {:.2} messages per node per round",
        x.idle_bytes_per_node_per_round, x.idle_messages_per_node_per_round
    );
    let _ = writeln!(
        out,
        "nodes heard of second-hand: {} listed after a probe, {} vouched for by a second member, {} on their own signature",
        x.admitted_by_probe, x.admitted_by_vouch, x.admitted_signed
    );
    let _ = writeln!(
        out,
        "{} crashed: dead everywhere in {}; healthy nodes declared dead: {}, suspected: {}",
        x.crashed,
        rounds(x.detection_rounds),
        x.false_positives,
        x.false_suspicions
    );
    let cut = r.scenario["partition"].as_u64().unwrap_or(0);
    if cut > 0 {
        let _ = writeln!(
            out,
            "{cut} nodes cut off: listed down by the rest in {}; healed, all alive everywhere again in {}",
            rounds(x.split_rounds),
            rounds(x.heal_rounds)
        );
    }
    let _ = writeln!(
        out,
        "{} messages, {} events, {:.1} s simulated in {:.1} s: {}",
        x.messages,
        x.events,
        x.simulated_secs,
        r.wall_secs,
        if r.passed { "passed" } else { "FAILED" }
    );
    out
}
