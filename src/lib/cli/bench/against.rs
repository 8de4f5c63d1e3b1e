//! `gsp bench --against PATH`: this binary against another on the same
//! flood, in one run. Iteration `i` runs `gsp bench flood --iterations 1`
//! once with each binary, back to back (this one first on even iterations,
//! the other first on odd ones, so neither always runs on a warmer host),
//! and each figure is judged on the pairs (`bench::compare`).
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
        compare::{self, Comparison, FIGURES, Thresholds},
        html::Side,
        report::{self, Report},
        verdict::Pairing,
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
    scenario: report::ScenarioInfo,
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
/// killed and the run ends, naming it.
async fn child(
    binary: &Path,
    argv: &[String],
    global: &GlobalArgs,
    limit: Duration,
) -> anyhow::Result<Report> {
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
    if !out.status.success() {
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
    let value: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| NegativeOutcome(format!("{name} printed no JSON report: {e}")))?;
    report::from_value(value, &name).map_err(|e| NegativeOutcome(e).into())
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

pub(super) async fn run(args: BenchArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    let Some(other) = args.against.clone() else {
        return Err(UsageError("--against needs a path".to_owned()).into());
    };
    if args.tls {
        return Err(
            UsageError("--against runs the plaintext flood only; drop --tls".to_owned()).into(),
        );
    }
    if args.iterations == 0 {
        return Err(UsageError("--iterations must be at least 1".to_owned()).into());
    }
    // The workload is checked here, before any child runs.
    let config = flood::config(&args, &global)?;
    let this: PathBuf = match &args.binary {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("cannot find this gsp binary")?,
    };
    let binaries = [
        Binary {
            version: version_of(&this).await?,
            path: this.display().to_string(),
        },
        Binary {
            version: version_of(&other).await?,
            path: other.display().to_string(),
        },
    ];
    let paths = [this.as_path(), other.as_path()];
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
            let r = child(paths[side], &command_line, &global, limit).await?;
            for (k, f) in FIGURES.iter().enumerate() {
                values[side][k].push(f.value(&r));
            }
            convergence[side].push(r.results.convergence_ns.p50 as f64 / 1e6);
            merge_latency(&mut latency[side], &r);
            let first = scenario.get_or_insert_with(|| (side, r.scenario.clone()));
            let key = |s: &report::ScenarioInfo| {
                (
                    s.name.clone(),
                    s.nodes,
                    s.messages_per_peer,
                    s.payload_bytes,
                )
            };
            if key(&first.1) != key(&r.scenario) {
                return Err(NegativeOutcome(format!(
                    "{} and {} ran different workloads ({:?} against {:?}): \
                     they cannot be compared",
                    binaries[first.0].path,
                    binaries[side].path,
                    key(&first.1),
                    key(&r.scenario)
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
    let regressed = comparison.regressed;
    if global.json {
        let named = |s: &[Vec<f64>]| {
            FIGURES
                .iter()
                .zip(s)
                .filter(|(_, v)| !v.is_empty())
                .map(|(f, v)| (f.metric.to_owned(), serde_json::json!(v)))
                .collect()
        };
        let [current_bin, other_bin] = binaries;
        output::json(&AgainstDoc {
            schema: SCHEMA,
            scenario,
            current: current_bin,
            other: other_bin,
            iterations: args.iterations,
            current_samples: named(&current),
            other_samples: named(&theirs),
            comparison,
        })?;
    } else {
        let mut text = format!(
            "gsp bench flood --against: {} nodes, {} messages per peer, {} byte payloads; \
             {} iterations per binary, alternating\nthis:  {} ({})\nother: {} ({})\n",
            scenario.nodes,
            scenario.messages_per_peer,
            scenario.payload_bytes,
            args.iterations,
            binaries[0].version,
            binaries[0].path,
            binaries[1].version,
            binaries[1].path
        );
        text.push_str(&flood::render_comparison(&comparison));
        output::stdout(&text)?;
    }
    Ok(if regressed {
        ExitStatus::Negative
    } else {
        ExitStatus::Success
    })
}
