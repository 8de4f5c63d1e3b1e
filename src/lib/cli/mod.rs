//! The `gsp` command line: clap definitions (one file per subcommand), output
//! renderers, and the mapping of outcomes to exit codes.

mod audit;
mod bench;
mod client;
mod completions;
pub mod exit;
mod fanout;
mod force_leave;
pub mod job_events;
mod jobs;
mod labels;
mod logging;
pub mod maint;
mod man;
mod node;
mod nodeset;
pub mod output;
mod parse;
pub mod peers;
mod pipeline;
pub mod query;
mod run;
pub mod send;
mod style;
mod tls;
pub mod watch;

use std::{process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};

use self::exit::{ExitStatus, status_for};

/// `gsp --version`: the crate version and the commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("GSP_GIT_SHA"),
    ")"
);

/// Default node address clients talk to.
pub const DEFAULT_ADDR: &str = "127.0.0.1:50005";

/// Gossip-based node discovery, resource awareness and reliable broadcast over gRPC.
#[derive(Debug, Parser)]
#[command(name = "gsp", version = VERSION, propagate_version = true, max_term_width = 100)]
#[command(
    after_help = "Exit codes: 0 success, 1 negative result (no match, not converged, \
regression), 2 usage or configuration error, 3 node unreachable or credentials refused."
)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Flags every subcommand accepts.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Node to talk to.
    #[arg(long, global = true, env = "GSP_ADDR", default_value = DEFAULT_ADDR, value_name = "HOST:PORT", help_heading = "Client options")]
    pub addr: String,
    /// Print one JSON document (JSON Lines for streams) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Colour states in tables: auto (on a terminal, unless NO_COLOR is
    /// set), always, never.
    #[arg(long, global = true, value_enum, default_value_t = style::ColorChoice::Auto, value_name = "WHEN")]
    pub color: style::ColorChoice,
    /// Give up after this long (seconds, fractions allowed, or 250ms/2m); each
    /// command documents its default.
    #[arg(long, global = true, env = "GSP_TIMEOUT", value_name = "SECS", value_parser = parse::duration, help_heading = "Client options")]
    pub timeout: Option<Duration>,
    /// Admin token for nodes that require one (sent as a bearer token); prefer
    /// the variable: flags show in `ps`.
    #[arg(
        long,
        global = true,
        env = "GSP_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        help_heading = "Client options"
    )]
    pub token: Option<String>,
    /// CA certificate (PEM) that signs the cluster's certificates; turns TLS on.
    #[arg(
        long,
        global = true,
        env = "GSP_TLS_CA",
        value_name = "PEM",
        help_heading = "TLS options"
    )]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Certificate (PEM) to present: the node's own, or a client's for mTLS.
    #[arg(
        long,
        global = true,
        env = "GSP_TLS_CERT",
        value_name = "PEM",
        help_heading = "TLS options"
    )]
    pub tls_cert: Option<std::path::PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(
        long,
        global = true,
        env = "GSP_TLS_KEY",
        value_name = "PEM",
        help_heading = "TLS options"
    )]
    pub tls_key: Option<std::path::PathBuf>,
    /// Log lines as text (coloured on a terminal unless NO_COLOR) or JSON
    /// objects, one per line.
    #[arg(long, global = true, env = "GSP_LOG_FORMAT", value_enum, default_value_t = logging::LogFormat::Text)]
    pub log_format: logging::LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node: gossip membership, data plane, HTTP side port.
    Node(node::NodeArgs),
    /// List the members a node knows (table, or --json for scripts).
    Peers(peers::PeersArgs),
    /// Find nodes with free CPU, memory, GPUs, tags and labels (multi-hop).
    Query(query::QueryArgs),
    /// Broadcast a payload to every live member and report who delivered it.
    Send(send::SendArgs),
    /// Show or change a node's maintenance state: normal, maintenance, disabled.
    Maint(maint::MaintArgs),
    /// Mark a member that is gone left everywhere now (--prune: forget it).
    ForceLeave(force_leave::ForceLeaveArgs),
    /// Who changed nodes' maintenance state, when and why (audit trails).
    Audit(audit::AuditArgs),
    /// Show or change a node's labels at run time (persisted, gossiped).
    Labels(labels::LabelsArgs),
    /// Stream membership events (or, with --messages, delivered broadcasts).
    Watch(watch::WatchArgs),
    /// Run a command or pipeline on matching nodes; stream its output.
    Run(run::RunArgs),
    /// List jobs across the cluster (or on one node).
    Jobs(jobs::JobsArgs),
    /// Show a job's output (retained, then live with --follow).
    Logs(jobs::LogsArgs),
    /// Cancel a running job.
    Cancel(jobs::CancelArgs),
    /// Spawn local nodes, flood them, report ACK latency and throughput vs raw TCP.
    Bench(bench::BenchArgs),
    /// Create the cluster's CA and node/client certificates for mutual TLS.
    Tls(tls::TlsArgs),
    /// Print a shell completion script.
    Completions(completions::CompletionsArgs),
    /// Print the manual page (or write one per command with --out).
    Man(man::ManArgs),
}

