//! `--compare FILE --max-regression PCT`: judges a run against a baseline report
//! on the figures that survive noisy machines: efficiency (gsp / raw TCP in the
//! same run), ACK p99, and heap allocations per message (deterministic: the same
//! on every machine and run, so a small threshold catches extra copies and
//! buffers that timing noise hides).

pub mod figures;

use serde::Serialize;

use super::report::Report;

/// One judged metric.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Metric name.
    pub metric: &'static str,
    /// Value in the baseline report.
    pub baseline: f64,
    /// Value in this run.
    pub current: f64,
    /// Change in percent, signed so that positive is worse.
    pub worse_by_pct: f64,
    /// Whether it regressed beyond the threshold.
    pub regressed: bool,
}

/// The verdict of a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The baseline file.
    pub baseline_file: String,
    /// Allowed efficiency regression in percent.
    pub max_regression_pct: f64,
    /// Allowed ACK p99 regression in percent.
    pub max_p99_regression_pct: f64,
    /// Each judged metric.
    pub rows: Vec<Row>,
    /// Whether any metric regressed.
    pub regressed: bool,
}

/// Compares `current` against `baseline`: efficiency may drop by at most
/// `max_regression_pct`, ACK p99 may grow by at most `max_p99_regression_pct`.
///
/// # Errors
/// The two reports ran different workloads, or either lacks an efficiency figure.
pub fn compare(
    baseline: &Report,
    baseline_file: &str,
    current: &Report,
    max_regression_pct: f64,
    max_p99_regression_pct: f64,
) -> Result<Comparison, String> {
    let (b, c) = (&baseline.scenario, &current.scenario);
    if (
        b.name.as_str(),
        b.nodes,
        b.messages_per_peer,
        b.payload_bytes,
    ) != (
        c.name.as_str(),
        c.nodes,
        c.messages_per_peer,
        c.payload_bytes,
    ) {
        return Err(format!(
            "{baseline_file} measured {} with {} nodes, {} messages per peer, {} byte payloads; \
             this run measured {} with {} nodes, {} messages per peer, {} byte payloads; \
             rerun with the baseline's workload",
            b.name,
            b.nodes,
            b.messages_per_peer,
            b.payload_bytes,
            c.name,
            c.nodes,
            c.messages_per_peer,
            c.payload_bytes
        ));
    }
    let Some(base_eff) = baseline.efficiency else {
        return Err(format!(
            "{baseline_file} has no efficiency figure (it was run with --no-baseline)"
        ));
    };
    let Some(cur_eff) = current.efficiency else {
        return Err("this run has no efficiency figure; drop --no-baseline to compare".to_owned());
    };
    let eff_worse = pct_change(base_eff, cur_eff, true);
    // The typical iteration's p99 where the reports have them: one iteration
    // caught in a host stall (a 135 ms p99.9 in one CI run, raw TCP unaffected,
    // 15 ms on three reruns of the same code) should not decide the gate,
    // while a tail that grew in every iteration still does.
    let base_p99 = iteration_p99(baseline).unwrap_or(baseline.results.ack_latency_ns.p99) as f64;
    let cur_p99 = iteration_p99(current).unwrap_or(current.results.ack_latency_ns.p99) as f64;
    let p99_worse = pct_change(base_p99, cur_p99, false);
    let rows = vec![
        Row {
            metric: "efficiency",
            baseline: base_eff,
            current: cur_eff,
            worse_by_pct: eff_worse,
            regressed: eff_worse > max_regression_pct,
        },
        Row {
            metric: "ack_latency_p99_ns",
            baseline: base_p99,
            current: cur_p99,
            worse_by_pct: p99_worse,
            regressed: p99_worse > max_p99_regression_pct,
        },
    ];
    let mut rows = rows;
    if let (Some(b), Some(c)) = (
        baseline.results.allocations_per_message,
        current.results.allocations_per_message,
    ) {
        let worse = pct_change(b, c, false);
        rows.push(Row {
            metric: "allocations_per_message",
            baseline: b,
            current: c,
            worse_by_pct: worse,
            regressed: worse > MAX_ALLOCATION_GROWTH_PCT,
        });
    }
    let regressed = rows.iter().any(|r| r.regressed);
    Ok(Comparison {
        baseline_file: baseline_file.to_owned(),
        max_regression_pct,
        max_p99_regression_pct,
        rows,
        regressed,
    })
}

/// Allowed growth of allocations per message, in percent. The figure does not
/// depend on the machine (27.8 at 1 KiB to 1 MiB payloads, every run so far),
/// so any growth is a code change; 10% leaves room for a new allocation or two.
pub const MAX_ALLOCATION_GROWTH_PCT: f64 = 10.0;

/// How much worse `current` is than `base`, in percent (negative: better).
/// The median over iterations of each iteration's ACK p99, when every
/// iteration recorded one.
fn iteration_p99(r: &Report) -> Option<u64> {
    let v: Option<Vec<u64>> = r.results.iterations.iter().map(|i| i.ack_p99_ns).collect();
    let v = v.filter(|v| !v.is_empty())?;
    Some(super::report::median(&v))
}

