//! `gsp bench --against PATH`: this binary against another on the same
//! workload, in one run. Iteration `i` runs the workload once with each
//! binary, back to back (this one first on even iterations, the other first
//! on odd ones, so neither always runs on a warmer host), and each figure is
//! judged on the pairs (`bench::compare`, `bench::verdict`).
//!
//! The flood runs `gsp bench flood --iterations 1` per child and is judged
//! on its figures (efficiency, convergence, ACK p99, costs per message);
//! the broadcast bench runs whole per child and is judged on the figures
//! `--compare` reads from its report. The simulations are seeded and give
//! the same figures on every run, so their reports are compared with
//! `--compare` instead.
//!
//! Both binaries run as child processes, this one included, so that both
//! pay the same start-up; a child that fails stops the run, naming the
//! binary and its error. `--binary PATH` judges another binary in place of
//! this one (an older gsp that has no `--against` of its own).

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::Context as _;

use super::{BenchArgs, flood};
use crate::{
    bench::{
        compare::{self, Class, Comparison, FIGURES, Row, Thresholds, figures},
        config::Scenario,
        html::Side,
        report::{self, Report},
        verdict::{self, Judgement, Pairing, Rule, Verdict},
    },
    cli::{
        GlobalArgs,
        exit::{ExitStatus, NegativeOutcome, UsageError},
        output,
    },
};

/// Schema of `--against --json`'s document.
const SCHEMA: &str = "gsp.bench.against.v1";

/// One binary taking part.
#[derive(Debug, serde::Serialize)]
struct Binary {
    /// Its path.
    path: String,
    /// What `PATH --version` printed.
    version: String,
}

/// The `--json` document.
#[derive(Debug, serde::Serialize)]
struct AgainstDoc {
    schema: &'static str,
    /// The workload, as the children's reports name it.
    scenario: serde_json::Value,
    /// This binary.
    current: Binary,
    /// The binary it was judged against.
    other: Binary,
    /// Iterations per binary (each its own process).
    iterations: usize,
    /// Per figure, each iteration's value for this binary.
    current_samples: serde_json::Map<String, serde_json::Value>,
    /// The same for the other binary.
    other_samples: serde_json::Map<String, serde_json::Value>,
    comparison: Comparison,
}

/// How long `PATH --version` may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Slack over a child's own iteration timeouts (start-up, writing the
/// report).
const CHILD_SLACK: Duration = Duration::from_secs(10);

