//! `gsp run`: places a job (a command, or a pipeline of steps) on nodes that
//! match `gsp query`'s filters (or on `--node`), streams its output and step
//! changes as they happen, and exits with the job's exit code.

pub(super) mod interrupt;
pub(super) mod place;

use std::{path::PathBuf, time::Duration};

use tokio::task::JoinSet;

use super::{
    GlobalArgs,
    exit::{ExitStatus, NegativeOutcome, Unreachable, UsageError},
    job_events::Printer,
    peers, pipeline,
    query::Filters,
};
use crate::{core::jobs::spec::JobSpec, transport::pb::jobs::v1 as pb};
pub(crate) use place::{Placed, Started, Target, named_members};
use place::{WAIT_RETRY, place};

/// Arguments of `gsp run`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  gsp run --gpu 1 --memory 8GiB -- python train.py   best node with a free GPU
  gsp run --gpu 2 --gpu-memory 30GiB -- ./train.sh   2 GPUs with 30 GiB free each
  gsp run --all --tag camera -- uptime               every matching node
  gsp run --node edge-7 --pipeline build.yaml        a pipeline on one node
  gsp run --node 'web[01-12]' --fold -- uptime       a node set, output grouped
  J=$(gsp run --detach -- ./backup.sh)               start it; its id alone on stdout

Nodes run jobs only when started with `gsp node --exec`. A job given GPUs sees
only those: CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES list their UUIDs,
GSP_GPUS their indices; no other running job holds them. The exit code is the
job's own (a one-step job's process; 0 or 1 for a pipeline; 124 timed out; 130
cancelled; 1 on --all when any failed); 1 when no node matches or a node was
lost mid-job; 2 bad request; 3 unreachable or refused (exec off, maintenance,
busy, token).")]
#[expect(
    clippy::struct_excessive_bools,
    reason = "on/off flags of the command line: --all, --detach, --fold, --cancel-on-interrupt"
)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) filters: Filters,
    /// Run on these members rather than on the best match (repeatable): an
    /// id, a name, or a node set such as `edge[1-5,9]`, `web[01-12]`,
    /// `@zone=eu` (every member with that label), `a,b`.
    #[arg(long, value_name = "NODESET", conflicts_with_all = ["all", "count"])]
    pub(crate) node: Vec<String>,
    /// Run on every matching node.
    #[arg(long, conflicts_with = "count")]
    pub(crate) all: bool,
    /// Run on this many matching nodes, best first (nodes that refuse are skipped).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) count: Option<u32>,
    /// Run the steps of this YAML pipeline instead of a command.
    #[arg(long, value_name = "FILE", conflicts_with = "command")]
    pipeline: Option<PathBuf>,
    /// Working directory on the node.
    #[arg(long, value_name = "DIR")]
    workdir: Option<String>,
    /// Environment variable for the command (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = peers::parse_label)]
    env: Vec<(String, String)>,
    /// Kill the command (each step of a pipeline without its own) after this long.
    #[arg(long, value_name = "SECS", value_parser = super::parse::duration)]
    time_limit: Option<Duration>,
    /// When no node can take the job now (none matches, or all refuse: busy,
    /// resources reserved), keep trying for this long rather than fail.
    #[arg(long, value_name = "SECS", value_parser = super::parse::duration)]
    wait: Option<Duration>,
    /// Start the job(s), print their ids on stdout (one a line, nothing
    /// else: `J=$(gsp run --detach -- cmd)`) and return at once.
    #[arg(long)]
    detach: bool,
    /// Print each node's output once every job ended, nodes with identical
    /// output and exit code grouped under one node set (as `clush -b`);
    /// with --json, a `group` line per group after the events.
    #[arg(long, conflicts_with = "detach")]
    fold: bool,
    /// On Ctrl-C, cancel the job(s) (default without a terminal: leave them running).
    #[arg(long)]
    cancel_on_interrupt: bool,
    /// The command and its arguments, after `--`; executed without a shell.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

