//! `gsp bench broadcast`: end-to-end convergence of broadcasts through a mesh.

use std::fmt::Write as _;

use super::BenchArgs;
use crate::{
    bench::broadcast::{self, BroadcastBenchConfig, BroadcastReport},
    cli::{
        GlobalArgs,
        exit::{ExitStatus, UsageError},
    },
    core::units::HumanBytes,
};

pub(super) async fn run(args: BenchArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    let baseline = super::baseline(&args, "broadcast")?;
    if let Some(r) = args.rate
        && !(r > 0.0 && r.is_finite())
    {
        return Err(UsageError(format!("--rate must be a positive number, got {r}")).into());
    }
    let defaults = BroadcastBenchConfig::default();
    let config = BroadcastBenchConfig {
        nodes: args.nodes.unwrap_or(defaults.nodes),
        payload: args.payload,
        messages: args.messages,
        in_flight: args.in_flight.max(1),
        rate: args.rate,
        duration: args.duration,
        timeout: global.timeout.unwrap_or(defaults.timeout),
        ..defaults
    };
    let progress = super::progress(&global);
    let report = broadcast::run(&config, progress.as_ref()).await?;
    let regressed = super::emit(
        &report,
        &args,
        baseline.as_ref(),
        &global,
        ("broadcast", &report.timestamp),
        render,
    )?;
    Ok(if report.results.timed_out == 0 && !regressed {
        ExitStatus::Success
    } else {
        ExitStatus::Negative
    })
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn render(r: &BroadcastReport) -> String {
    let x = &r.results;
    let c = &x.convergence_ns;
    let p = &x.p2p_ack_ns;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} broadcasts of {} to {} nodes: {} converged, {} timed out ({:.0}/s achieved)",
        x.broadcasts,
        HumanBytes(r.scenario["payload_bytes"].as_u64().unwrap_or(0)),
        r.scenario["nodes"],
        x.converged,
        x.timed_out,
        x.achieved_rate
    );
    let _ = writeln!(
        out,
        "convergence (send to last receipt): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(c.p50),
        ms(c.p99),
        ms(c.max)
    );
    let _ = writeln!(
        out,
        "point-to-point transfer (same run): p50 {:.2} ms, p99 {:.2} ms; convergence p99 = {:.2}x point-to-point p99",
        ms(p.p50),
        ms(p.p99),
        x.p99_vs_p2p
    );
    let _ = writeln!(
        out,
        "payload-copy ratio {:.3} (1.0 ideal); goodput {}/s; receipt messages per delivery {:.3}",
        x.payload_copy_ratio,
        HumanBytes(bytes_of(x.goodput_bytes_per_sec)),
        x.receipt_messages_per_delivery
    );
    let _ = writeln!(
        out,
        "RSS {} -> {} (x{:.2}); CPU {:.1} s over {:.1} s; retries {}, local drops {}",
        HumanBytes(x.rss_samples_bytes.first().copied().unwrap_or(0)),
        HumanBytes(x.rss_samples_bytes.last().copied().unwrap_or(0)),
        x.rss_growth,
        x.cpu_secs,
        x.wall_secs,
        x.send_retries,
        x.local_drops
    );
    out
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a display figure, clamped to u64's range"
)]
fn bytes_of(x: f64) -> u64 {
    x.clamp(0.0, u64::MAX as f64) as u64
}
