//! Converting between the jobs service's wire messages and the node's jobs:
//! events, log entries, statuses, steps, jobs and specs.

use std::time::Duration;

use tonic::Status;

use super::Job;
use crate::{
    core::jobs::{
        Status as JobStatus, Stream as OutStream,
        log::Entry,
        spec::{JobSpec, StepSpec},
        state::StepState,
    },
    transport::pb::jobs::v1 as pb,
};

pub(super) fn event(kind: pb::job_event::Kind) -> pb::JobEvent {
    pb::JobEvent { kind: Some(kind) }
}

pub(super) fn entry_to_pb(e: Entry) -> pb::job_event::Kind {
    match e {
        Entry::Log { step, stream, data } => pb::job_event::Kind::Log(pb::LogChunk {
            step,
            stream: match stream {
                OutStream::Stdout => pb::Stream::Stdout,
                OutStream::Stderr => pb::Stream::Stderr,
            } as i32,
            data,
        }),
        Entry::Step(step, state) => pb::job_event::Kind::Step(pb::StepChange {
            step,
            state: Some(step_to_pb(&state)),
        }),
    }
}

/// The status a wire value names, if any.
pub fn status_from_pb(s: i32) -> Option<JobStatus> {
    Some(match pb::Status::try_from(s).ok()? {
        pb::Status::Pending => JobStatus::Pending,
        pb::Status::Running => JobStatus::Running,
        pb::Status::Completed => JobStatus::Completed,
        pb::Status::Failed => JobStatus::Failed,
        pb::Status::Cancelled => JobStatus::Cancelled,
    })
}

fn status_to_pb(s: JobStatus) -> i32 {
    (match s {
        JobStatus::Pending => pb::Status::Pending,
        JobStatus::Running => pb::Status::Running,
        JobStatus::Completed => pb::Status::Completed,
        JobStatus::Failed => pb::Status::Failed,
        JobStatus::Cancelled => pb::Status::Cancelled,
    }) as i32
}

fn step_to_pb(s: &StepState) -> pb::StepState {
    pb::StepState {
        name: s.name.clone(),
        status: status_to_pb(s.status),
        started_unix_ns: s.started_unix_ns,
        ended_unix_ns: s.ended_unix_ns,
        exit_code: s.exit_code,
        error: s.error.clone(),
    }
}

/// A job as the wire shows it.
pub fn job_to_pb(job: &Job, node: &(String, String)) -> pb::Job {
    let g = job.lock();
    let st = &g.state;
    pb::Job {
        id: job.id.clone(),
        node_id: node.0.clone(),
        node_name: node.1.clone(),
        name: st.spec.name.clone(),
        status: status_to_pb(st.status()),
        steps: st.steps.iter().map(step_to_pb).collect(),
        created_unix_ns: st.created_unix_ns,
        ended_unix_ns: st.ended_unix_ns,
        actor: job.actor.clone(),
        log_dropped_bytes: g.log.dropped(),
        exit_code: st.exit_code(),
        cancelled_by: st.cancelled_by.clone().unwrap_or_default(),
        reserved_cpu_millis: job.reserved.cpu_millis,
        reserved_memory_bytes: job.reserved.memory_bytes,
        reserved_gpus: job.reserved.gpus,
        gpus: st
            .gpus
            .iter()
            .map(|d| pb::JobGpu {
                uuid: d.uuid.clone(),
                index: d.index,
                lost: d.lost,
            })
            .collect(),
    }
}

pub(super) fn spec_from_pb(req: pb::RunRequest) -> Result<JobSpec, Status> {
    let steps = req
        .steps
        .into_iter()
        .map(|s| StepSpec {
            name: s.name,
            argv: s.argv,
            env: s.env.into_iter().collect(),
            timeout: (s.timeout_ms > 0).then(|| Duration::from_millis(u64::from(s.timeout_ms))),
            continue_on_error: s.continue_on_error,
        })
        .collect();
    JobSpec {
        name: req.name,
        steps,
        workdir: (!req.workdir.is_empty()).then_some(req.workdir),
    }
    .normalize()
    .map_err(|e| Status::invalid_argument(e.to_string()))
}
