//! A job's progress as a state machine: the runtime asks which step to run
//! next, reports how each ended, and asks to cancel; statuses, the job's
//! status and its exit code follow from that alone.

use serde::{Deserialize, Serialize};

use super::{Status, spec::JobSpec};

/// Exit code of a step that timed out (as `timeout(1)`).
pub const EXIT_TIMEOUT: i32 = 124;
/// Exit code of a cancelled job (as a shell's SIGINT).
pub const EXIT_CANCELLED: i32 = 130;
/// Exit code of a step whose program was not found (as a shell's, and ssh's).
pub const EXIT_NOT_FOUND: i32 = 127;
/// Exit code of a step whose program could not be executed (no permission,
/// not an executable; as a shell's).
pub const EXIT_NOT_EXECUTABLE: i32 = 126;

/// One step's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepState {
    /// The step's name.
    pub name: String,
    /// Where it is.
    pub status: Status,
    /// Unix nanoseconds; 0: not started.
    pub started_unix_ns: i64,
    /// Unix nanoseconds; 0: not ended.
    pub ended_unix_ns: i64,
    /// The exit code (128+N for signal N), if its process exited.
    pub exit_code: Option<i32>,
    /// Why it failed or was cancelled.
    pub error: String,
    /// Its process while it runs, so that a node restarted after dying can
    /// stop what it left running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessRef>,
}

/// A running step's process, named so that it cannot be mistaken for
/// another after the node restarts: its process group (the step's process
/// leads it), its start time and the boot it ran in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRef {
    /// Process group id (the step's own pid).
    pub pgid: i32,
    /// The leader's start time, clock ticks after boot (`/proc/PID/stat`).
    pub start_ticks: u64,
    /// The kernel's boot id at its start.
    pub boot_id: String,
}

/// How a step's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exited with this code (128+N: killed by signal N).
    Exited(i32),
    /// Killed at its timeout.
    TimedOut,
    /// Killed because the job was cancelled.
    Cancelled,
    /// Could not be started: why, and the exit code a shell gives for it
    /// ([`EXIT_NOT_FOUND`], [`EXIT_NOT_EXECUTABLE`], else 1).
    NotStarted(String, i32),
}

/// A GPU device a job holds while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobGpu {
    /// Its UUID (`GPU-…`, or `MIG-…` for a MIG instance).
    pub uuid: String,
    /// NVML's index of its GPU.
    pub index: u32,
    /// It stopped answering while the job ran (fell off the bus, the
    /// driver lost it): whatever the job did on it may be gone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lost: bool,
}

/// A job's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobState {
    /// What it runs.
    pub spec: JobSpec,
    /// Per step, in order.
    pub steps: Vec<StepState>,
    /// When it was created, unix nanoseconds.
    pub created_unix_ns: i64,
    /// When it ended; 0: not yet.
    pub ended_unix_ns: i64,
    /// Who asked for its cancellation, once someone did.
    pub cancelled_by: Option<String>,
    /// The GPU devices it was given (its `CUDA_VISIBLE_DEVICES`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<JobGpu>,
}

impl JobState {
    /// A job of `spec` (normalized), nothing run yet.
    pub fn new(spec: JobSpec, now_unix_ns: i64) -> Self {
        let steps = spec
            .steps
            .iter()
            .map(|s| StepState {
                name: s.name.clone(),
                status: Status::Pending,
                started_unix_ns: 0,
                ended_unix_ns: 0,
                exit_code: None,
                error: String::new(),
                process: None,
            })
            .collect();
        Self {
            spec,
            steps,
            created_unix_ns: now_unix_ns,
            ended_unix_ns: 0,
            cancelled_by: None,
            gpus: Vec::new(),
        }
    }

    /// Device `uuid`, one it holds, stopped answering while it runs; `true`
    /// if that is news (it holds it, runs, and it was not lost already).
    pub fn gpu_lost(&mut self, uuid: &str) -> bool {
        if self.ended_unix_ns != 0 {
            return false;
        }
        match self.gpus.iter_mut().find(|g| g.uuid == uuid && !g.lost) {
            Some(g) => {
                g.lost = true;
                true
            }
            None => false,
        }
    }

