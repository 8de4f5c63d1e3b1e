//! `gsp bench --html FILE`: the flood's report as one static page that opens
//! offline: the ACK-latency distribution of each side (histogram and CDF),
//! each iteration's convergence, and the verdict table of `--compare` or
//! `--against`.
//!
//! The charts are inline SVG written here: three plots of lines and dots on
//! log or linear axes need no plotting crate, its fonts or its build time.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::{compare::Comparison, verdict::Verdict};

/// One side of the page: this run, a baseline report or another binary.
#[derive(Debug)]
pub struct Side {
    /// What the legend calls it.
    pub label: String,
    /// Its ACK latencies, nanoseconds (absent when the report has none).
    pub latency: Option<Histogram<u64>>,
    /// Each counted iteration's convergence, milliseconds.
    pub convergence_ms: Vec<f64>,
}

const COLOURS: [&str; 3] = ["#1f77b4", "#d62728", "#2ca02c"];
const W: f64 = 640.0;
const H: f64 = 300.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 45.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A plot area mapping data to pixels.
struct Axes {
    x: (f64, f64),
    y: (f64, f64),
    log_x: bool,
}

impl Axes {
    fn px(&self, x: f64) -> f64 {
        let (a, b, v) = if self.log_x {
            (self.x.0.log10(), self.x.1.log10(), x.max(self.x.0).log10())
        } else {
            (self.x.0, self.x.1, x)
        };
        let span = if (b - a).abs() < f64::EPSILON {
            1.0
        } else {
            b - a
        };
        LEFT + (v - a) / span * (W - LEFT - RIGHT)
    }
    fn py(&self, y: f64) -> f64 {
        let span = if (self.y.1 - self.y.0).abs() < f64::EPSILON {
            1.0
        } else {
            self.y.1 - self.y.0
        };
        H - BOTTOM - (y - self.y.0) / span * (H - TOP - BOTTOM)
    }

    /// The frame, ticks and labels.
    fn frame(&self, svg: &mut String, x_label: &str, y_label: &str, y_ticks: &[f64]) {
        let _ = write!(
            svg,
            r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
            W - LEFT - RIGHT,
            H - TOP - BOTTOM
        );
        for &t in &self.x_ticks() {
            let x = self.px(t);
            let _ = write!(
                svg,
                r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{TOP}" stroke="#eee"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
                H - BOTTOM,
                H - BOTTOM + 15.0,
                tick(t)
            );
        }
        for &t in y_ticks {
            let y = self.py(t);
            let _ = write!(
                svg,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                W - RIGHT,
                LEFT - 5.0,
                y + 4.0,
                tick(t)
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text><text transform="translate(14,{}) rotate(-90)" text-anchor="middle">{}</text>"#,
            (LEFT + W - RIGHT) / 2.0,
            H - 8.0,
            esc(x_label),
            (TOP + H - BOTTOM) / 2.0,
            esc(y_label)
        );
    }

    fn x_ticks(&self) -> Vec<f64> {
        if self.log_x {
            let mut t = Vec::new();
            let mut d = 10f64.powf(self.x.0.log10().floor());
            while d <= self.x.1 * 1.0001 {
                if d >= self.x.0 * 0.9999 {
                    t.push(d);
                }
                d *= 10.0;
            }
            t
        } else {
            linear_ticks(self.x.0, self.x.1)
        }
    }
}

/// About five round ticks from `lo` to `hi`.
fn linear_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(f64::EPSILON);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut t = Vec::new();
    let mut v = (lo / step).ceil() * step;
    while v <= hi + step * 1e-9 {
        t.push(v);
        v += step;
    }
    t
}

fn tick(v: f64) -> String {
    if v == 0.0 {
        "0".to_owned()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    }
}

fn legend(svg: &mut String, sides: &[&Side]) {
    for (k, s) in sides.iter().enumerate() {
        let y = TOP + 14.0 + 16.0 * k as f64;
        let _ = write!(
            svg,
            r#"<rect x="{}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            LEFT + 10.0,
            y - 9.0,
            COLOURS[k % COLOURS.len()],
            LEFT + 25.0,
            y,
            esc(&s.label)
        );
    }
}

