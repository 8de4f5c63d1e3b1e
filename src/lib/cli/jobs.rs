//! `gsp jobs`, `gsp logs JOB`, `gsp cancel JOB`: jobs across the cluster (each
//! up member asked directly) or on one node.

use std::{fmt::Write as _, time::Duration};

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde::Serialize;
use tokio::task::JoinSet;

use super::{
    GlobalArgs, client,
    exit::{ExitStatus, NegativeOutcome, Unreachable},
    fanout,
    job_events::{JobJson, Printer, job_json, status_name},
    output,
    run::interrupt as run_interrupt,
    run::place::members,
    run::{Followed, Started, Target, follow, named_members},
};
use crate::transport::pb::jobs::v1 as pb;

/// Schema of `gsp jobs --json`.
pub(super) const SCHEMA: &str = "gsp.jobs.v1";

/// Arguments of `gsp jobs`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "Examples:
  gsp jobs                                    # jobs on every up member
  gsp jobs --node gpu-3 --json")]
pub(crate) struct JobsArgs {
    /// Only these members' jobs: an id, a name or a node set (`edge[1-5,9]`,
    /// `@role=gpu`); repeatable. Default: every up member's.
    #[arg(long, value_name = "NODES")]
    node: Vec<String>,
}

/// Arguments of `gsp logs`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  gsp logs 3f9a0c1d2e4b            what the node kept of the job's output
  gsp logs 3f9a0c1d2e4b --follow   then live, exiting with the job's code")]
pub(crate) struct LogsArgs {
    /// The job's id (from `gsp run` or `gsp jobs`).
    job: String,
    /// Keep streaming until the job ends; exit with its exit code.
    #[arg(long, short)]
    follow: bool,
    /// Where to look for it: an id, a name or a node set (`edge[1-5,9]`,
    /// `@role=gpu`); repeatable. Default: asks every up member.
    #[arg(long, value_name = "NODES")]
    node: Vec<String>,
}

/// Arguments of `gsp cancel`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "Examples:
  gsp cancel 3f9a0c1d2e4b                     # SIGTERM, SIGKILL after the node's grace; ends CANCELLED")]
pub(crate) struct CancelArgs {
    /// The job's id.
    job: String,
    /// Where to look for it: an id, a name or a node set (`edge[1-5,9]`,
    /// `@role=gpu`); repeatable. Default: asks every up member.
    #[arg(long, value_name = "NODES")]
    node: Vec<String>,
}

/// `gsp cancel --json`: the job as it ended, fields at the top level.
#[derive(Serialize)]
struct CancelJson {
    schema: &'static str,
    #[serde(flatten)]
    job: JobJson,
}

#[derive(Serialize)]
struct JobsJson {
    schema: &'static str,
    jobs: Vec<JobJson>,
    unreachable: Vec<UnreachableJson>,
}

#[derive(Serialize)]
struct UnreachableJson {
    node_id: String,
    node_name: String,
    address: String,
    error: String,
}

/// Up members as seen by `--addr`, or the one `--node` names.
async fn targets(global: &GlobalArgs, nodes: &[String]) -> anyhow::Result<Vec<Target>> {
    if !nodes.is_empty() {
        return named_members(global, nodes).await;
    }
    let mut views = members(global).await?;
    // The node asked first: its jobs are the likeliest.
    views.sort_by_key(|v| !v.local);
    Ok(views
        .into_iter()
        .filter(|v| v.record.state.is_up())
        .map(|v| Target::of(&v))
        .collect())
}

/// Asks every target for its jobs (`job_id`: that one only).
async fn list_all(
    global: &GlobalArgs,
    targets: Vec<Target>,
    job_id: &str,
) -> Vec<(Target, Result<Vec<pb::Job>, String>)> {
    fanout::each(targets, fanout::window(), |t| {
        let (global, job_id) = (global.clone(), job_id.to_owned());
        async move {
            let r = async {
                let mut c = client::jobs(&global, &t.address).await?;
                let mut req = tonic::Request::new(pb::ListJobsRequest { job_id });
                req.set_timeout(client::timeout(&global));
                let resp = c
                    .list(req)
                    .await
                    .map_err(|s| client::call_failed(&t.address, s))?;
                anyhow::Ok(resp.into_inner().jobs)
            }
            .await
            .map_err(|e| format!("{e:#}"));
            (t, r)
        }
    })
    .await
}