    /// Starts the next step and returns its index, or `None` when the job is
    /// over (every step ran, one failed, or it was cancelled); then the job's
    /// end time is set and the steps that will not run are CANCELLED.
    pub fn start_next(&mut self, now_unix_ns: i64) -> Option<usize> {
        if self.steps.iter().any(|s| s.status == Status::Running) {
            return None;
        }
        let blocked = self.cancelled_by.is_some()
            || self
                .steps
                .iter()
                .zip(&self.spec.steps)
                .any(|(s, spec)| s.status == Status::Failed && !spec.continue_on_error);
        let next = self.steps.iter().position(|s| s.status == Status::Pending);
        match next {
            Some(i) if !blocked => {
                let s = &mut self.steps[i];
                s.status = Status::Running;
                s.started_unix_ns = now_unix_ns;
                Some(i)
            }
            _ => {
                let why = if self.cancelled_by.is_some() {
                    "job cancelled before this step ran".to_owned()
                } else {
                    let failed = self
                        .steps
                        .iter()
                        .find(|s| s.status == Status::Failed)
                        .map_or_else(String::new, |s| s.name.clone());
                    format!("not run: step '{failed}' failed")
                };
                for s in self
                    .steps
                    .iter_mut()
                    .filter(|s| s.status == Status::Pending)
                {
                    s.status = Status::Cancelled;
                    s.error.clone_from(&why);
                }
                if self.ended_unix_ns == 0 {
                    self.ended_unix_ns = now_unix_ns.max(1);
                }
                None
            }
        }
    }

    /// Records how running step `i` ended. Ignored unless it is running.
    pub fn finish_step(&mut self, i: usize, outcome: Outcome, now_unix_ns: i64) {
        let Some(s) = self.steps.get_mut(i) else {
            return;
        };
        if s.status != Status::Running {
            return;
        }
        s.ended_unix_ns = now_unix_ns;
        s.process = None;
        match outcome {
            Outcome::Exited(0) => s.status = Status::Completed,
            Outcome::Exited(code) => {
                s.status = Status::Failed;
                s.exit_code = Some(code);
                s.error = if code > 128 {
                    format!("killed by signal {}", code - 128)
                } else {
                    format!("exited with code {code}")
                };
            }
            Outcome::TimedOut => {
                s.status = Status::Failed;
                "timed out; killed".clone_into(&mut s.error);
            }
            Outcome::Cancelled => {
                s.status = Status::Cancelled;
                s.error = format!(
                    "cancelled by {}",
                    self.cancelled_by.as_deref().unwrap_or("the node")
                );
            }
            Outcome::NotStarted(e, code) => {
                s.status = Status::Failed;
                s.error = format!("cannot start: {e}");
                s.exit_code = Some(code);
            }
        }
        if s.status == Status::Completed {
            s.exit_code = Some(0);
        }
    }

    /// Asks for cancellation on behalf of `actor`; `false` if the job was over
    /// or already being cancelled. The runtime then stops the running step and
    /// reports it [`Outcome::Cancelled`].
    pub fn cancel(&mut self, actor: &str) -> bool {
        if self.status().is_final() || self.cancelled_by.is_some() {
            return false;
        }
        self.cancelled_by = Some(actor.to_owned());
        true
    }

    /// Ends a job its node stopped running (`why`: "node restarted", "node
    /// stopped"): the running step FAILED, the rest CANCELLED, with `why`.
    pub fn interrupted(&mut self, why: &str, now_unix_ns: i64) {
        for s in &mut self.steps {
            match s.status {
                Status::Running => {
                    s.status = Status::Failed;
                    why.clone_into(&mut s.error);
                    s.ended_unix_ns = now_unix_ns;
                    s.process = None;
                }
                Status::Pending => {
                    s.status = Status::Cancelled;
                    why.clone_into(&mut s.error);
                }
                _ => {}
            }
        }
        if self.ended_unix_ns == 0 {
            self.ended_unix_ns = now_unix_ns.max(1);
        }
    }

    /// The job's status: RUNNING while a step runs or more are to run;
    /// CANCELLED if cancelled; FAILED if a step failed without
    /// `continue_on_error` (or the node restarted); else COMPLETED.
    pub fn status(&self) -> Status {
        if self.ended_unix_ns == 0 {
            return if self.steps.iter().all(|s| s.status == Status::Pending) {
                Status::Pending
            } else {
                Status::Running
            };
        }
        if self.cancelled_by.is_some() {
            return Status::Cancelled;
        }
        let failed = self
            .steps
            .iter()
            .zip(&self.spec.steps)
            .any(|(s, spec)| s.status == Status::Failed && !spec.continue_on_error);
        if failed {
            Status::Failed
        } else {
            Status::Completed
        }
    }

    /// The code `gsp run` exits with: a one-step job's own exit code (124 on
    /// timeout); 0 or 1 for a pipeline; 130 when cancelled; 1 if a step could
    /// not start; 0 while not over.
    pub fn exit_code(&self) -> i32 {
        match self.status() {
            Status::Pending | Status::Running | Status::Completed => 0,
            Status::Cancelled => EXIT_CANCELLED,
            Status::Failed if self.steps.len() == 1 => {
                let s = &self.steps[0];
                match s.exit_code {
                    Some(c) => c,
                    None if s.error.starts_with("timed out") => EXIT_TIMEOUT,
                    None => 1,
                }
            }
            Status::Failed => 1,
        }
    }
}