fn pct_change(base: f64, current: f64, higher_is_better: bool) -> f64 {
    if base <= 0.0 {
        return 0.0;
    }
    let change = (current - base) / base * 100.0;
    if higher_is_better { -change } else { change }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{
        report::{ConvergenceNs, LatencyNs, Results, ScenarioInfo, Tuning},
        sys::HostInfo,
    };

    fn report(eff: f64, p99: u64, nodes: usize) -> Report {
        let lat = LatencyNs {
            min: 1,
            p50: 1,
            p90: 1,
            p99,
            p999: p99,
            max: p99,
            mean: 1.0,
        };
        Report {
            schema: crate::bench::report::SCHEMA.into(),
            scenario: ScenarioInfo {
                name: "flood".into(),
                nodes,
                messages_per_peer: 30,
                payload_bytes: 1,
                iterations: 5,
                warmup: 1,
            },
            results: Results {
                messages_sent: 1,
                messages_acked: 1,
                errors: 0,
                ack_latency_ns: lat,
                convergence_ns: ConvergenceNs {
                    min: 1,
                    p50: 1,
                    max: 1,
                },
                throughput_bytes_per_sec: 1.0,
                messages_per_sec: 1.0,
                cpu_seconds: 1.0,
                peak_rss_bytes: 1,
                allocations_per_message: None,
                allocated_bytes_per_message: None,
                per_message: None,
                histogram: String::new(),
                iterations: vec![],
            },
            baseline: None,
            efficiency: Some(eff),
            tls: None,
            tuning: Tuning {
                max_chunk_bytes: 1,
                h2_max_frame_bytes: 1,
                h2_stream_window_bytes: 1,
                h2_connection_window_bytes: 1,
                max_in_flight: 1,
                max_in_flight_bytes: 1,
            },
            gsp_version: String::new(),
            git_sha: String::new(),
            timestamp: String::new(),
            host: HostInfo {
                cpu_model: String::new(),
                cores: 1,
                kernel: String::new(),
                os: String::new(),
            },
        }
    }

    #[test]
    fn flags_a_drop_in_efficiency_beyond_the_threshold() {
        let c = compare(
            &report(0.5, 100, 4),
            "b.json",
            &report(0.35, 100, 4),
            20.0,
            20.0,
        )
        .unwrap();
        assert!(c.regressed);
        assert!(c.rows[0].regressed);
        assert!((c.rows[0].worse_by_pct - 30.0).abs() < 1e-9);
        assert!(!c.rows[1].regressed);
    }

    #[test]
    fn flags_more_allocations_per_message_whatever_the_timing() {
        let with_allocs = |eff: f64, allocs: f64| {
            let mut r = report(eff, 100, 4);
            r.results.allocations_per_message = Some(allocs);
            r
        };
        // A slower run with the same allocations passes; one more allocation
        // per message (27.8 -> 31) fails even on a fast run.
        let c = compare(
            &with_allocs(0.9, 27.8),
            "b.json",
            &with_allocs(0.45, 27.8),
            70.0,
            400.0,
        )
        .unwrap();
        assert!(!c.regressed, "{:?}", c.rows);
        let c = compare(
            &with_allocs(0.9, 27.8),
            "b.json",
            &with_allocs(0.95, 31.0),
            70.0,
            400.0,
        )
        .unwrap();
        assert!(c.regressed);
        assert_eq!(c.rows[2].metric, "allocations_per_message");
        assert!(c.rows[2].regressed);
    }

    #[test]
    fn flags_a_rise_in_p99_and_accepts_improvements() {
        let c = compare(
            &report(0.5, 100, 4),
            "b.json",
            &report(0.6, 150, 4),
            20.0,
            20.0,
        )
        .unwrap();
        assert!(c.regressed);
        assert!(!c.rows[0].regressed);
        assert!(c.rows[1].regressed);
        let c = compare(
            &report(0.5, 100, 4),
            "b.json",
            &report(0.45, 110, 4),
            20.0,
            20.0,
        )
        .unwrap();
        assert!(!c.regressed);
        // A separate, looser p99 threshold.
        let c = compare(
            &report(0.5, 100, 4),
            "b.json",
            &report(0.5, 250, 4),
            20.0,
            200.0,
        )
        .unwrap();
        assert!(!c.regressed);
    }

    #[test]
    fn refuses_different_workloads() {
        let err =
            compare(&report(0.5, 1, 4), "b.json", &report(0.5, 1, 8), 20.0, 20.0).unwrap_err();
        assert!(err.contains("4 nodes") && err.contains("8 nodes"), "{err}");
    }

    fn with_iteration_p99s(aggregate: u64, p99s: &[u64]) -> Report {
        let mut r = report(0.5, aggregate, 4);
        r.results.iterations = p99s
            .iter()
            .map(|&p| crate::bench::report::IterationSummary {
                convergence_ns: 1,
                throughput_bytes_per_sec: 1.0,
                tcp_convergence_ns: None,
                tls_convergence_ns: None,
                ack_p99_ns: Some(p),
                per_message: None,
            })
            .collect();
        r
    }

    #[test]
    fn one_stalled_iteration_does_not_decide_the_p99_gate_but_a_tail_grown_everywhere_does() {
        let base = report(0.5, 100, 4);
        // One iteration's stall drove the aggregate p99 up 8x; the others
        // are as fast as the baseline.
        let stalled = with_iteration_p99s(800, &[100, 110, 90, 2000, 105]);
        let c = compare(&base, "b.json", &stalled, 20.0, 400.0).unwrap();
        assert!(!c.regressed, "{:?}", c.rows);
        assert!((c.rows[1].current - 105.0).abs() < f64::EPSILON);
        // Every iteration slower: the median moves, the gate trips.
        let slower = with_iteration_p99s(800, &[700, 650, 800, 720, 690]);
        let c = compare(&base, "b.json", &slower, 20.0, 400.0).unwrap();
        assert!(c.rows[1].regressed, "{:?}", c.rows);
    }
}