/// The member running job `id`.
async fn locate(global: &GlobalArgs, id: &str, nodes: &[String]) -> anyhow::Result<Target> {
    let targets = targets(global, nodes).await?;
    let mut errors = Vec::new();
    for (t, r) in list_all(global, targets, id).await {
        match r {
            Ok(jobs) if !jobs.is_empty() => return Ok(t),
            Ok(_) => {}
            Err(e) => errors.push(format!("{}: {e}", t.name)),
        }
    }
    let mut msg = format!("no member knows job '{id}'");
    if !errors.is_empty() {
        let _ = write!(msg, " (not asked, unreachable: {})", errors.join("; "));
    }
    Err(NegativeOutcome(msg).into())
}

/// `gsp jobs`: exit 0; 3 if no member answered.
pub(crate) async fn jobs(args: JobsArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    let targets = targets(&global, &args.node).await?;
    let asked = targets.len();
    let mut jobs = Vec::new();
    let mut unreachable = Vec::new();
    for (t, r) in list_all(&global, targets, "").await {
        match r {
            Ok(js) => jobs.extend(js.iter().map(job_json)),
            Err(error) => unreachable.push(UnreachableJson {
                node_id: t.id,
                node_name: t.name,
                address: t.address,
                error,
            }),
        }
    }
    jobs.sort_by_key(|j| j.created_unix_ns);
    if asked > 0 && unreachable.len() == asked {
        return Err(Unreachable(format!(
            "no member answered: {}",
            unreachable
                .iter()
                .map(|u| format!("{} ({}): {}", u.node_name, u.address, u.error))
                .collect::<Vec<_>>()
                .join("; ")
        ))
        .into());
    }
    if global.json {
        output::json(&JobsJson {
            schema: SCHEMA,
            jobs,
            unreachable,
        })?;
    } else {
        for u in &unreachable {
            super::output::note(&format!(
                "gsp: {} ({}) not asked: {}",
                u.node_name, u.address, u.error
            ));
        }
        output::stdout(&render(&jobs))?;
    }
    Ok(ExitStatus::Success)
}

