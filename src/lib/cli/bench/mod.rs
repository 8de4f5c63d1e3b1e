//! `gsp bench [SCENARIO]`: runs a workload on an in-process cluster and reports.

mod against;
mod broadcast;
mod flood;
mod membership;
mod membership_sim;
mod resources;
mod shaped;
mod sim;

use std::{fmt::Write as _, io::IsTerminal as _, path::PathBuf, sync::Arc};

use indicatif::{ProgressBar, ProgressStyle};

use super::{GlobalArgs, exit::ExitStatus, parse};
use crate::bench::{
    self,
    compare::figures,
    config::Scenario,
    progress::{NoProgress, Progress},
};

/// A link rate: `1gbit`, `200mbit`, `500kbit`, or bits per second.
fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = match t.strip_suffix("bit") {
        Some(n) if n.ends_with('g') => (&n[..n.len() - 1], 1e9),
        Some(n) if n.ends_with('m') => (&n[..n.len() - 1], 1e6),
        Some(n) if n.ends_with('k') => (&n[..n.len() - 1], 1e3),
        Some(n) => (n, 1.0),
        None => (t.as_str(), 1.0),
    };
    match num.parse::<f64>() {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "checked positive and finite; rates fit u64"
        )]
        Ok(v) if v > 0.0 && v.is_finite() => Ok((v * mult) as u64),
        _ => Err(format!(
            "expected a rate such as 1gbit or 200mbit, got {s:?}"
        )),
    }
}

/// Arguments of `gsp bench`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "Examples:
  gsp bench                                   # the seed flood: 4 nodes, 512 KiB, vs raw TCP
  gsp bench --iterations 10 --compare bench-results/baseline.json
  gsp bench membership --nodes 100
  gsp bench broadcast --nodes 8 --messages 50
  gsp bench membership-sim --nodes 1000")]