fn open_svg(title: &str) -> String {
    format!(
        r#"<figure><figcaption>{}</figcaption><svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" font-size="11" font-family="sans-serif" role="img">"#,
        esc(title)
    )
}

/// Log-spaced bucket edges in ms covering every side's latencies.
fn latency_range(sides: &[&Side]) -> Option<(f64, f64)> {
    let mut lo = f64::INFINITY;
    let mut hi = 0f64;
    for h in sides.iter().filter_map(|s| s.latency.as_ref()) {
        if h.is_empty() {
            continue;
        }
        lo = lo.min(h.min().max(1) as f64 / 1e6);
        hi = hi.max(h.max() as f64 / 1e6);
    }
    (lo.is_finite() && hi > 0.0).then(|| {
        let lo = 10f64.powf(lo.log10().floor());
        let hi = 10f64.powf(hi.log10().ceil()).max(lo * 10.0);
        (lo, hi)
    })
}

const BUCKETS: usize = 60;

/// The share of each side's ACKs per log-spaced latency bucket.
fn histogram_svg(sides: &[&Side]) -> Option<String> {
    let (lo, hi) = latency_range(sides)?;
    let edge = |i: usize| lo * (hi / lo).powf(i as f64 / BUCKETS as f64);
    let shares: Vec<Vec<f64>> = sides
        .iter()
        .map(|s| match &s.latency {
            Some(h) if !h.is_empty() => (0..BUCKETS)
                .map(|i| {
                    #[allow(
                        clippy::cast_possible_truncation,
                        clippy::cast_sign_loss,
                        reason = "positive nanoseconds within the histogram's range"
                    )]
                    let (a, b) = ((edge(i) * 1e6) as u64, (edge(i + 1) * 1e6) as u64);
                    h.count_between(a, b.saturating_sub(1).max(a)) as f64 / h.len() as f64
                })
                .collect(),
            _ => Vec::new(),
        })
        .collect();
    let top = shares
        .iter()
        .flatten()
        .copied()
        .fold(0f64, f64::max)
        .max(0.01);
    let axes = Axes {
        x: (lo, hi),
        y: (0.0, top * 1.1),
        log_x: true,
    };
    let mut svg = open_svg("ACK latency: share of messages per bucket (log scale)");
    axes.frame(
        &mut svg,
        "ACK latency (ms)",
        "share of ACKs",
        &linear_ticks(0.0, top * 1.1),
    );
    for (k, s) in shares.iter().enumerate() {
        if s.is_empty() {
            continue;
        }
        // A step per bucket: across its width at its height.
        let steps = s.iter().enumerate().flat_map(|(i, v)| {
            let y = axes.py(*v);
            [(axes.px(edge(i)), y), (axes.px(edge(i + 1)), y)]
        });
        line(&mut svg, steps, k);
    }
    Some(close(svg, sides))
}

/// One side's line through `points` (pixels), in its colour.
fn line(svg: &mut String, points: impl Iterator<Item = (f64, f64)>, k: usize) {
    let mut d = String::new();
    for (i, (x, y)) in points.enumerate() {
        let _ = write!(d, "{}{x:.1},{y:.1} ", if i == 0 { "M" } else { "L" });
    }
    let _ = write!(
        svg,
        r#"<path d="{d}" fill="none" stroke="{}" stroke-width="1.5"/>"#,
        COLOURS[k % COLOURS.len()]
    );
}

/// The legend and the end of the figure.
fn close(mut svg: String, sides: &[&Side]) -> String {
    legend(&mut svg, sides);
    svg.push_str("</svg></figure>");
    svg
}