/// The GPUs a job holds by index (`0,3`), a lost one marked `!`; `-`: none.
fn gpus_cell(r: &super::job_events::ReservedJson) -> String {
    if r.gpu_indices.is_empty() {
        return "-".to_owned();
    }
    r.gpu_indices
        .iter()
        .zip(&r.gpu_uuids)
        .map(|(i, u)| {
            if r.gpus_lost.contains(u) {
                format!("{i}!")
            } else {
                i.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn render(jobs: &[JobJson]) -> String {
    if jobs.is_empty() {
        return "no jobs\n".to_owned();
    }
    let now = crate::clock::unix_ns();
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY);
    t.set_header(vec![
        "JOB", "NODE", "NAME", "STATUS", "STEPS", "STARTED", "TIME", "EXIT", "GPUS",
    ]);
    for j in jobs {
        let done = j
            .steps
            .iter()
            .filter(|s| s.status != "pending" && s.status != "running")
            .count();
        let end = if j.ended_unix_ns > 0 {
            j.ended_unix_ns
        } else {
            now
        };
        let secs = |ns: i64| Duration::from_nanos(u64::try_from(ns.max(0)).unwrap_or(0)).as_secs();
        t.add_row(vec![
            j.job_id.clone(),
            j.node_name.clone(),
            j.name.clone(),
            j.status.to_owned(),
            format!("{done}/{}", j.steps.len()),
            format!("{}s ago", secs(now - j.created_unix_ns)),
            format!("{}s", secs(end - j.created_unix_ns)),
            if j.ended_unix_ns > 0 {
                j.exit_code.to_string()
            } else {
                "-".to_owned()
            },
            gpus_cell(&j.reserved),
        ]);
    }
    format!("{t}\n")
}

/// `gsp logs`: the retained output; with `--follow`, the job's exit code.
pub(crate) async fn logs(args: LogsArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    let t = locate(&global, &args.job, &args.node).await?;
    let mut c = client::jobs(&global, &t.address).await?;
    let mut stream = c
        .logs(pb::LogsRequest {
            job_id: args.job.clone(),
            follow: args.follow,
        })
        .await
        .map_err(|s| client::call_failed(&t.address, s))?
        .into_inner();
    let job = match stream.message().await {
        Ok(Some(pb::JobEvent {
            kind: Some(pb::job_event::Kind::Started(job)),
        })) => job,
        Ok(_) => return Err(Unreachable(format!("{} sent no job", t.name)).into()),
        Err(s) => return Err(client::call_failed(&t.address, s)),
    };
    let printer = Printer::new(global.json, false);
    let key = (job.id.clone(), t.name.clone());
    printer.event(
        &key,
        job.steps.len(),
        &pb::job_event::Kind::Started(job.clone()),
    );
    let started = Started {
        target: t.clone(),
        job,
        stream,
    };
    if !args.follow {
        // The retained entries, then the stream ends (with `finished` if over).
        follow(started, printer).await;
        return Ok(ExitStatus::Success);
    }
    let mut set = JoinSet::new();
    set.spawn(follow(started, printer));
    let jobs = vec![(t, args.job)];
    match run_interrupt::wait(&mut set, &jobs, &global, false).await? {
        None => Ok(ExitStatus::Interrupted),
        Some(outcomes) => match outcomes.into_iter().next() {
            Some(Followed::Finished(j)) => Ok(exit_of(&j)),
            Some(Followed::Lost(why)) => Err(NegativeOutcome(why).into()),
            None => Ok(ExitStatus::Success),
        },
    }
}

fn exit_of(j: &pb::Job) -> ExitStatus {
    ExitStatus::Job(u8::try_from(j.exit_code.clamp(0, 255)).unwrap_or(1))
}

/// `gsp cancel`: exit 0 once the job ended CANCELLED; 1 if it had already
/// ended otherwise.
pub(crate) async fn cancel(args: CancelArgs, global: GlobalArgs) -> anyhow::Result<ExitStatus> {
    let t = locate(&global, &args.job, &args.node).await?;
    let mut c = client::jobs(&global, &t.address).await?;
    let mut req = tonic::Request::new(pb::CancelRequest {
        job_id: args.job.clone(),
    });
    req.set_timeout(client::timeout(&global));
    let job = c
        .cancel(req)
        .await
        .map_err(|s| client::call_failed(&t.address, s))?
        .into_inner();
    if job.ended_unix_ns > 0 && job.cancelled_by.is_empty() {
        return Err(NegativeOutcome(format!(
            "job {} on {} had already ended: {}",
            job.id,
            t.name,
            status_name(job.status)
        ))
        .into());
    }
    // Wait for the end: the node stops the step (SIGTERM, SIGKILL after its grace).
    let mut stream = c
        .logs(pb::LogsRequest {
            job_id: args.job.clone(),
            follow: true,
        })
        .await
        .map_err(|s| client::call_failed(&t.address, s))?
        .into_inner();
    let mut last = job;
    let wait = async {
        while let Ok(Some(ev)) = stream.message().await {
            if let Some(pb::job_event::Kind::Finished(j)) = ev.kind {
                return Some(j);
            }
        }
        None
    };
    let deadline = client::timeout(&global).max(Duration::from_secs(60));
    if let Ok(Some(j)) = tokio::time::timeout(deadline, wait).await {
        last = j;
    }
    if global.json {
        output::json(&CancelJson {
            schema: "gsp.cancel.v1",
            job: job_json(&last),
        })?;
    } else {
        let stopped: Vec<_> = last
            .steps
            .iter()
            .filter(|s| status_name(s.status) == "cancelled" && s.started_unix_ns > 0)
            .map(|s| s.name.clone())
            .collect();
        output::stdout(&format!(
            "job {} on {}: {}{}\n",
            last.id,
            t.name,
            status_name(last.status),
            if stopped.is_empty() {
                String::new()
            } else {
                format!(" (stopped step {})", stopped.join(", "))
            }
        ))?;
    }
    Ok(if status_name(last.status) == "cancelled" {
        ExitStatus::Success
    } else {
        ExitStatus::Negative
    })
}