fn spec(args: &RunArgs) -> Result<JobSpec, UsageError> {
    let mut spec = match (&args.pipeline, args.command.is_empty()) {
        (Some(path), _) => pipeline::load(path)?,
        (None, false) => JobSpec::command(args.command.clone()),
        (None, true) => {
            return Err(UsageError(
                "nothing to run: give a command after `--` or --pipeline FILE".to_owned(),
            ));
        }
    };
    for step in &mut spec.steps {
        for (k, v) in &args.env {
            step.env.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if step.timeout.is_none() {
            step.timeout = args.time_limit;
        }
    }
    if args.workdir.is_some() {
        spec.workdir.clone_from(&args.workdir);
    }
    spec.normalize().map_err(|e| UsageError(e.to_string()))
}

fn spec_to_pb(spec: &JobSpec) -> pb::RunRequest {
    pb::RunRequest {
        name: spec.name.clone(),
        workdir: spec.workdir.clone().unwrap_or_default(),
        steps: spec
            .steps
            .iter()
            .map(|s| pb::StepSpec {
                name: s.name.clone(),
                argv: s.argv.clone(),
                env: s.env.clone().into_iter().collect(),
                timeout_ms: s.timeout.map_or(0, |t| {
                    u32::try_from(t.as_millis()).unwrap_or(u32::MAX).max(1)
                }),
                continue_on_error: s.continue_on_error,
            })
            .collect(),
        ..pb::RunRequest::default()
    }
}

impl RunArgs {
    /// Whether the job goes to every node named or matched (`--all`, or
    /// `--node` with a node set), where a refusal is a failure, rather than
    /// to the best match(es), where a refusal only moves it to the next.
    pub(crate) fn everywhere(&self) -> bool {
        self.all || !self.node.is_empty()
    }
}

pub(crate) async fn run(args: RunArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    let spec = spec(&args)?;
    let mut request = spec_to_pb(&spec);
    let want = args.filters.resources();
    request.reserve_cpu_millis = want.cpu_millis;
    request.reserve_memory_bytes = want.memory_bytes;
    request.reserve_gpus = want.gpus;
    let gpu = args.filters.gpu_filter();
    request.reserve_gpu_memory_bytes = gpu.memory_bytes;
    request.reserve_gpu_model = gpu.model;
    let deadline = args.wait.map(|w| tokio::time::Instant::now() + w);
    let mut told = false;
    let Placed {
        started,
        refused,
        lost,
        count,
    } = loop {
        match place(&args, &global, &request).await {
            Ok(placed) => break placed,
            Err(e)
                if deadline.is_some_and(|d| tokio::time::Instant::now() < d)
                    && (e.is::<NegativeOutcome>() || e.is::<Unreachable>()) =>
            {
                if !told {
                    super::output::note(&format!(
                        "gsp: no node can take the job yet ({e}); waiting (--wait)"
                    ));
                    told = true;
                }
                tokio::time::sleep(WAIT_RETRY).await;
            }
            Err(e) => return Err(e),
        }
    };
    if started.is_empty() {
        // A node accepted the job and went away before confirming it.
        return Err(NegativeOutcome(lost.join("; ")).into());
    }
    if !lost.is_empty() && !args.everywhere() {
        for why in &lost {
            super::output::note(&format!("gsp: {why}"));
        }
    }
    if started.len() < count && !args.everywhere() {
        super::output::note(&format!(
            "gsp: started {} of {}; the other matching nodes refused: {}",
            started.len(),
            super::output::count(count as u64, "job"),
            refused.join("; ")
        ));
    }
    let printer = if args.fold {
        Printer::folding(global.json)
    } else {
        Printer::new(global.json, started.len() > 1)
    };
    for s in &started {
        let key = (s.job.id.clone(), s.target.name.clone());
        printer.event(
            &key,
            s.job.steps.len(),
            &pb::job_event::Kind::Started(s.job.clone()),
        );
        if !global.json {
            super::output::note(&format!(
                "gsp: job {} started on {} ({})",
                s.job.id, s.target.name, s.target.address
            ));
        }
    }
    if args.detach {
        // The ids alone on stdout, for `J=$(gsp run --detach ...)`; with
        // --json the started events above carry them.
        if !global.json {
            let ids: String = started.iter().fold(String::new(), |mut out, s| {
                out.push_str(&s.job.id);
                out.push('\n');
                out
            });
            if let Err(e) = super::output::stdout(&ids)
                && e.kind() != std::io::ErrorKind::BrokenPipe
            {
                return Err(e.into());
            }
        }
        return Ok(
            if lost.is_empty() && (refused.is_empty() || !args.everywhere()) {
                ExitStatus::Success
            } else {
                ExitStatus::Negative
            },
        );
    }
    let jobs: Vec<(Target, String)> = started
        .iter()
        .map(|s| (s.target.clone(), s.job.id.clone()))
        .collect();
    let mut set = JoinSet::new();
    for s in started {
        set.spawn(follow(s, printer.clone()));
    }
    let Some(outcomes) =
        interrupt::wait(&mut set, &jobs, &global, args.cancel_on_interrupt).await?
    else {
        return Ok(ExitStatus::Interrupted);
    };
    if args.fold {
        let finished: Vec<(&str, &str, i32)> = outcomes
            .iter()
            .filter_map(|o| match o {
                Followed::Finished(j) => Some((j.id.as_str(), j.node_name.as_str(), j.exit_code)),
                Followed::Lost(_) => None,
            })
            .collect();
        printer.print_folded(&finished);
    }
    let failed_refusals = !lost.is_empty() || args.everywhere() && !refused.is_empty();
    Ok(exit_for(&outcomes, failed_refusals))
}

/// How a followed job ended, as far as this client saw.
#[derive(Debug)]
pub(crate) enum Followed {
    /// It finished with this job record.
    Finished(Box<pb::Job>),
    /// The stream broke before the job finished.
    Lost(String),
}

/// Prints `s`'s events until its job finishes or the stream breaks.
pub(crate) async fn follow(s: Started, printer: Printer) -> Followed {
    let Started {
        target,
        job,
        mut stream,
    } = s;
    let key = (job.id.clone(), target.name.clone());
    let steps = job.steps.len();
    loop {
        match stream.message().await {
            Ok(Some(pb::JobEvent { kind: Some(kind) })) => {
                printer.event(&key, steps, &kind);
                if let pb::job_event::Kind::Finished(j) = kind {
                    return Followed::Finished(Box::new(j));
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                return Followed::Lost(format!(
                    "{} ({}) ended the stream of job {} before it finished",
                    target.name, target.address, job.id
                ));
            }
            Err(status) => {
                return Followed::Lost(format!(
                    "lost {} ({}) while job {} ran: {}",
                    target.name,
                    target.address,
                    job.id,
                    status.message()
                ));
            }
        }
    }
}

/// One job: its own exit code; several: 0 if all exited 0, else 1. A lost
/// job is reported and exits 1.
fn exit_for(outcomes: &[Followed], failed_refusals: bool) -> ExitStatus {
    for o in outcomes {
        if let Followed::Lost(why) = o {
            super::output::note(&format!("gsp: {why}"));
        }
    }
    match outcomes {
        [Followed::Finished(j)] if !failed_refusals => {
            ExitStatus::Job(u8::try_from(j.exit_code.clamp(0, 255)).unwrap_or(1))
        }
        all if !failed_refusals
            && all
                .iter()
                .all(|o| matches!(o, Followed::Finished(j) if j.exit_code == 0)) =>
        {
            ExitStatus::Success
        }
        _ => ExitStatus::Negative,
    }
}
