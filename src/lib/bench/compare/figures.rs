//! `--compare` for the reports other than the flood's: each kind names the
//! figures a regression shows in (with which way is better), and a run is
//! judged against a baseline of the same kind and workload only.
//!
//! A figure may worsen by at most `--max-regression` percent. Counts that
//! must stay at zero (timed-out broadcasts, healthy nodes declared dead)
//! regress on any rise, and a phase that completed in the baseline but
//! never in this run (`null`: a partition that never healed) regresses too.
//!
//! These reports hold one value per figure, not one per iteration, so the
//! verdicts follow what one value can show. The simulations (`sim`,
//! `membership-sim`) are seeded and run in simulated time: the same code
//! gives the same figures, so one value is exact and a worse one is
//! `regressed`. The runs on real sockets (`broadcast`, `membership`,
//! `resources`) move with the host: a timing beyond the threshold is
//! `inconclusive` (one value a side cannot be told from the host's noise),
//! while a zero count that rose or a phase that never completed is
//! `regressed`.

use serde::Serialize;
use serde_json::Value;

pub use crate::bench::verdict::Better;
use crate::bench::verdict::Verdict;

/// One figure of a report kind.
#[derive(Debug, Clone, Copy)]
pub struct Figure {
    /// What the table calls it.
    pub name: &'static str,
    /// Where it is in the report (a JSON pointer).
    pub pointer: &'static str,
    /// Which way is better.
    pub better: Better,
    /// A count that must not rise at all.
    pub exact: bool,
    /// Moves with the host even in a seeded simulation (wall time).
    pub host: bool,
}

const fn lower(name: &'static str, pointer: &'static str) -> Figure {
    Figure {
        name,
        pointer,
        better: Better::Lower,
        exact: false,
        host: false,
    }
}

const fn higher(name: &'static str, pointer: &'static str) -> Figure {
    Figure {
        name,
        pointer,
        better: Better::Higher,
        exact: false,
        host: false,
    }
}

const fn zero(name: &'static str, pointer: &'static str) -> Figure {
    Figure {
        name,
        pointer,
        better: Better::Lower,
        exact: true,
        host: false,
    }
}

const fn wall(name: &'static str, pointer: &'static str) -> Figure {
    Figure {
        name,
        pointer,
        better: Better::Lower,
        exact: false,
        host: true,
    }
}

const BROADCAST: &[Figure] = &[
    lower("convergence p50 (ns)", "/results/convergence_ns/p50"),
    lower("convergence p99 (ns)", "/results/convergence_ns/p99"),
    higher("goodput (B/s)", "/results/goodput_bytes_per_sec"),
    lower("payload copies per delivery", "/results/payload_copy_ratio"),
    lower(
        "receipt messages per delivery",
        "/results/receipt_messages_per_delivery",
    ),
    lower("CPU (s)", "/results/cpu_secs"),
    zero("timed out", "/results/timed_out"),
];

const MEMBERSHIP: &[Figure] = &[
    lower("join (rounds)", "/results/join_rounds"),
    lower("detection p50 (rounds)", "/results/detection_rounds/p50"),
    lower("detection max (rounds)", "/results/detection_rounds/max"),
    lower(
        "traffic per node (B/s)",
        "/results/traffic_bytes_per_sec_per_node",
    ),
    lower("CPU (s)", "/results/cpu_seconds"),
    lower("peak RSS (bytes)", "/results/peak_rss_bytes"),
    zero("healthy declared dead", "/results/false_positives"),
];

const MEMBERSHIP_SIM: &[Figure] = &[
    lower("join (rounds)", "/results/join_rounds"),
    lower("settled (rounds)", "/results/settle_rounds"),
    lower(
        "idle bytes per node per round",
        "/results/idle_bytes_per_node_per_round",
    ),
    lower(
        "idle messages per node per round",
        "/results/idle_messages_per_node_per_round",
    ),
    lower("crash detected (rounds)", "/results/detection_rounds"),
    lower("partition listed dead (rounds)", "/results/split_rounds"),
    lower("partition healed (rounds)", "/results/heal_rounds"),
    wall("wall time (s)", "/wall_secs"),
    zero("healthy declared dead", "/results/false_positives"),
];