/// The commands that take the global client flags without using them, and
/// the help sections left out of their `--help` (the flags stay accepted, so
/// a shared `GSP_ADDR` or `GSP_TOKEN` never breaks them).
const UNUSED_SECTIONS: [(&str, &[&str]); 5] = [
    ("node", &["Client options:"]),
    ("bench", &["Client options:", "TLS options:"]),
    ("tls", &["Client options:", "TLS options:"]),
    ("completions", &["Client options:", "TLS options:"]),
    ("man", &["Client options:", "TLS options:"]),
];

/// `help` (clap's rendering for the command in its `Usage:` line) without the
/// sections that command does not use; None for the others.
fn trimmed_help(help: &str) -> Option<String> {
    let usage = help
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("Usage: gsp "))?;
    let command = usage.split_whitespace().next()?;
    let (_, drop) = UNUSED_SECTIONS.iter().find(|(c, _)| *c == command)?;
    let mut out: Vec<&str> = Vec::new();
    let mut skipping = false;
    for line in help.lines() {
        if drop.contains(&line) {
            skipping = true;
            // The blank line that led into the section goes with it.
            if out.last().is_some_and(|l| l.trim().is_empty()) {
                out.pop();
            }
            continue;
        }
        if skipping && !line.trim().is_empty() && !line.starts_with(' ') {
            skipping = false;
            out.push("");
        }
        if !skipping {
            out.push(line);
        }
    }
    Some(out.join("\n") + "\n")
}

/// Runs `gsp` with the process arguments and returns its exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() && json_asked(std::env::args_os()) => {
            let status = ExitStatus::Error;
            let err = anyhow::anyhow!("{}", first_line(&e.render().to_string()));
            output::error_json(&err, "usage", status.code());
            return status.into();
        }
        Err(e) => {
            let trimmed = (e.kind() == clap::error::ErrorKind::DisplayHelp)
                .then(|| trimmed_help(&e.render().to_string()))
                .flatten();
            match trimmed {
                Some(help) => {
                    let _ = output::stdout(&help);
                }
                None => {
                    let _ = e.print();
                }
            }
            return if e.use_stderr() {
                ExitStatus::Error.into()
            } else {
                ExitStatus::Success.into()
            };
        }
    };
    logging::init(
        match cli.command {
            Command::Node(_) => "info",
            // The bench runs many nodes whose membership warnings are the experiment.
            Command::Bench(_) => "error",
            _ => "warn",
        },
        cli.global.log_format,
    );
    let json = cli.global.json;
    match run(cli) {
        Ok(status) => status.into(),
        Err(err) if output::is_broken_pipe(&err) => ExitStatus::Success.into(),
        Err(err) => {
            let status = status_for(&err);
            if json {
                output::error_json(&err, exit::error_code(&err), status.code());
            } else {
                output::error(&err);
            }
            status.into()
        }
    }
}

/// Whether `--json` is among the arguments (before a `--`), for a command
/// line clap refused: its error then goes out as `gsp.error.v1` too.
fn json_asked(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    args.skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

/// clap's message without its `error: ` prefix and usage lines.
fn first_line(rendered: &str) -> String {
    let line = rendered.lines().next().unwrap_or_default();
    line.strip_prefix("error: ")
        .unwrap_or(line)
        .trim()
        .to_owned()
}

fn run(cli: Cli) -> anyhow::Result<ExitStatus> {
    let Cli { global, command } = cli;
    match command {
        Command::Completions(args) => completions::run(&args),
        Command::Man(args) => man::run(&args),
        Command::Tls(args) => tls::run(args, &global),
        Command::Node(args) => runtime()?.block_on(node::run(args, global)),
        Command::Peers(args) => client_runtime()?.block_on(peers::run(args, global)),
        Command::Query(args) => client_runtime()?.block_on(query::run(args, global)),
        Command::Send(args) => client_runtime()?.block_on(send::run(args, global)),
        Command::Maint(args) => client_runtime()?.block_on(maint::run(args, global)),
        Command::ForceLeave(args) => client_runtime()?.block_on(force_leave::run(args, global)),
        Command::Audit(args) => client_runtime()?.block_on(audit::run(args, global)),
        Command::Labels(args) => client_runtime()?.block_on(labels::run(args, global)),
        Command::Watch(args) => client_runtime()?.block_on(watch::run(args, global)),
        Command::Run(args) => client_runtime()?.block_on(run::run(args, global)),
        Command::Jobs(args) => client_runtime()?.block_on(jobs::jobs(args, global)),
        Command::Logs(args) => client_runtime()?.block_on(jobs::logs(args, global)),
        Command::Cancel(args) => client_runtime()?.block_on(jobs::cancel(args, global)),
        Command::Bench(args) => runtime()?.block_on(bench::run(args, global)),
    }
}

/// A client's runtime: one thread. A client waits on a node and prints; more
/// worker threads (each with its own allocator pages) only add to every
/// call's start-up.
fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The runtime of a node or a bench. Transparent huge pages stay off, as `gsp`
/// starts (see `src/bin/gsp.rs`): a node keeps every broadcast it receives, so
/// each one is fresh memory, and zeroing it in 2 MiB pages cost 2.4x the CPU.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
