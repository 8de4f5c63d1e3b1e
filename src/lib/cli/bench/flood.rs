//! `gsp bench flood`: the seed workload over the data plane, against raw TCP.

use std::fmt::Write as _;

use anyhow::Context as _;
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};

use super::BenchArgs;
use crate::{
    bench::{
        self,
        compare::{Comparison, Thresholds, compare},
        config::{BenchConfig, FaultPlan},
        error::BenchError,
        report::{self, LatencyNs, Report, TlsResults},
    },
    cli::{
        GlobalArgs,
        exit::{ExitStatus, NegativeOutcome, UsageError},
        output,
    },
    core::units::HumanBytes,
    transport::config::DataPlaneConfig,
};

/// The allowed worsening per class: the flags where given, else the mode's
/// defaults.
pub(super) fn thresholds(args: &BenchArgs, defaults: Thresholds) -> Thresholds {
    Thresholds {
        timing_pct: args.max_regression.unwrap_or(defaults.timing_pct),
        tail_pct: args.max_p99_regression.unwrap_or(defaults.tail_pct),
        count_pct: args.max_count_regression.unwrap_or(defaults.count_pct),
    }
}

/// The workload as `gsp bench flood` flags, for a child run of another
/// binary (`--against`): only what was given beyond the defaults' meaning.
pub(super) fn config(args: &BenchArgs, global: &GlobalArgs) -> anyhow::Result<BenchConfig> {
    let config = BenchConfig {
        scenario: args.scenario,
        nodes: args.nodes.unwrap_or(bench::config::DEFAULT_NODES),
        messages_per_peer: args.messages_per_peer,
        payload_bytes: args.payload,
        iterations: args.iterations,
        warmup: args.warmup,
        baseline: !args.no_baseline,
        tls: args.tls,
        iteration_timeout: global
            .timeout
            .unwrap_or(bench::config::DEFAULT_ITERATION_TIMEOUT),
        out_dir: (!args.no_write).then(|| args.out.clone()),
        faults: FaultPlan {
            kill_node_after_acks: args.kill_node_after,
        },
        data_plane: tuning(args)?,
    };
    config.validate().map_err(UsageError)?;
    Ok(config)
}

pub(super) async fn run(args: BenchArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    let baseline = match super::baseline(&args, "flood")? {
        Some(b) => Some(report::from_value(b.report, &b.file).map_err(UsageError)?),
        None => None,
    };
    let config = config(&args, &global)?;

    let progress = super::progress(&global);
    let report = match bench::run(&config, progress).await {
        Ok(r) => r,
        Err(
            e @ (BenchError::Send { .. } | BenchError::Timeout { .. } | BenchError::Tcp { .. }),
        ) => {
            return Err(anyhow::Error::new(NegativeOutcome(e.to_string()))
                .context("bench did not complete"));
        }
        Err(e) => return Err(e.into()),
    };
    let written = match &config.out_dir {
        Some(dir) => Some(report::write(&report, dir)?),
        None => None,
    };
    let comparison = match (&baseline, &args.compare) {
        (Some(b), Some(path)) => Some(
            compare(
                b,
                &path.display().to_string(),
                &report,
                thresholds(&args, Thresholds::COMPARE),
            )
            .map_err(UsageError)
            .context("cannot compare")?,
        ),
        _ => None,
    };

    if global.json {
        let mut doc = serde_json::to_value(&report)?;
        if let Some(c) = &comparison {
            doc["comparison"] = serde_json::to_value(c)?;
        }
        output::json(&doc)?;
    } else {
        let mut text = render(&report);
        if let Some(path) = &written {
            let _ = writeln!(text, "report: {}", path.display());
        }
        if let Some(c) = &comparison {
            text.push_str(&render_comparison(c));
        }
        output::stdout(&text)?;
    }
    if let Some(path) = &args.html {
        let mut sides = vec![html_side(&report, "this run")];
        if let (Some(b), Some(file)) = (&baseline, &args.compare) {
            sides.push(html_side(b, &format!("baseline {}", file.display())));
        }
        write_html(path, &html_title(&report), &sides, comparison.as_ref())?;
    }
    match comparison {
        Some(c) if c.regressed => Ok(ExitStatus::Negative),
        _ => Ok(ExitStatus::Success),
    }
}

/// The flood's payload bytes in flight per link.
const FLOOD_IN_FLIGHT_BYTES: u64 = 1 << 20;

