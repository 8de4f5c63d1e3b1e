//! The exposition of `/metrics`, through prometheus-client: every family the
//! renderers collect on a scrape (read from the node's counters as they are
//! then), plus histograms, is encoded in the OpenMetrics text format. A
//! counter's family is named without `_total` in `# TYPE`, as OpenMetrics
//! wants; its samples keep the `_total` names they always had.

use std::fmt::Write as _;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge, histogram::Histogram},
    registry::Registry,
};

/// One family of samples.
#[derive(Debug)]
struct Family {
    name: String,
    kind: MetricType,
    help: String,
    samples: Vec<(Vec<(String, String)>, Value)>,
}

#[derive(Debug, Clone, Copy)]
enum Value {
    Int(u64),
    Float(f64),
}

/// The families of one scrape.
#[derive(Debug, Default)]
pub(super) struct Out {
    families: Vec<Family>,
    histograms: Vec<(String, String, Histogram)>,
}

impl Out {
    /// A counter or gauge family; `samples` pairs rendered labels
    /// (`k="v",k2="v2"`, or empty) with values.
    pub(super) fn metric(&mut self, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
        let (kind, name) = match kind {
            "counter" => (
                MetricType::Counter,
                name.strip_suffix("_total").unwrap_or(name),
            ),
            _ => (MetricType::Gauge, name),
        };
        self.families.push(Family {
            name: name.to_owned(),
            kind,
            help: help.to_owned(),
            samples: samples
                .iter()
                .map(|(l, v)| (parse_labels(l), Value::Int(*v)))
                .collect(),
        });
    }

    /// A gauge with a fractional value (seconds, timestamps).
    pub(super) fn gauge_f64(&mut self, name: &str, help: &str, samples: &[(&str, f64)]) {
        self.families.push(Family {
            name: name.to_owned(),
            kind: MetricType::Gauge,
            help: help.to_owned(),
            samples: samples
                .iter()
                .map(|(l, v)| (parse_labels(l), Value::Float(*v)))
                .collect(),
        });
    }

    /// A counter with a fractional value (CPU seconds).
    pub(super) fn counter_f64(&mut self, name: &str, help: &str, value: f64) {
        self.families.push(Family {
            name: name.strip_suffix("_total").unwrap_or(name).to_owned(),
            kind: MetricType::Counter,
            help: help.to_owned(),
            samples: vec![(Vec::new(), Value::Float(value))],
        });
    }

    /// A histogram, as it stands now.
    pub(super) fn histogram(&mut self, name: &str, help: &str, h: &Histogram) {
        self.histograms
            .push((name.to_owned(), help.to_owned(), h.clone()));
    }

    /// The OpenMetrics text of everything collected.
    pub(super) fn finish(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
            // Only a formatter error; a String never fails to grow.
            let _ = writeln!(text, "# EOF");
        }
        text
    }
}

impl Collector for Out {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.families {
            let mut m = encoder.encode_descriptor(&f.name, &f.help, None, f.kind)?;
            for (labels, v) in &f.samples {
                let s = m.encode_family(labels)?;
                match (f.kind, *v) {
                    (MetricType::Counter, Value::Int(v)) => ConstCounter::new(v).encode(s)?,
                    (MetricType::Counter, Value::Float(v)) => ConstCounter::new(v).encode(s)?,
                    (_, Value::Int(v)) => {
                        ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)).encode(s)?;
                    }
                    (_, Value::Float(v)) => ConstGauge::new(v).encode(s)?,
                }
            }
        }
        for (name, help, h) in &self.histograms {
            let m = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            h.encode(m)?;
        }
        Ok(())
    }
}

/// `k="v",k2="v2"` as pairs (values never hold quotes here).
fn parse_labels(rendered: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = rendered;
    while let Some((key, after)) = rest.split_once("=\"") {
        let Some((value, tail)) = after.split_once('"') else {
            break;
        };
        out.push((key.trim_start_matches(',').to_owned(), value.to_owned()));
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_come_out_as_openmetrics_with_counters_named_per_the_spec() {
        let mut o = Out::default();
        o.metric(
            "gsp_things_total",
            "counter",
            "Things.",
            &[("kind=\"a\",code=\"x\"", 3), ("kind=\"b\",code=\"y\"", 4)],
        );
        o.metric("gsp_level", "gauge", "Level.", &[("", 7)]);
        o.gauge_f64("gsp_when_seconds", "When.", &[("", 1.5)]);
        let h = Histogram::new([0.1, 1.0]);
        h.observe(0.5);
        o.histogram("gsp_rtt_seconds", "RTT.", &h);
        let text = o.finish();
        for want in [
            "# TYPE gsp_things counter",
            "gsp_things_total{kind=\"a\",code=\"x\"} 3",
            "gsp_things_total{kind=\"b\",code=\"y\"} 4",
            "# TYPE gsp_level gauge",
            "gsp_level 7",
            "gsp_when_seconds 1.5",
            "# TYPE gsp_rtt_seconds histogram",
            "gsp_rtt_seconds_bucket{le=\"1.0\"} 1",
            "gsp_rtt_seconds_count 1",
            "# EOF",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
    }
}