pub(crate) struct BenchArgs {
    /// Workload to run.
    #[arg(value_enum, default_value = "flood")]
    pub(super) scenario: Scenario,
    /// Nodes [default: 4 for flood, 50 for membership, 8 for broadcast].
    #[arg(long)]
    pub(super) nodes: Option<usize>,
    /// Messages from every node to every other node per iteration.
    #[arg(long, default_value_t = bench::config::DEFAULT_MESSAGES_PER_PEER)]
    pub(super) messages_per_peer: usize,
    /// Payload size: 512KiB, 1MiB, 20MiB, or plain bytes.
    #[arg(long, default_value = "512KiB", value_name = "SIZE", value_parser = parse::size)]
    pub(super) payload: u64,
    /// Counted iterations.
    #[arg(long, default_value_t = bench::config::DEFAULT_ITERATIONS)]
    pub(super) iterations: usize,
    /// Uncounted warm-up iterations before them.
    #[arg(long, default_value_t = bench::config::DEFAULT_WARMUP)]
    pub(super) warmup: usize,
    /// Directory the JSON report is written to.
    #[arg(long, default_value = "bench-results", value_name = "DIR")]
    pub(super) out: PathBuf,
    /// Do not write a report file.
    #[arg(long)]
    pub(super) no_write: bool,
    /// Skip the raw-TCP baseline (no efficiency figure).
    #[arg(long)]
    pub(super) no_baseline: bool,
    /// Flood: also run every iteration on a second cluster whose nodes all use
    /// mutual TLS (throwaway CA and certificates), alternating with plaintext,
    /// and report TLS efficiency = TLS / plaintext throughput (medians) against
    /// the 0.85 target (TLS costs at most 15%). Membership sim: model a
    /// mutual-TLS cluster whose members list signed records of unknown nodes
    /// at once (no verification probes; real nodes still verify, as a
    /// certificate does not bind a node id).
    #[arg(long)]
    pub(super) tls: bool,
    /// Compare against this report; exit 1 when a figure regressed. The
    /// flood judges each figure from the iterations' spread: ok, regressed
    /// or inconclusive.
    #[arg(long, value_name = "FILE", conflicts_with = "against")]
    pub(super) compare: Option<PathBuf>,
    /// Flood and broadcast: run the same workload with this other gsp binary
    /// too, alternating iterations (one process per binary per iteration, AB
    /// then BA), and judge this binary against it; exit 1 when a figure
    /// regressed. Writes no report.
    #[arg(long, value_name = "PATH")]
    pub(super) against: Option<PathBuf>,
    /// With --against: the binary judged, in place of this one (an older
    /// gsp without --against can be judged this way).
    #[arg(long, value_name = "PATH", requires = "against")]
    pub(super) binary: Option<PathBuf>,
    /// Flood: also write the report as a self-contained HTML page (ACK
    /// latency histogram and CDF per side, each iteration's convergence,
    /// the verdict table).
    #[arg(long, value_name = "FILE")]
    pub(super) html: Option<PathBuf>,
    /// Allowed worsening of timings, in percent [10 with --against; with
    /// --compare, flood: 200, other reports: 20].
    #[arg(long, value_name = "PCT")]
    pub(super) max_regression: Option<f64>,
    /// Flood: allowed growth of the ACK p99, in percent [with --against: 50;
    /// with --compare: 400].
    #[arg(long, value_name = "PCT")]
    pub(super) max_p99_regression: Option<f64>,
    /// Flood: allowed growth of the counts per message (allocations, bytes
    /// allocated, write calls), in percent [default: 5].
    #[arg(long, value_name = "PCT")]
    pub(super) max_count_regression: Option<f64>,
    /// Data plane tuning: messages in flight per link.
    #[arg(long, help_heading = "Tuning", value_name = "N")]
    pub(super) max_in_flight: Option<usize>,
    /// Data plane tuning: payload bytes in flight per link.
    #[arg(long, help_heading = "Tuning", value_name = "SIZE", value_parser = parse::size)]
    pub(super) max_in_flight_bytes: Option<u64>,
    /// Data plane tuning: chunk size (payloads above it are split).
    #[arg(long, help_heading = "Tuning", value_name = "SIZE", value_parser = parse::size)]
    pub(super) chunk: Option<u64>,
    /// Data plane tuning: HTTP/2 max frame size (16KiB..16MiB).
    #[arg(long, help_heading = "Tuning", value_name = "SIZE", value_parser = parse::size)]
    pub(super) h2_frame: Option<u64>,
    /// Data plane tuning: HTTP/2 stream window.
    #[arg(long, help_heading = "Tuning", value_name = "SIZE", value_parser = parse::size)]
    pub(super) h2_stream_window: Option<u64>,
    /// Data plane tuning: HTTP/2 connection window.
    #[arg(long, help_heading = "Tuning", value_name = "SIZE", value_parser = parse::size)]
    pub(super) h2_conn_window: Option<u64>,
    /// Membership: gossip round, fractions allowed [default: 0.2; membership
    /// above 100 nodes: 1, a node's default].
    #[arg(long, help_heading = "Membership", value_name = "SECS", value_parser = parse::duration)]
    pub(super) gossip_interval: Option<std::time::Duration>,
    /// Membership: crashes to detect.
    #[arg(long, help_heading = "Membership", default_value_t = 20)]
    pub(super) kills: usize,
    /// Membership: stalls of one node's runtime.
    #[arg(long, help_heading = "Membership", default_value_t = 20)]
    pub(super) stalls: usize,
    /// Membership: length of each stall.
    #[arg(long, help_heading = "Membership", default_value = "0.6", value_name = "SECS", value_parser = parse::duration)]
    pub(super) stall: std::time::Duration,
    /// Membership: window over which idle traffic is measured (resources: idle CPU).
    #[arg(long, help_heading = "Membership", default_value = "10", value_name = "SECS", value_parser = parse::duration)]
    pub(super) traffic_window: std::time::Duration,
    /// Resources: also time NVML readings of every device through this
    /// library (the system's libnvidia-ml.so.1, or the mock that
    /// scripts/build-mock-nvml.sh builds, with GSP_MOCK_NVML naming its devices).
    #[arg(long, help_heading = "Resources", value_name = "PATH")]
    pub(super) nvml_library: Option<std::path::PathBuf>,
    /// Broadcast: broadcasts to send (closed loop).
    #[arg(long, help_heading = "Broadcast", default_value_t = 100)]
    pub(super) messages: usize,
    /// Broadcast: broadcasts in flight at once (closed loop).
    #[arg(
        long,
        help_heading = "Broadcast",
        default_value_t = 1,
        value_name = "N"
    )]
    pub(super) in_flight: usize,
    /// Broadcast: open loop at this many broadcasts per second (for --duration)
    /// instead of --messages.
    #[arg(
        long,
        help_heading = "Broadcast",
        value_name = "PER_SEC",
        allow_hyphen_values = true
    )]
    pub(super) rate: Option<f64>,
    /// Broadcast: how long the open loop runs.
    #[arg(long, help_heading = "Broadcast", default_value = "10", value_name = "SECS", value_parser = parse::duration)]
    pub(super) duration: std::time::Duration,
    /// Broadcast: instead of an in-process cluster, `--nodes` hosts (default
    /// 16) in network namespaces with every link shaped to this rate (tc tbf,
    /// e.g. 200mbit), one `--payload` broadcast per iteration, each timed
    /// against the floor payload / rate. Root only; prints JSON lines.
    #[arg(long, help_heading = "Broadcast", value_name = "RATE")]
    pub(super) shaped: Option<String>,
    /// Sim: each node's link, bits per second both ways (1gbit, 200mbit, or a
    /// number) [default: 1gbit].
    #[arg(long, help_heading = "Sim", value_name = "RATE", value_parser = parse_rate)]
    pub(super) link: Option<u64>,
    /// Sim: members dead when the broadcast starts (still listed alive).
    #[arg(long, help_heading = "Sim", default_value_t = 0)]
    pub(super) dead: usize,
    /// Sim: fanout of the swarm's trees [default: the node's, 2].
    #[arg(long, help_heading = "Sim", value_name = "K")]
    pub(super) swarm_fanout: Option<usize>,
    /// Membership sim: chance that a call or push is lost, in percent.
    #[arg(long, help_heading = "Sim", default_value_t = 0.0, value_name = "PCT")]
    pub(super) loss: f64,
    /// Sim: seed of the origin's tree layout (membership sim: of every RNG).
    #[arg(long, help_heading = "Sim", default_value_t = 1)]
    pub(super) seed: u64,
    /// Fault injection for tests: stop the last node after this many ACKs.
    #[arg(long, hide = true)]
    pub(super) kill_node_after: Option<u64>,
}