/// The data plane settings, with any tuning flags applied. The flood keeps
/// the 1 MiB in-flight budget its baseline was measured with: on loopback a
/// deeper pipe only adds queueing (the node's default is sized for real
/// networks' round trips).
fn tuning(args: &BenchArgs) -> anyhow::Result<DataPlaneConfig> {
    let mut d = DataPlaneConfig {
        max_in_flight_bytes: FLOOD_IN_FLIGHT_BYTES,
        ..DataPlaneConfig::default()
    };
    let u32_flag = |name: &str, v: u64, min: u64, max: u64| -> anyhow::Result<u32> {
        if v < min || v > max {
            return Err(UsageError(format!(
                "{name} must be between {min} and {max} bytes (got {v})"
            ))
            .into());
        }
        Ok(u32::try_from(v).unwrap_or(u32::MAX))
    };
    if let Some(n) = args.max_in_flight {
        if n == 0 {
            return Err(UsageError("--max-in-flight must be at least 1".to_owned()).into());
        }
        d.max_in_flight = n;
    }
    if let Some(b) = args.max_in_flight_bytes {
        if b == 0 {
            return Err(UsageError("--max-in-flight-bytes must be at least 1".to_owned()).into());
        }
        d.max_in_flight_bytes = b;
    }
    if let Some(c) = args.chunk {
        d.max_chunk_bytes = u32_flag("--chunk", c, 1, 16 << 20)? as usize;
    }
    if let Some(f) = args.h2_frame {
        d.h2_max_frame_bytes = u32_flag("--h2-frame", f, 16 << 10, (16 << 20) - 1)?;
    }
    if let Some(w) = args.h2_stream_window {
        d.h2_stream_window_bytes = u32_flag("--h2-stream-window", w, 64 << 10, (1 << 31) - 1)?;
    }
    if let Some(w) = args.h2_conn_window {
        d.h2_connection_window_bytes = u32_flag("--h2-conn-window", w, 64 << 10, (1 << 31) - 1)?;
    }
    Ok(d)
}

/// The human summary of a report.
fn render(r: &Report) -> String {
    let s = &r.scenario;
    let mut out = format!(
        "gsp bench {}: {} nodes full mesh, {} messages per peer, {} payloads, {} iterations (+{} warm-up)\n",
        s.name,
        s.nodes,
        s.messages_per_peer,
        HumanBytes(s.payload_bytes),
        s.iterations,
        s.warmup
    );
    let res = &r.results;
    let b = r.baseline.as_ref();
    let tls = r.tls.as_ref();
    // One column per measured variant: gsp, gsp over TLS (--tls), raw TCP.
    let row = |name: &str, gsp: String, tls_v: Option<String>, tcp: Option<String>| {
        let mut cells = vec![name.to_owned(), gsp];
        if tls.is_some() {
            cells.push(tls_v.unwrap_or_else(|| "-".to_owned()));
        }
        cells.push(tcp.unwrap_or_else(|| "-".to_owned()));
        cells
    };
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY);
    t.set_header(row(
        "",
        "gsp".into(),
        Some("gsp+TLS".into()),
        Some("raw TCP".into()),
    ));
    t.add_row(row(
        "convergence p50",
        ms(res.convergence_ns.p50),
        tls.map(|t| ms(t.convergence_ns.p50)),
        b.map(|b| ms(b.tcp_convergence_ns)),
    ));
    t.add_row(row(
        "throughput",
        rate(res.throughput_bytes_per_sec),
        tls.map(|t| rate(t.throughput_bytes_per_sec)),
        b.map(|b| rate(b.tcp_throughput_bytes_per_sec)),
    ));
    let lat = |name: &str, f: fn(&LatencyNs) -> u64| {
        row(
            &format!("ack {name}"),
            ms(f(&res.ack_latency_ns)),
            tls.map(|t| ms(f(&t.ack_latency_ns))),
            b.map(|b| ms(f(&b.tcp_ack_latency_ns))),
        )
    };
    t.add_row(lat("p50", |l| l.p50));
    t.add_row(lat("p90", |l| l.p90));
    t.add_row(lat("p99", |l| l.p99));
    t.add_row(lat("p99.9", |l| l.p999));
    t.add_row(lat("max", |l| l.max));
    out.push_str(&t.to_string());
    out.push('\n');
    let _ = writeln!(
        out,
        "messages acked {}/{}, {:.0} msgs/s, cpu {:.2} s, peak RSS {}",
        res.messages_acked,
        res.messages_sent,
        res.messages_per_sec,
        res.cpu_seconds,
        HumanBytes(res.peak_rss_bytes)
    );
    if let (Some(n), Some(b)) = (res.allocations_per_message, res.allocated_bytes_per_message) {
        let _ = writeln!(
            out,
            "allocations per message {n:.1} ({:.0} KiB per message)",
            b / 1024.0
        );
    }
    if let Some(p) = &res.per_message {
        out.push_str(&render_per_message(p, res.iterations.len()));
    }
    if let Some(e) = r.efficiency {
        let _ = writeln!(out, "efficiency (gsp / raw TCP throughput): {e:.3}");
    }
    if let Some(t) = tls {
        out.push_str(&render_tls(t, res.cpu_seconds));
    }
    out
}

/// Per-message costs: the median over iterations and the range.
fn render_per_message(p: &report::PerMessageSpread, iterations: usize) -> String {
    let show = |name: &str, s: &report::Spread, scale: f64, unit: &str| {
        format!(
            "{name} {:.1}{unit} ({:.1}-{:.1})",
            s.median / scale,
            s.min / scale,
            s.max / scale
        )
    };
    let mut parts = vec![show("cpu", &p.cpu_ns, 1e3, " us")];
    if let Some(s) = &p.allocations {
        parts.push(show("allocations", s, 1.0, ""));
    }
    if let Some(s) = &p.write_syscalls {
        parts.push(show("writes", s, 1.0, ""));
    }
    if let Some(s) = &p.context_switches {
        parts.push(show("context switches", s, 1.0, ""));
    }
    format!(
        "per message, median (range) over {}: {}\n",
        output::count(iterations as u64, "iteration"),
        parts.join(", ")
    )
}