const SIM: &[Figure] = &[
    lower("completion (ms)", "/results/completion_ms"),
    lower("ratio to floor", "/results/ratio_to_floor"),
    lower("origin upload (bytes)", "/results/origin_bytes"),
    lower("busiest node upload (bytes)", "/results/max_node_bytes"),
    lower("copy ratio", "/results/copy_ratio"),
    wall("wall time (s)", "/results/wall_secs"),
];

const RESOURCES: &[Figure] = &[
    lower("query p50 (ns)", "/results/query_latency_ns/p50"),
    lower("query p99 (ns)", "/results/query_latency_ns/p99"),
    lower("probe tick CPU (ms)", "/results/probe_tick_cpu_ms"),
    lower("NVML tick CPU (ms)", "/results/nvml_tick_cpu_ms"),
    lower("GPU job start p50 (ns)", "/results/gpu_job_start_ns/p50"),
    lower("job start p50 (ns)", "/results/plain_job_start_ns/p50"),
    lower("idle CPU per node (%)", "/results/idle_cpu_pct_per_node"),
];

/// The figures judged for reports of `kind` (the scenario's name), or `None`
/// for a kind compared elsewhere (flood) or unknown.
pub fn of(kind: &str) -> Option<&'static [Figure]> {
    match kind {
        "broadcast" => Some(BROADCAST),
        "membership" => Some(MEMBERSHIP),
        "membership-sim" => Some(MEMBERSHIP_SIM),
        "sim" => Some(SIM),
        "resources" => Some(RESOURCES),
        _ => None,
    }
}

/// Scenario keys that may differ between runs compared: how long or how
/// often a workload ran, not what it was.
const FREE_KEYS: [&str; 3] = ["iterations", "warmup", "duration_secs"];

/// One judged figure.
#[derive(Debug, Clone, Serialize)]
pub struct FigureRow {
    /// The figure.
    pub figure: &'static str,
    /// In the baseline (null: never reached).
    pub baseline: Option<f64>,
    /// In this run (null: never reached).
    pub current: Option<f64>,
    /// Change in percent, positive when worse (null when either is null).
    pub worse_by_pct: Option<f64>,
    /// ok, regressed or inconclusive.
    pub verdict: Verdict,
    /// Whether the verdict is `regressed`.
    pub regressed: bool,
    /// Why, when it is not plain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
}

/// A report judged against its baseline.
#[derive(Debug, Clone, Serialize)]
pub struct FigureComparison {
    /// The baseline file.
    pub baseline_file: String,
    /// The report kind.
    pub kind: String,
    /// How much worse a figure may get, in percent.
    pub max_regression_pct: f64,
    /// Each figure both reports have.
    pub rows: Vec<FigureRow>,
    /// Figures of this kind the baseline lacks (an older report), not judged.
    pub not_in_baseline: Vec<&'static str>,
    /// `regressed` if any figure is, else `inconclusive` if any is, else `ok`.
    pub verdict: Verdict,
    /// Whether any figure regressed.
    pub regressed: bool,
}

/// Whether reports of `kind` come from a seeded simulation, whose figures
/// are the same on every run of the same code.
fn deterministic(kind: &str) -> bool {
    matches!(kind, "sim" | "membership-sim")
}

/// The scenario's name, `"?"` when it has none.
pub fn kind_of(report: &Value) -> &str {
    report["scenario"]["name"].as_str().unwrap_or("?")
}

/// Judges `current` against `baseline` (both whole `gsp.bench.v1` reports).
///
/// # Errors
/// The baseline is not a bench report, or of another kind or workload: the
/// message says which and what to compare instead.
pub fn compare(
    baseline: &Value,
    baseline_file: &str,
    current: &Value,
    max_regression_pct: f64,
) -> Result<FigureComparison, String> {
    if baseline["schema"] != "gsp.bench.v1" {
        return Err(format!(
            "{baseline_file} is not a gsp bench report (no \"schema\": \"gsp.bench.v1\")"
        ));
    }
    let (bk, ck) = (kind_of(baseline), kind_of(current));
    if bk != ck {
        return Err(format!(
            "{baseline_file} is a {bk} report and this run is {ck}: compare like with like \
             (gsp bench {bk} --compare {baseline_file})"
        ));
    }
    let figures = of(ck).ok_or_else(|| format!("{ck} reports have no figures to compare"))?;
    let differ = differing_keys(&baseline["scenario"], &current["scenario"]);
    if !differ.is_empty() {
        return Err(format!(
            "{baseline_file} ran another workload ({}): run this one with the baseline's settings",
            differ.join(", ")
        ));
    }
    let mut rows = Vec::new();
    let mut not_in_baseline = Vec::new();
    for f in figures {
        let (Some(b), Some(c)) = (baseline.pointer(f.pointer), current.pointer(f.pointer)) else {
            not_in_baseline.push(f.name);
            continue;
        };
        rows.push(judge(
            f,
            b.as_f64(),
            c.as_f64(),
            max_regression_pct,
            deterministic(ck) && !f.host,
        ));
    }
    let verdict = Verdict::overall(rows.iter().map(|r| r.verdict));
    Ok(FigureComparison {
        baseline_file: baseline_file.to_owned(),
        kind: ck.to_owned(),
        max_regression_pct,
        rows,
        not_in_baseline,
        verdict,
        regressed: verdict == Verdict::Regressed,
    })
}