/// The share of each side's ACKs at or under each latency.
fn cdf_svg(sides: &[&Side]) -> Option<String> {
    let (lo, hi) = latency_range(sides)?;
    let axes = Axes {
        x: (lo, hi),
        y: (0.0, 1.0),
        log_x: true,
    };
    let mut svg = open_svg("ACK latency: cumulative share (CDF)");
    axes.frame(
        &mut svg,
        "ACK latency (ms)",
        "share of ACKs at or under",
        &[0.0, 0.25, 0.5, 0.75, 0.9, 1.0],
    );
    for (k, s) in sides.iter().enumerate() {
        let Some(h) = s.latency.as_ref().filter(|h| !h.is_empty()) else {
            continue;
        };
        let points = (0..=200).map(|i| {
            let q = f64::from(i) / 200.0;
            (axes.px(h.value_at_quantile(q) as f64 / 1e6), axes.py(q))
        });
        line(&mut svg, points, k);
    }
    Some(close(svg, sides))
}

/// Each iteration's convergence, one series per side.
fn convergence_svg(sides: &[&Side]) -> Option<String> {
    let n = sides.iter().map(|s| s.convergence_ms.len()).max()?;
    if n == 0 {
        return None;
    }
    let top = sides
        .iter()
        .flat_map(|s| s.convergence_ms.iter().copied())
        .fold(0f64, f64::max)
        .max(0.001);
    let axes = Axes {
        x: (0.5, n as f64 + 0.5),
        y: (0.0, top * 1.1),
        log_x: false,
    };
    let mut svg = open_svg("Convergence of each iteration (first send to last ACK)");
    axes.frame(
        &mut svg,
        "iteration",
        "convergence (ms)",
        &linear_ticks(0.0, top * 1.1),
    );
    for (k, s) in sides.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let mut d = String::new();
        for (i, v) in s.convergence_ms.iter().enumerate() {
            let (x, y) = (axes.px(i as f64 + 1.0), axes.py(*v));
            let _ = write!(d, "{}{x:.1},{y:.1} ", if i == 0 { "M" } else { "L" });
            let _ = write!(
                svg,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{colour}"><title>{}: iteration {} {v:.2} ms</title></circle>"#,
                esc(&s.label),
                i + 1
            );
        }
        let _ = write!(
            svg,
            r#"<path d="{d}" fill="none" stroke="{colour}" stroke-opacity="0.4"/>"#
        );
    }
    Some(close(svg, sides))
}

fn verdict_table(c: &Comparison, current: &str, baseline: &str) -> String {
    let (base_col, cur_col) = if c.mode == "against" {
        ("other", "this")
    } else {
        ("baseline", "this run")
    };
    let mut t = format!(
        "<h2>Verdict: <span class=\"{}\">{}</span></h2><p>{}<br>{}<br>\
         samples {}; the ratio is of the medians, above 1 worse, with its 95% bootstrap interval</p>\
         <table><tr><th>figure</th><th>{base_col}</th><th>{cur_col}</th><th>ratio (95% CI)</th><th>allowed</th><th>verdict</th></tr>",
        verdict_class(c.verdict),
        c.verdict.label(),
        esc(baseline),
        esc(current),
        if c.paired {
            "paired by iteration"
        } else {
            "independent"
        },
    );
    let mut notes = String::new();
    for r in &c.rows {
        let j = &r.judgement;
        let _ = write!(
            t,
            "<tr><td>{} {}</td><td>{:.4} (n={})</td><td>{:.4} (n={})</td><td>{:.3} ({:.3}-{:.3})</td><td>+{}%</td><td class=\"{}\">{}</td></tr>",
            esc(r.metric),
            esc(r.unit),
            r.baseline,
            j.baseline_samples,
            r.current,
            j.current_samples,
            j.worse_ratio,
            j.ci_low,
            j.ci_high,
            j.max_worse_pct,
            verdict_class(j.verdict),
            j.verdict.label(),
        );
        if let Some(n) = &j.note {
            let _ = write!(notes, "<li>{}: {}</li>", esc(r.metric), esc(n));
        }
    }
    t.push_str("</table>");
    if !notes.is_empty() {
        let _ = write!(t, "<ul>{notes}</ul>");
    }
    if !c.not_judged.is_empty() {
        let _ = write!(
            t,
            "<p>Not judged (one side did not measure them): {}</p>",
            esc(&c.not_judged.join(", "))
        );
    }
    t
}

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Ok => "ok",
        Verdict::Regressed => "bad",
        Verdict::Inconclusive => "maybe",
    }
}

