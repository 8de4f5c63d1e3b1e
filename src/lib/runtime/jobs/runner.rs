//! Runs one job's steps in order: each step's argv executed directly (no
//! shell) in its own process group, stdout and stderr read as they come into
//! the job's ring, stopped at its timeout or on cancellation with SIGTERM to
//! the group, then SIGKILL after the grace period.

use std::{
    os::unix::process::ExitStatusExt as _,
    process::{ExitStatus, Stdio},
    sync::Arc,
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use tokio::{
    io::{AsyncRead, AsyncReadExt as _},
    process::{Child, Command},
};
use tracing::{info, warn};

use super::{Job, Jobs, READER_STALL};
use crate::{
    clock::unix_ns as now_unix_ns,
    core::jobs::{
        Stream,
        log::Entry,
        spec::StepSpec,
        state::{EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, Outcome},
    },
    runtime::resources::Reservation,
};

/// Bytes read from a pipe at once.
const READ_BYTES: usize = 64 * 1024;
/// Reads this large are kept in the buffer they were read into (at most
/// half of it is then unused); smaller ones are copied out.
const KEEP_BUFFER_FROM: usize = READ_BYTES / 2;
/// How long output may keep coming after a step's process ended (a child it
/// left behind outside its group holding the pipe), before reading stops.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// Runs `job` to its end, holding `reservation` until then.
pub async fn run(jobs: Jobs, job: Arc<Job>, reservation: Reservation) {
    let _watch = (!reservation.gpus().is_empty()).then(|| {
        AbortOnDrop(tokio::spawn(watch_gpus(
            jobs.clone(),
            Arc::clone(&job),
            jobs.inner.reservations.lost_gpus(),
        )))
    });
    let _held = reservation;
    let (spec, workdir) = {
        let g = job.lock();
        (g.state.spec.steps.clone(), g.state.spec.workdir.clone())
    };
    // Its start is logged once, as the audit event with the actor (service).
    loop {
        let next = job.update(|s| s.start_next(now_unix_ns()));
        jobs.persist();
        let Some(i) = next else { break };
        let outcome = tokio::select! {
            o = run_step(&jobs, &job, i, &spec[i], workdir.as_deref()) => o,
            () = jobs.shutdown().cancelled() => {
                job.update(|s| s.interrupted("node stopped", now_unix_ns()));
                jobs.save_now();
                return;
            }
        };
        job.update(|s| s.finish_step(i, outcome, now_unix_ns()));
    }
    // Its log file complete before the node counts it in the history.
    job.log_written(READER_STALL).await;
    jobs.trim_history();
    let (status, code) = {
        let g = job.lock();
        (g.state.status(), g.state.exit_code())
    };
    info!(job = %job.id, status = status.as_str(), exit_code = code, "job finished");
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Tells `job` of each GPU it holds that the readings no longer find: its
/// record marks the device lost (saved), the node logs a warning, and the
/// running step's stderr gets a line saying so. The job is left to run (its
/// work on the device most likely failed, and it says so itself).
async fn watch_gpus(
    jobs: Jobs,
    job: Arc<Job>,
    mut lost: tokio::sync::watch::Receiver<std::collections::BTreeSet<String>>,
) {
    loop {
        let gone: Vec<String> = lost.borrow_and_update().iter().cloned().collect();
        for uuid in gone {
            if !job.update(|s| s.gpu_lost(&uuid)) {
                continue;
            }
            jobs.persist();
            let (step, index) = {
                let g = job.lock();
                let step = g
                    .state
                    .steps
                    .iter()
                    .position(|s| s.status == crate::core::jobs::Status::Running);
                let index = g
                    .state
                    .gpus
                    .iter()
                    .find(|d| d.uuid == uuid)
                    .map(|d| d.index);
                (step, index)
            };
            warn!(job = %job.id, gpu = %uuid, index, "a GPU the job holds stopped answering");
            if let Some(step) = step.and_then(|i| u32::try_from(i).ok()) {
                let line = format!(
                    "gsp: GPU {uuid} (index {}) stopped answering on node {}; the job's work on it may be lost\n",
                    index.map_or_else(|| "?".to_owned(), |i| i.to_string()),
                    jobs.node().1
                );
                job.push_log(
                    Entry::Log {
                        step,
                        stream: Stream::Stderr,
                        data: Bytes::from(line),
                    },
                    READER_STALL,
                )
                .await;
            }
        }
        if lost.changed().await.is_err() {
            return;
        }
    }
}

/// The GPU environment of a step: the devices its job holds by UUID
/// (`CUDA_VISIBLE_DEVICES`, `NVIDIA_VISIBLE_DEVICES`) and index
/// (`GSP_GPUS`); for a job that holds none, no device (unless the node
/// exposes every GPU to such jobs: then the node's own environment).
fn gpu_env(gpus: &[crate::core::jobs::state::JobGpu], expose: bool) -> Vec<(&'static str, String)> {
    if gpus.is_empty() {
        return if expose {
            Vec::new()
        } else {
            vec![
                ("CUDA_VISIBLE_DEVICES", String::new()),
                ("NVIDIA_VISIBLE_DEVICES", "none".to_owned()),
                ("GSP_GPUS", String::new()),
            ]
        };
    }
    let join = |f: &dyn Fn(&crate::core::jobs::state::JobGpu) -> String| {
        gpus.iter().map(f).collect::<Vec<_>>().join(",")
    };
    let uuids = join(&|d| d.uuid.clone());
    vec![
        ("CUDA_VISIBLE_DEVICES", uuids.clone()),
        ("NVIDIA_VISIBLE_DEVICES", uuids),
        ("GSP_GPUS", join(&|d| d.index.to_string())),
    ]
}

/// Why a step's process did not start, blaming what failed (a working
/// directory that is missing or not a directory fails the spawn with the
/// same error as a missing program would), and the exit code a shell gives
/// for it: 127 for a program not found, 126 for one that cannot be run.
fn spawn_failure(program: &str, workdir: Option<&str>, e: &std::io::Error) -> Outcome {
    let (why, code) = match workdir.map(|d| (d, std::fs::metadata(d))) {
        Some((d, Err(de))) => (format!("working directory {d}: {de}"), 1),
        Some((d, Ok(m))) if !m.is_dir() => (format!("working directory {d}: not a directory"), 1),
        _ => (
            format!("{program}: {e}"),
            match e.kind() {
                std::io::ErrorKind::NotFound => EXIT_NOT_FOUND,
                std::io::ErrorKind::PermissionDenied => EXIT_NOT_EXECUTABLE,
                _ => 1,
            },
        ),
    };
    Outcome::NotStarted(why, code)
}

async fn run_step(
    jobs: &Jobs,
    job: &Arc<Job>,
    i: usize,
    step: &StepSpec,
    workdir: Option<&str>,
) -> Outcome {
    let Some((program, args)) = step.argv.split_first() else {
        return Outcome::NotStarted("empty argv".to_owned(), 1);
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        // systemd's socket is the node's, not its jobs'.
        .env_remove("NOTIFY_SOCKET")
        .envs(&step.env)
        .env("GSP_JOB_ID", &job.id)
        .env("GSP_JOB_STEP", &step.name)
        .env("GSP_NODE_ID", &jobs.node().0)
        .env("GSP_NODE_NAME", &jobs.node().1)
        .envs(gpu_env(&job.lock().state.gpus, jobs.config().expose_gpus))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    if let Some(dir) = workdir {
        cmd.current_dir(dir);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return spawn_failure(program, workdir, &e),
    };
    // Recorded so that the node, should it die now, stops it when it starts
    // again (the group is the step's own: it outlives the node).
    if let Some(p) = child.id().and_then(super::leftover::identify) {
        job.set_process(i, p);
        jobs.persist();
    }
    let step_no = u32::try_from(i).unwrap_or(u32::MAX);
    let out = pump(
        child.stdout.take(),
        Arc::clone(job),
        step_no,
        Stream::Stdout,
    );
    let err = pump(
        child.stderr.take(),
        Arc::clone(job),
        step_no,
        Stream::Stderr,
    );
    let mut pumps = tokio::spawn(async move {
        tokio::join!(out, err);
    });
    let timeout = async {
        match step.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let grace = jobs.config().grace;
    let outcome = tokio::select! {
        status = child.wait() => match status {
            Ok(s) => Outcome::Exited(code_of(s)),
            Err(e) => Outcome::NotStarted(format!("cannot wait for {program}: {e}"), 1),
        },
        () = timeout => {
            stop(&mut child, grace).await;
            Outcome::TimedOut
        }
        () = job.cancelled().cancelled() => {
            stop(&mut child, grace).await;
            Outcome::Cancelled
        }
    };
    if tokio::time::timeout(DRAIN_AFTER_EXIT, &mut pumps)
        .await
        .is_err()
    {
        pumps.abort();
        warn!(job = %job.id, step = %step.name, "a process the step left behind holds its output open; stopped reading it");
    }
    outcome
}

/// 128+N for a process killed by signal N, as shells report it.
fn code_of(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// SIGTERM to the step's process group; SIGKILL to it after `grace`.
pub(crate) async fn stop(child: &mut Child, grace: Duration) {
    let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) else {
        return;
    };
    signal_group(pid, libc::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        signal_group(pid, libc::SIGKILL);
        let _ = child.wait().await;
    }
    // Whatever else of the group outlived its leader goes too.
    signal_group(pid, libc::SIGKILL);
}

#[allow(unsafe_code, reason = "kill(2) has no safe wrapper in std")]
fn signal_group(pgid: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group the step
    // was started in (process_group(0) made its leader's pid the group id);
    // it touches no memory of this process.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

async fn pump(pipe: Option<impl AsyncRead + Unpin>, job: Arc<Job>, step: u32, stream: Stream) {
    let Some(mut pipe) = pipe else { return };
    let mut buf = BytesMut::with_capacity(READ_BYTES);
    loop {
        buf.reserve(READ_BYTES);
        match pipe.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                // A large read keeps the buffer it was read into; a small one
                // is copied out, and the buffer read into again: each kept
                // entry would otherwise hold a 64 KiB allocation (a step
                // printing a line at a time: 4 KiB of memory per line).
                let data = if n >= KEEP_BUFFER_FROM {
                    buf.split().freeze()
                } else {
                    let copy = Bytes::copy_from_slice(&buf);
                    buf.clear();
                    copy
                };
                job.push_log(Entry::Log { step, stream, data }, READER_STALL)
                    .await;
            }
        }
    }
}