/// `--max-regression`'s default for the reports other than the flood's.
const DEFAULT_MAX_REGRESSION_PCT: f64 = 20.0;

pub(crate) async fn run(args: BenchArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    crate::bench::alloc::start_counting();
    let flood_only = [
        ("--html", args.html.is_some()),
        ("--max-p99-regression", args.max_p99_regression.is_some()),
        (
            "--max-count-regression",
            args.max_count_regression.is_some(),
        ),
    ];
    for (flag, given) in flood_only {
        if given && args.scenario != Scenario::Flood {
            return Err(super::exit::UsageError(format!(
                "{flag} applies to the flood scenario only, not {}",
                args.scenario.name()
            ))
            .into());
        }
    }
    let judged = args.compare.is_some() || args.against.is_some();
    for (flag, v) in [
        ("--max-regression", args.max_regression),
        ("--max-p99-regression", args.max_p99_regression),
        ("--max-count-regression", args.max_count_regression),
    ] {
        let Some(v) = v else { continue };
        if !judged {
            return Err(super::exit::UsageError(format!(
                "{flag} needs --compare FILE or --against PATH"
            ))
            .into());
        }
        if !(v.is_finite() && v >= 0.0) {
            return Err(super::exit::UsageError(format!(
                "{flag} must be a non-negative percentage (got {v})"
            ))
            .into());
        }
    }
    if args.tls && !matches!(args.scenario, Scenario::Flood | Scenario::MembershipSim) {
        return Err(super::exit::UsageError(format!(
            "--tls applies to the flood and membership-sim scenarios only, not {}",
            args.scenario.name()
        ))
        .into());
    }
    if args.nvml_library.is_some() && args.scenario != Scenario::Resources {
        return Err(super::exit::UsageError(format!(
            "--nvml-library applies to the resources scenario only, not {}",
            args.scenario.name()
        ))
        .into());
    }
    if let Some(rate) = &args.shaped {
        if args.scenario != Scenario::Broadcast {
            return Err(super::exit::UsageError(format!(
                "--shaped applies to the broadcast scenario only, not {}",
                args.scenario.name()
            ))
            .into());
        }
        if args.compare.is_some() || args.against.is_some() {
            return Err(super::exit::UsageError(
                "--compare and --against do not apply to --shaped runs: they write no report"
                    .to_owned(),
            )
            .into());
        }
        return shaped::run(&args, rate);
    }
    if args.against.is_some() {
        return against::run(args, global).await;
    }
    match args.scenario {
        Scenario::Flood => flood::run(args, global).await,
        Scenario::Membership => membership::run(args, global).await,
        Scenario::Resources => resources::run(args, global).await,
        Scenario::Broadcast => broadcast::run(args, global).await,
        Scenario::Sim => sim::run(&args, &global),
        Scenario::MembershipSim => membership_sim::run(&args, &global),
    }
}