/// The whole page. `sides[0]` is this run (or this binary); a comparison,
/// when given, judged it against `sides[1]`.
pub fn page(
    title: &str,
    summary: &[String],
    sides: &[Side],
    comparison: Option<&Comparison>,
) -> String {
    let refs: Vec<&Side> = sides.iter().collect();
    let mut body = String::new();
    let _ = write!(body, "<h1>{}</h1>", esc(title));
    for line in summary {
        let _ = write!(body, "<p>{}</p>", esc(line));
    }
    if let Some(c) = comparison {
        let current = sides.first().map_or("current", |s| s.label.as_str());
        let baseline = sides.get(1).map_or("baseline", |s| s.label.as_str());
        body.push_str(&verdict_table(c, current, baseline));
    }
    for chart in [histogram_svg(&refs), cdf_svg(&refs), convergence_svg(&refs)]
        .into_iter()
        .flatten()
    {
        body.push_str(&chart);
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>\
         body{{font-family:sans-serif;margin:1.5em;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}\
         .ok{{color:#2a7d2a}}.bad{{color:#c62828;font-weight:bold}}.maybe{{color:#b26a00}}\
         figure{{margin:1em 0}}figcaption{{font-weight:bold;margin-bottom:4px}}svg{{max-width:100%;height:auto}}\
         </style></head><body>{body}</body></html>\n",
        esc(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{
        compare::{Thresholds, judge},
        verdict::Pairing,
    };

    fn side(label: &str, base_us: u64) -> Side {
        let mut h = crate::bench::report::new_histogram().unwrap();
        for i in 0..1000 {
            h.record(base_us * 1000 + i * 50).unwrap();
        }
        Side {
            label: label.to_owned(),
            latency: Some(h),
            convergence_ms: vec![20.0, 21.5, 19.0],
        }
    }

    #[test]
    fn the_page_holds_both_distributions_the_iterations_and_the_verdict() {
        let samples = |c: f64| vec![vec![1.0, 1.01, 0.99], vec![c; 3]];
        let c = judge(
            "other <bin>",
            "against",
            Pairing::Paired,
            Thresholds::AGAINST,
            &samples(20.0),
            &samples(30.0),
        );
        let html = page(
            "gsp bench flood",
            &["4 nodes".to_owned()],
            &[side("this binary", 100), side("other <bin>", 300)],
            Some(&c),
        );
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert_eq!(
            html.matches("<svg").count(),
            3,
            "histogram, CDF, convergence"
        );
        assert!(html.contains("REGRESSED"), "convergence 20 -> 30 ms");
        assert!(html.contains("other &lt;bin&gt;"), "labels are escaped");
        assert!(!html.contains("other <bin>"));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "nothing to fetch: opens offline"
        );
        // Three lines per chart kind: one path per side in each latency chart.
        assert_eq!(html.matches("stroke-width=\"1.5\"").count(), 4);
    }

    #[test]
    fn a_run_without_latencies_still_renders() {
        let s = Side {
            label: "this run".to_owned(),
            latency: None,
            convergence_ms: vec![],
        };
        let html = page("t", &[], &[s], None);
        assert!(!html.contains("<svg"));
        assert!(html.contains("<h1>t</h1>"));
    }

    #[test]
    fn ticks_are_round() {
        let t = linear_ticks(0.0, 1.0);
        assert_eq!(t.len(), 6, "{t:?}");
        assert!(
            (t[1] - 0.2).abs() < 1e-9 && (t[5] - 1.0).abs() < 1e-9,
            "{t:?}"
        );
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick(12.0), "12");
    }
}