async fn version_of(path: &Path) -> anyhow::Result<String> {
    let run = tokio::process::Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(VERSION_TIMEOUT, run)
        .await
        .map_err(|_| {
            UsageError(format!(
                "{} --version did not answer in {} s: is it a gsp binary?",
                path.display(),
                VERSION_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| UsageError(format!("cannot run {}: {e}", path.display())))?;
    if !out.status.success() {
        return Err(UsageError(format!(
            "{} --version failed ({}): is it a gsp binary?",
            path.display(),
            out.status
        ))
        .into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or_default().trim().to_owned();
    if !line.starts_with("gsp ") {
        return Err(UsageError(format!(
            "{} --version printed {line:?}: not a gsp binary",
            path.display()
        ))
        .into());
    }
    Ok(line)
}

/// The child's command line: the flood's workload and tuning, one counted
/// iteration, JSON on stdout, no report file.
fn child_args(args: &BenchArgs, nodes: usize) -> Vec<String> {
    let mut v: Vec<String> = vec!["bench".into(), "flood".into()];
    let mut flag = |name: &str, value: String| {
        v.push(format!("--{name}"));
        v.push(value);
    };
    // Every workload setting is passed, defaults included: the other
    // binary's defaults may differ.
    flag("nodes", nodes.to_string());
    flag("messages-per-peer", args.messages_per_peer.to_string());
    flag("payload", args.payload.to_string());
    flag("iterations", "1".into());
    flag("warmup", args.warmup.to_string());
    if let Some(n) = args.max_in_flight {
        flag("max-in-flight", n.to_string());
    }
    if let Some(n) = args.max_in_flight_bytes {
        flag("max-in-flight-bytes", n.to_string());
    }
    if let Some(n) = args.chunk {
        flag("chunk", n.to_string());
    }
    if let Some(n) = args.h2_frame {
        flag("h2-frame", n.to_string());
    }
    if let Some(n) = args.h2_stream_window {
        flag("h2-stream-window", n.to_string());
    }
    if let Some(n) = args.h2_conn_window {
        flag("h2-conn-window", n.to_string());
    }
    if args.no_baseline {
        v.push("--no-baseline".into());
    }
    v.push("--no-write".into());
    v.push("--json".into());
    v
}

/// Runs one child and reads its report. A child that outlives `limit` is
/// killed and the run ends, naming it; one that fails without a report (a
/// broadcast that timed out still gives one, with exit 1) ends it too.
async fn child(
    binary: &Path,
    argv: &[String],
    global: &GlobalArgs,
    limit: Duration,
) -> anyhow::Result<serde_json::Value> {
    let mut cmd = tokio::process::Command::new(binary);
    cmd.args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(t) = global.timeout {
        cmd.arg("--timeout").arg(t.as_secs_f64().to_string());
    }
    let name = binary.display().to_string();
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .map_err(|_| {
            NegativeOutcome(format!(
                "{name} {} did not finish in {} s; it was stopped",
                argv.join(" "),
                limit.as_secs()
            ))
        })?
        .with_context(|| format!("cannot run {name}"))?;
    let report = serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .filter(|v| v["schema"] == report::SCHEMA);
    let judged_anyway = out.status.code() == Some(1) && report.is_some();
    if !out.status.success() && !judged_anyway {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(NegativeOutcome(format!(
            "{name} {} failed ({}): {}",
            argv.join(" "),
            out.status,
            tail.join(" | ")
        ))
        .into());
    }
    report.ok_or_else(|| NegativeOutcome(format!("{name} printed no gsp bench report")).into())
}

/// Merges a child's ACK latencies into a side's histogram.
fn merge_latency(into: &mut Option<hdrhistogram::Histogram<u64>>, r: &Report) {
    let Ok(h) = report::decode_histogram(&r.results.histogram) else {
        return;
    };
    match into {
        Some(acc) => {
            let _ = acc.add(&h);
        }
        None => *into = Some(h),
    }
}

/// The two binaries, judged first.
async fn binaries(args: &BenchArgs) -> anyhow::Result<([PathBuf; 2], [Binary; 2])> {
    let Some(other) = args.against.clone() else {
        return Err(UsageError("--against needs a path".to_owned()).into());
    };
    let this: PathBuf = match &args.binary {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("cannot find this gsp binary")?,
    };
    let described = [
        Binary {
            version: version_of(&this).await?,
            path: this.display().to_string(),
        },
        Binary {
            version: version_of(&other).await?,
            path: other.display().to_string(),
        },
    ];
    Ok(([this, other], described))
}

pub(super) async fn run(args: BenchArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    if args.tls {
        return Err(
            UsageError("--against runs plaintext workloads only; drop --tls".to_owned()).into(),
        );
    }
    if args.iterations == 0 {
        return Err(UsageError("--iterations must be at least 1".to_owned()).into());
    }
    match args.scenario {
        Scenario::Flood => flood_ab(args, global).await,
        Scenario::Broadcast => figures_ab(args, global).await,
        other => Err(UsageError(format!(
            "--against applies to the flood and broadcast scenarios, not {}: a seeded \
             simulation gives the same figures on every run (compare its reports with \
             --compare), and the other scenarios run too long for alternating runs",
            other.name()
        ))
        .into()),
    }
}

async fn flood_ab(args: BenchArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    // The workload is checked here, before any child runs.
    let config = flood::config(&args, &global)?;
    let (owned, binaries) = binaries(&args).await?;
    let paths = [owned[0].as_path(), owned[1].as_path()];
    let command_line = child_args(&args, config.nodes);
    // The warm-ups, the counted iteration and the raw-TCP reference, each
    // within the iteration timeout the child is given.
    let per_iteration = global
        .timeout
        .unwrap_or(crate::bench::config::DEFAULT_ITERATION_TIMEOUT);
    let limit = per_iteration
        .saturating_mul(
            u32::try_from(args.warmup + 1)
                .unwrap_or(u32::MAX)
                .saturating_add(1),
        )
        .saturating_add(CHILD_SLACK);
    let thresholds = flood::thresholds(&args, Thresholds::AGAINST);
    let progress = super::progress(&global);
    progress.phase("A/B runs", (2 * args.iterations) as u64);
    // Per side, per figure, one value per iteration (None where a child did
    // not measure the figure).
    let mut values: [Vec<Vec<Option<f64>>>; 2] = [
        vec![Vec::new(); FIGURES.len()],
        vec![Vec::new(); FIGURES.len()],
    ];
    let mut latency: [Option<hdrhistogram::Histogram<u64>>; 2] = [None, None];
    let mut convergence: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut scenario = None;
    for i in 0..args.iterations {
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for side in order {
            let value = child(paths[side], &command_line, &global, limit).await?;
            let r = report::from_value(value, &binaries[side].path).map_err(NegativeOutcome)?;
            for (k, f) in FIGURES.iter().enumerate() {
                values[side][k].push(f.value(&r));
            }
            convergence[side].push(r.results.convergence_ns.p50 as f64 / 1e6);
            merge_latency(&mut latency[side], &r);
            let first = scenario.get_or_insert_with(|| (side, r.scenario.clone()));
            if !first.1.same_workload(&r.scenario) {
                return Err(NegativeOutcome(format!(
                    "{} and {} ran different workloads ({}, and {}): they cannot be compared",
                    binaries[first.0].path,
                    binaries[side].path,
                    first.1.workload(),
                    r.scenario.workload()
                ))
                .into());
            }
            progress.advance(1);
        }
    }
    progress.finish();
    // A figure is judged only where both binaries measured it every time:
    // the pairs must line up.
    let complete = |k: usize| {
        values
            .iter()
            .all(|side| side[k].iter().all(Option::is_some))
    };
    let samples = |side: usize| -> Vec<Vec<f64>> {
        (0..FIGURES.len())
            .map(|k| {
                if complete(k) {
                    values[side][k].iter().flatten().copied().collect()
                } else {
                    Vec::new()
                }
            })
            .collect()
    };
    let (current, theirs) = (samples(0), samples(1));
    let comparison = compare::judge(
        &binaries[1].path,
        "against",
        Pairing::Paired,
        thresholds,
        &theirs,
        &current,
    );
    let mut scenario = scenario.map_or_else(
        || report::ScenarioInfo {
            name: "flood".into(),
            nodes: config.nodes,
            messages_per_peer: config.messages_per_peer,
            payload_bytes: config.payload_bytes,
            iterations: 1,
            warmup: config.warmup,
        },
        |(_, s)| s,
    );
    scenario.iterations = args.iterations;
    if let Some(path) = &args.html {
        let [lat_this, lat_other] = latency;
        let [conv_this, conv_other] = convergence;
        let sides = [
            Side {
                label: format!("judged: {} ({})", binaries[0].version, binaries[0].path),
                latency: lat_this,
                convergence_ms: conv_this,
            },
            Side {
                label: format!("other: {} ({})", binaries[1].version, binaries[1].path),
                latency: lat_other,
                convergence_ms: conv_other,
            },
        ];
        let title = format!(
            "gsp bench flood --against: {} nodes, {} messages per peer, {} byte payloads, {} iterations per binary",
            scenario.nodes, scenario.messages_per_peer, scenario.payload_bytes, args.iterations
        );
        flood::write_html(path, &title, &sides, Some(&comparison))?;
    }
    let named = |s: &[Vec<f64>]| {
        FIGURES
            .iter()
            .zip(s)
            .filter(|(_, v)| !v.is_empty())
            .map(|(f, v)| (f.metric.to_owned(), serde_json::json!(v)))
            .collect()
    };
    let heading = format!(
        "gsp bench flood --against: {} nodes, {} messages per peer, {} byte payloads; \
         {} iterations per binary, alternating",
        scenario.nodes, scenario.messages_per_peer, scenario.payload_bytes, args.iterations,
    );
    let [current_bin, other_bin] = binaries;
    print(
        &global,
        &heading,
        &AgainstDoc {
            schema: SCHEMA,
            scenario: serde_json::to_value(&scenario)?,
            current: current_bin,
            other: other_bin,
            iterations: args.iterations,
            current_samples: named(&current),
            other_samples: named(&theirs),
            comparison,
        },
    )
}

/// Prints the document (`--json`) or the heading, both binaries and the
/// verdict table; exit 1 when a figure regressed.
fn print(global: &GlobalArgs, heading: &str, doc: &AgainstDoc) -> anyhow::Result<ExitStatus> {
    let regressed = doc.comparison.regressed;
    if global.json {
        output::json(doc)?;
    } else {
        let mut text = format!(
            "{heading}\nthis:  {} ({})\nother: {} ({})\n",
            doc.current.version, doc.current.path, doc.other.version, doc.other.path
        );
        text.push_str(&flood::render_comparison(&doc.comparison));
        output::stdout(&text)?;
    }
    Ok(if regressed {
        ExitStatus::Negative
    } else {
        ExitStatus::Success
    })
}

/// The broadcast bench's command line for a child: every workload setting,
/// defaults included, a report on stdout and none written.
fn broadcast_args(args: &BenchArgs, nodes: usize) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "bench".into(),
        "broadcast".into(),
        "--nodes".into(),
        nodes.to_string(),
        "--payload".into(),
        args.payload.to_string(),
        "--in-flight".into(),
        args.in_flight.max(1).to_string(),
    ];
    match args.rate {
        Some(rate) => v.extend([
            "--rate".into(),
            rate.to_string(),
            "--duration".into(),
            args.duration.as_secs_f64().to_string(),
        ]),
        None => v.extend(["--messages".into(), args.messages.to_string()]),
    }
    v.extend(["--no-write".into(), "--json".into()]);
    v
}

/// One figure's verdict from its paired samples: a count that must stay 0
/// regresses when this binary's worst iteration is worse than the other's;
/// every other figure is judged by [`verdict::judge`].
fn judge_figure(f: &figures::Figure, theirs: &[f64], ours: &[f64], timing_pct: f64) -> Row {
    let better = f.better;
    let judgement = if f.exact {
        let worst = |v: &[f64]| v.iter().copied().fold(0f64, f64::max);
        let (b, c) = (worst(theirs), worst(ours));
        Judgement {
            baseline_median: verdict::median(theirs),
            current_median: verdict::median(ours),
            baseline_samples: theirs.len(),
            current_samples: ours.len(),
            worse_ratio: if c > b { f64::INFINITY } else { 1.0 },
            ci_low: 1.0,
            ci_high: 1.0,
            max_worse_pct: 0.0,
            verdict: if c > b {
                Verdict::Regressed
            } else {
                Verdict::Ok
            },
            note: (c > b).then(|| format!("must stay at {b}: reached {c}")),
        }
    } else {
        verdict::judge(
            theirs,
            ours,
            Pairing::Paired,
            Rule {
                better,
                max_worse_pct: timing_pct,
                floor: 0.0,
            },
        )
    };
    Row {
        metric: f.name,
        unit: "",
        better,
        class: if f.exact { Class::Count } else { Class::Timing },
        baseline: judgement.baseline_median,
        current: judgement.current_median,
        worse_by_pct: (judgement.worse_ratio - 1.0) * 100.0,
        regressed: judgement.verdict == Verdict::Regressed,
        judgement,
    }
}

/// `--against` for the broadcast bench: each child runs the whole bench;
/// each figure `--compare` reads from a broadcast report is one sample per
/// child.
async fn figures_ab(args: BenchArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    let kind = args.scenario.name();
    let list = figures::of(kind).unwrap_or_default();
    let defaults = crate::bench::broadcast::BroadcastBenchConfig::default();
    let nodes = args.nodes.unwrap_or(defaults.nodes);
    let (owned, binaries) = binaries(&args).await?;
    let command_line = broadcast_args(&args, nodes);
    // Each broadcast may take its timeout; an open loop runs its duration
    // first.
    let timeout = global.timeout.unwrap_or(defaults.timeout);
    let rounds = u32::try_from(args.messages.max(1)).unwrap_or(u32::MAX);
    let limit = if args.rate.is_some() {
        args.duration.saturating_add(timeout)
    } else {
        timeout.saturating_mul(rounds)
    }
    .saturating_add(CHILD_SLACK);
    let progress = super::progress(&global);
    progress.phase("A/B runs", (2 * args.iterations) as u64);
    let mut values: [Vec<Vec<Option<f64>>>; 2] =
        [vec![Vec::new(); list.len()], vec![Vec::new(); list.len()]];
    let mut scenario: Option<(usize, serde_json::Value)> = None;
    for i in 0..args.iterations {
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for side in order {
            let r = child(&owned[side], &command_line, &global, limit).await?;
            if figures::kind_of(&r) != kind {
                return Err(NegativeOutcome(format!(
                    "{} printed a {} report, not {kind}",
                    binaries[side].path,
                    figures::kind_of(&r)
                ))
                .into());
            }
            let first = scenario.get_or_insert_with(|| (side, r["scenario"].clone()));
            let differ = figures::differing_keys(&first.1, &r["scenario"]);
            if !differ.is_empty() {
                return Err(NegativeOutcome(format!(
                    "{} and {} ran different workloads ({}): they cannot be compared",
                    binaries[first.0].path,
                    binaries[side].path,
                    differ.join(", ")
                ))
                .into());
            }
            for (k, f) in list.iter().enumerate() {
                values[side][k].push(r.pointer(f.pointer).and_then(serde_json::Value::as_f64));
            }
            progress.advance(1);
        }
    }
    progress.finish();
    let thresholds = Thresholds {
        timing_pct: args
            .max_regression
            .unwrap_or(Thresholds::AGAINST.timing_pct),
        tail_pct: Thresholds::AGAINST.tail_pct,
        count_pct: 0.0,
    };
    let mut rows = Vec::new();
    let mut not_judged = Vec::new();
    let mut samples: [serde_json::Map<String, serde_json::Value>; 2] = Default::default();
    for (k, f) in list.iter().enumerate() {
        let side = |s: usize| -> Option<Vec<f64>> { values[s][k].iter().copied().collect() };
        let (Some(theirs), Some(ours)) = (side(1), side(0)) else {
            not_judged.push(f.name);
            continue;
        };
        samples[0].insert(f.name.to_owned(), serde_json::json!(ours));
        samples[1].insert(f.name.to_owned(), serde_json::json!(theirs));
        rows.push(judge_figure(f, &theirs, &ours, thresholds.timing_pct));
    }
    let verdict = Verdict::overall(rows.iter().map(|r| r.judgement.verdict));
    let comparison = Comparison {
        baseline_file: binaries[1].path.clone(),
        mode: "against",
        paired: true,
        thresholds,
        rows,
        not_judged,
        verdict,
        regressed: verdict == Verdict::Regressed,
    };
    let workload = match args.rate {
        Some(rate) => format!("{rate} broadcasts/s for {} s", args.duration.as_secs_f64()),
        None => format!(
            "{} broadcasts, {} in flight",
            args.messages,
            args.in_flight.max(1)
        ),
    };
    let heading = format!(
        "gsp bench {kind} --against: {nodes} nodes, {} byte payloads, {workload}; \
         {} iterations per binary, alternating",
        args.payload, args.iterations,
    );
    let [current_samples, other_samples] = samples;
    let [current, other] = binaries;
    print(
        &global,
        &heading,
        &AgainstDoc {
            schema: SCHEMA,
            scenario: scenario.map(|(_, s)| s).unwrap_or_default(),
            current,
            other,
            iterations: args.iterations,
            current_samples,
            other_samples,
            comparison,
        },
    )
}