/// A progress bar on a terminal (and never with --json), nothing otherwise.
fn progress(global: &GlobalArgs) -> Arc<dyn Progress> {
    if !global.json && std::io::stderr().is_terminal() {
        Arc::new(Bar::new())
    } else {
        Arc::new(NoProgress)
    }
}

/// An indicatif bar on stderr.
struct Bar(ProgressBar);

impl Bar {
    fn new() -> Self {
        let bar = ProgressBar::new(0);
        if let Ok(style) =
            ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} acks {elapsed}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        Self(bar)
    }
}

impl Progress for Bar {
    fn phase(&self, label: &str, total: u64) {
        self.0.set_prefix(label.to_owned());
        self.0.set_length(total);
        self.0.set_position(0);
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// `--compare`'s baseline, read once before the run.
pub(super) struct Baseline {
    /// The whole report.
    report: serde_json::Value,
    /// Its path, as the user gave it.
    file: String,
}

/// Reads `--compare`'s baseline, if any, before a run of `kind`: one that
/// cannot be read, is no bench report or is of another kind is refused
/// now, so the run is not spent for nothing.
fn baseline(args: &BenchArgs, kind: &str) -> anyhow::Result<Option<Baseline>> {
    let Some(path) = &args.compare else {
        return Ok(None);
    };
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| super::exit::UsageError(format!("cannot read {file}: {e}")))?;
    let report: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| super::exit::UsageError(format!("{file} is not a gsp bench report: {e}")))?;
    if report["schema"] != "gsp.bench.v1" {
        return Err(super::exit::UsageError(format!(
            "{file} is not a gsp bench report (no \"schema\": \"gsp.bench.v1\")"
        ))
        .into());
    }
    let theirs = figures::kind_of(&report);
    if theirs != kind {
        return Err(super::exit::UsageError(format!(
            "{file} is a {theirs} report and this run is {kind}: compare like with like \
             (gsp bench {theirs} --compare {file})"
        ))
        .into());
    }
    Ok(Some(Baseline { report, file }))
}

/// Writes `report` to `--out` (unless `--no-write`), judges it against
/// `--compare`'s baseline if one was given, then prints it: the JSON
/// document (with the verdict under `comparison`) with `--json`, else
/// `render`'s text, the verdict table and the report's path. Returns whether
/// a figure regressed.
fn emit<T: serde::Serialize>(
    report: &T,
    args: &BenchArgs,
    baseline: Option<&Baseline>,
    global: &GlobalArgs,
    (scenario, timestamp): (&str, &str),
    render: impl FnOnce(&T) -> String,
) -> anyhow::Result<bool> {
    let written = if args.no_write {
        None
    } else {
        Some(crate::bench::report::write_json(
            report, &args.out, scenario, timestamp,
        )?)
    };
    let comparison = match baseline {
        Some(b) => Some(
            figures::compare(
                &b.report,
                &b.file,
                &serde_json::to_value(report)?,
                args.max_regression.unwrap_or(DEFAULT_MAX_REGRESSION_PCT),
            )
            .map_err(super::exit::UsageError)?,
        ),
        None => None,
    };
    if global.json {
        let mut doc = serde_json::to_value(report)?;
        if let Some(c) = &comparison {
            doc["comparison"] = serde_json::to_value(c)?;
        }
        super::output::json(&doc)?;
    } else {
        let mut text = render(report);
        if let Some(c) = &comparison {
            text.push_str(&figures::render(c));
        }
        if let Some(p) = written {
            let _ = writeln!(text, "report: {}", p.display());
        }
        super::output::stdout(&text)?;
    }
    Ok(comparison.is_some_and(|c| c.regressed))
}