/// The TLS lines: the ratio and whether it met the target, judged again here
/// so that a miss is never printed as a pass.
fn render_tls(t: &TlsResults, plain_cpu_seconds: f64) -> String {
    let mut out = String::new();
    let met = t.target_met && bench::tls::target_met(t.tls_vs_plaintext);
    let _ = writeln!(
        out,
        "TLS efficiency (gsp+TLS / plaintext gsp throughput): {:.3}, target >= {:.2}: {}",
        t.tls_vs_plaintext,
        t.target,
        if met { "met" } else { "MISSED" }
    );
    let _ = writeln!(
        out,
        "TLS cost: {:.1}% of plaintext throughput (goal at most {:.0}%); cpu {:.2} s with TLS vs {:.2} s without",
        (1.0 - t.tls_vs_plaintext) * 100.0,
        (1.0 - t.target) * 100.0,
        t.cpu_seconds,
        plain_cpu_seconds,
    );
    if let Some(e) = t.efficiency {
        let _ = writeln!(out, "efficiency (gsp+TLS / raw TCP throughput): {e:.3}");
    }
    out
}

/// One side of the HTML page from a report.
pub(super) fn html_side(r: &Report, label: &str) -> bench::html::Side {
    bench::html::Side {
        label: format!("{label} ({})", short_sha(&r.git_sha)),
        latency: report::decode_histogram(&r.results.histogram).ok(),
        convergence_ms: r
            .results
            .iterations
            .iter()
            .map(|i| i.convergence_ns as f64 / 1e6)
            .collect(),
    }
}

fn short_sha(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// The page's heading: the workload.
pub(super) fn html_title(r: &Report) -> String {
    let s = &r.scenario;
    format!(
        "gsp bench {}: {} nodes, {} messages per peer, {} payloads",
        s.name,
        s.nodes,
        s.messages_per_peer,
        HumanBytes(s.payload_bytes)
    )
}

/// Writes the HTML page, naming the file on failure.
pub(super) fn write_html(
    path: &std::path::Path,
    title: &str,
    sides: &[bench::html::Side],
    comparison: Option<&Comparison>,
) -> anyhow::Result<()> {
    let summary = vec![format!(
        "Written by gsp {} ({}) at {}.",
        env!("CARGO_PKG_VERSION"),
        env!("GSP_GIT_SHA"),
        report::timestamp_now()
    )];
    let page = bench::html::page(title, &summary, sides, comparison);
    std::fs::write(path, page).with_context(|| format!("cannot write {}", path.display()))
}

/// The verdict table of a comparison, with its notes.
pub(super) fn render_comparison(c: &Comparison) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY);
    let (base, cur) = if c.mode == "against" {
        ("other", "this")
    } else {
        ("baseline", "current")
    };
    t.set_header(vec![
        "figure",
        base,
        cur,
        "ratio, >1 worse (95% CI)",
        "allowed",
        "verdict",
    ]);
    let mut notes = String::new();
    for row in &c.rows {
        let j = &row.judgement;
        let name = if row.unit.is_empty() {
            row.metric.to_owned()
        } else {
            format!("{} ({})", row.metric, row.unit)
        };
        t.add_row(vec![
            name,
            format!("{:.4}", row.baseline),
            format!("{:.4}", row.current),
            format!("{:.3} ({:.3}-{:.3})", j.worse_ratio, j.ci_low, j.ci_high),
            format!("+{}%", j.max_worse_pct),
            j.verdict.label().to_owned(),
        ]);
        if let Some(n) = &j.note {
            let _ = writeln!(notes, "  {}: {n}", row.metric);
        }
    }
    let mut out = format!(
        "{} {} ({}, {} samples):\n{t}\n",
        if c.mode == "against" {
            "against"
        } else {
            "compared with"
        },
        c.baseline_file,
        if c.paired { "paired" } else { "independent" },
        c.rows.first().map_or(0, |r| r.judgement.current_samples)
    );
    out.push_str(&notes);
    if !c.not_judged.is_empty() {
        let _ = writeln!(
            out,
            "not judged (one side did not measure them): {}",
            c.not_judged.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "verdict: {}",
        match c.verdict {
            bench::verdict::Verdict::Ok => "ok",
            bench::verdict::Verdict::Regressed => "REGRESSED (exit 1)",
            bench::verdict::Verdict::Inconclusive =>
                "inconclusive: no figure regressed beyond the noise, some could not be decided (see the notes)",
        }
    );
    out
}

fn ms(ns: u64) -> String {
    format!("{:.2} ms", ns as f64 / 1e6)
}

fn rate(bytes_per_sec: f64) -> String {
    format!("{:.1} MiB/s", bytes_per_sec / f64::from(1u32 << 20))
}