/// `key: baseline -> current` for each scenario key (other than
/// [`FREE_KEYS`]) whose values differ.
pub(crate) fn differing_keys(b: &Value, c: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (bo, co) = (
        b.as_object().unwrap_or(&empty),
        c.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&String> = bo.keys().chain(co.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !FREE_KEYS.contains(&k.as_str()))
        .filter(|k| bo.get(*k) != co.get(*k))
        .map(|k| {
            let show = |v: Option<&Value>| v.map_or_else(|| "absent".to_owned(), Value::to_string);
            format!("{k}: {} -> {}", show(bo.get(k)), show(co.get(k)))
        })
        .collect()
}

/// What one value a side can say about a figure.
fn judge(f: &Figure, b: Option<f64>, c: Option<f64>, max_pct: f64, exact_run: bool) -> FigureRow {
    let (worse_by_pct, beyond) = match (b, c) {
        (Some(b), Some(c)) => {
            let worse = match f.better {
                Better::Lower => c - b,
                Better::Higher => b - c,
            };
            let pct = if b.abs() > f64::EPSILON {
                worse / b.abs() * 100.0
            } else if worse > 0.0 {
                f64::INFINITY
            } else {
                0.0
            };
            let regressed = if f.exact { worse > 0.0 } else { pct > max_pct };
            (pct.is_finite().then_some(pct), regressed)
        }
        // Reached in the baseline, never in this run.
        (Some(_), None) => (None, true),
        _ => (None, false),
    };
    let failed = f.exact || c.is_none();
    let (verdict, note) = match (beyond, exact_run || failed) {
        (false, _) => (Verdict::Ok, None),
        (true, true) => (Verdict::Regressed, None),
        (true, false) => (
            Verdict::Inconclusive,
            Some(
                "beyond the threshold in one run a side, which the host's noise can do: \
                 rerun both to see whether it holds",
            ),
        ),
    };
    FigureRow {
        figure: f.name,
        baseline: b,
        current: c,
        worse_by_pct,
        regressed: verdict == Verdict::Regressed,
        verdict,
        note,
    }
}

/// The comparison as a table for people.
pub fn render(c: &FigureComparison) -> String {
    use std::fmt::Write as _;
    let show = |v: Option<f64>| {
        v.map_or_else(
            || "never".to_owned(),
            |v| {
                if v.fract() == 0.0 && v.abs() < 1e15 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.3}")
                }
            },
        )
    };
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_BORDERS_ONLY);
    t.set_header(["figure", "baseline", "this run", "worse by", "verdict"]);
    for r in &c.rows {
        t.add_row([
            r.figure.to_owned(),
            show(r.baseline),
            show(r.current),
            r.worse_by_pct
                .map_or_else(|| "-".to_owned(), |p| format!("{p:+.1}%")),
            r.verdict.label().to_owned(),
        ]);
    }
    let mut s = format!(
        "compared with {} ({} report; a figure may worsen by {}%, counts that must stay 0 by nothing):\n{t}\n",
        c.baseline_file, c.kind, c.max_regression_pct
    );
    if !c.not_in_baseline.is_empty() {
        let _ = writeln!(
            s,
            "not in the baseline, not judged: {}",
            c.not_in_baseline.join(", ")
        );
    }
    for r in c.rows.iter().filter(|r| r.note.is_some()) {
        let _ = writeln!(s, "  {}: {}", r.figure, r.note.unwrap_or_default());
    }
    let _ = writeln!(
        s,
        "verdict: {}",
        match c.verdict {
            Verdict::Ok => "ok",
            Verdict::Regressed => "REGRESSED (exit 1)",
            Verdict::Inconclusive => "inconclusive (see the notes)",
        }
    );
    s
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sim(nodes: u64, join: Option<u64>, false_positives: u64, wall: f64) -> Value {
        json!({
            "schema": "gsp.bench.v1",
            "scenario": {"name": "membership-sim", "nodes": nodes, "seed": 1},
            "results": {"join_rounds": join, "settle_rounds": 6, "false_positives": false_positives,
                        "idle_bytes_per_node_per_round": 256.0, "heal_rounds": 12},
            "wall_secs": wall,
        })
    }

    #[test]
    fn like_with_like_within_the_threshold_passes() {
        let c = compare(
            &sim(100, Some(3), 0, 10.0),
            "b.json",
            &sim(100, Some(3), 0, 11.0),
            20.0,
        )
        .unwrap();
        assert!(!c.regressed, "{c:?}");
        // Figures an older report lacks are said, not judged.
        assert!(c.not_in_baseline.contains(&"crash detected (rounds)"));
    }

    #[test]
    fn slower_or_a_new_false_death_regresses() {
        // More rounds in a seeded simulation: exact, so regressed.
        let mut slower = sim(100, Some(3), 0, 10.0);
        slower["results"]["settle_rounds"] = json!(9);
        let c = compare(&sim(100, Some(3), 0, 10.0), "b.json", &slower, 20.0).unwrap();
        assert!(c.regressed);
        // A longer wall time moves with the host: one run a side cannot
        // tell, so it is inconclusive, not regressed.
        let c = compare(
            &sim(100, Some(3), 0, 10.0),
            "b.json",
            &sim(100, Some(3), 0, 13.0),
            20.0,
        )
        .unwrap();
        assert!(!c.regressed, "{c:?}");
        assert_eq!(c.verdict, Verdict::Inconclusive);
        assert!(render(&c).contains("verdict: inconclusive"));
        let c = compare(
            &sim(100, Some(3), 0, 10.0),
            "b.json",
            &sim(100, Some(3), 1, 10.0),
            20.0,
        )
        .unwrap();
        assert!(c.regressed);
        // A phase that never completed regresses.
        let c = compare(
            &sim(100, Some(3), 0, 10.0),
            "b.json",
            &sim(100, None, 0, 10.0),
            20.0,
        )
        .unwrap();
        assert!(c.regressed);
        assert!(render(&c).contains("never"));
    }

    #[test]
    fn a_measured_report_is_inconclusive_on_timings_and_regressed_on_failures() {
        let broadcast = |p50: f64, timed_out: u64| {
            json!({
                "schema": "gsp.bench.v1",
                "scenario": {"name": "broadcast", "nodes": 4},
                "results": {"convergence_ns": {"p50": p50}, "timed_out": timed_out},
            })
        };
        let c = compare(&broadcast(10.0, 0), "b.json", &broadcast(30.0, 0), 20.0).unwrap();
        assert_eq!(c.verdict, Verdict::Inconclusive, "{c:?}");
        assert!(c.rows[0].note.is_some());
        let c = compare(&broadcast(10.0, 0), "b.json", &broadcast(10.0, 2), 20.0).unwrap();
        assert_eq!(c.verdict, Verdict::Regressed, "{c:?}");
    }

    #[test]
    fn unlike_kinds_and_workloads_are_refused_naming_the_difference() {
        let mut other = sim(100, Some(3), 0, 10.0);
        other["scenario"]["name"] = json!("sim");
        let e = compare(&other, "b.json", &sim(100, Some(3), 0, 10.0), 20.0).unwrap_err();
        assert!(
            e.contains("b.json is a sim report and this run is membership-sim"),
            "{e}"
        );
        let e = compare(
            &sim(200, Some(3), 0, 10.0),
            "b.json",
            &sim(100, Some(3), 0, 10.0),
            20.0,
        )
        .unwrap_err();
        assert!(e.contains("nodes: 200 -> 100"), "{e}");
        let e = compare(
            &json!({"x": 1}),
            "b.json",
            &sim(100, Some(3), 0, 10.0),
            20.0,
        )
        .unwrap_err();
        assert!(e.contains("not a gsp bench report"), "{e}");
    }
}
