//! Jobs on this node (`gsp node --exec`): a bounded table of jobs, each run
//! by its own task ([`runner`]), its output kept in a bounded ring and its
//! records persisted in the data dir ([`store`]); served over gRPC by
//! [`service`].
//!
//! Bounds: at most `max_running` jobs run at once (a further `Run` is refused
//! with RESOURCE_EXHAUSTED, naming the limit); the newest `history` finished
//! jobs are kept (older ones are forgotten, output and all); each job keeps
//! the newest `log_bytes` of output (readers are told what they missed), and
//! finished jobs keep `history_log_bytes` of output in all (the oldest lose
//! theirs first; their records stay).

mod job;
pub mod leftover;
pub mod logfile;
mod persist;
mod record;
pub mod runner;
pub mod service;
pub mod store;

pub use job::{Inner, Job, READER_STALL, ReaderPin};

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use rand::Rng as _;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::resources::Reservations;
use crate::core::{
    jobs::{
        log::LogRing,
        spec::JobSpec,
        state::{JobGpu, JobState},
    },
    membership::record::Amounts,
    resources::request::GpuFilter,
};

/// Jobs running at once by default.
pub const DEFAULT_MAX_RUNNING: usize = 4;
/// Output kept per job by default.
pub const DEFAULT_LOG_BYTES: usize = 8 << 20;
/// Finished jobs kept by default.
pub const DEFAULT_HISTORY: usize = 100;
/// Time between SIGTERM and SIGKILL by default.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// How this node runs jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobsConfig {
    /// Whether it runs any (`--exec`); off by default.
    pub enabled: bool,
    /// Jobs running at once, at most.
    pub max_running: usize,
    /// Output bytes kept per job.
    pub log_bytes: usize,
    /// Finished jobs kept.
    pub history: usize,
    /// Time a cancelled or timed-out step gets between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// Output kept in memory of finished jobs in all (the newest jobs' first).
    pub history_log_bytes: usize,
    /// Bytes of one job's log file, at most (with a data dir).
    pub log_file_bytes: u64,
    /// Bytes of finished jobs' log files in all (the oldest deleted first).
    pub history_file_bytes: u64,
    /// Jobs that asked for no GPU see every GPU (otherwise
    /// `CUDA_VISIBLE_DEVICES` is set empty for them).
    pub expose_gpus: bool,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_running: DEFAULT_MAX_RUNNING,
            log_bytes: DEFAULT_LOG_BYTES,
            history: DEFAULT_HISTORY,
            grace: DEFAULT_GRACE,
            history_log_bytes: 4 * DEFAULT_LOG_BYTES,
            log_file_bytes: 8 * DEFAULT_LOG_BYTES as u64,
            history_file_bytes: 32 * DEFAULT_LOG_BYTES as u64,
            expose_gpus: false,
        }
    }
}

/// Deletes log files on the blocking pool (an unlink waits for the disk,
/// which may be stalled), or here outside a runtime.
pub(crate) fn delete_files(paths: Vec<PathBuf>) {
    if paths.is_empty() {
        return;
    }
    let delete = move || {
        for p in paths {
            let _ = std::fs::remove_file(p);
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => drop(rt.spawn_blocking(delete)),
        Err(_) => delete(),
    }
}

fn log_path(dir: &std::path::Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.log"))
}

/// A job registered by [`Jobs::start`], not running until [`Jobs::launch`].
#[derive(Debug)]
pub struct Admitted {
    job: Arc<Job>,
    pin: ReaderPin,
    held: super::resources::Reservation,
}

/// Why a job was not started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `--exec` is off.
    #[error(
        "this node does not run jobs; start it with `gsp node --exec` (or `exec: true` in its config)"
    )]
    Disabled,
    /// At the running-jobs limit.
    #[error("this node already runs {0} jobs, its limit (--exec-max-jobs)")]
    Busy(usize),
    /// Not enough free resources for the reservation.
    #[error("not enough free resources: {0}")]
    Short(String),
    /// The job's record could not be synced to the data dir: it was taken
    /// back and never ran.
    #[error("cannot record the job ({0}); nothing was started")]
    Unrecorded(String),
}

/// Kills what the running step of `state`, a job found unfinished at start,
/// left running; returns why the job ended.
fn stop_leftovers(id: &str, state: &crate::core::jobs::state::JobState) -> &'static str {
    let mut why = "node restarted";
    for step in &state.steps {
        let Some(p) = &step.process else { continue };
        match leftover::stop(p) {
            leftover::Leftover::Gone => {}
            leftover::Leftover::Killed => {
                warn!(job = id, step = %step.name, pgid = p.pgid,
                    "the step's processes outlived the node; killed");
                why = "node restarted; the step's processes, still running, were killed";
            }
            leftover::Leftover::NotKilled => {
                warn!(job = id, step = %step.name, pgid = p.pgid,
                    "the step's processes outlived the node and could not be killed");
                why =
                    "node restarted; the step's processes are still running (could not be killed)";
            }
        }
    }
    why
}

/// The node's jobs.
#[derive(Debug, Clone)]
pub struct Jobs {
    inner: Arc<Table>,
}

#[derive(Debug)]
struct Table {
    config: JobsConfig,
    node: (String, String),
    jobs: Mutex<BTreeMap<String, Arc<Job>>>,
    store: Option<store::Store>,
    /// Where job log files go (`<data_dir>/jobs`).
    log_dir: Option<PathBuf>,
    reservations: Reservations,
    /// Wakes the writer task.
    dirty: tokio::sync::Notify,
    /// Jobs that left the history since the records were saved.
    forgotten: Mutex<Vec<String>>,
    shutdown: CancellationToken,
}

impl Jobs {
    /// The jobs of node `(id, name)`; records persisted in `data_dir` if set
    /// (jobs found running there from a previous run are ended FAILED, "node
    /// restarted").
    pub fn new(
        config: JobsConfig,
        reservations: Reservations,
        node: (String, String),
        data_dir: Option<PathBuf>,
        shutdown: CancellationToken,
    ) -> Self {
        let store = data_dir.as_ref().map(store::Store::in_dir);
        let log_dir = data_dir.map(|d| d.join("jobs"));
        let mut jobs = BTreeMap::new();
        if let (Some(s), Some(dir)) = (&store, &log_dir) {
            for (id, actor, mut state) in s.load() {
                if !state.status().is_final() {
                    let why = stop_leftovers(&id, &state);
                    state.interrupted(why, crate::clock::unix_ns());
                }
                let job = Job::new(id.clone(), actor, state, 64 * 1024);
                // Its output of the earlier run is on disk only: readers replay it.
                if let Some((file, bytes)) = logfile::LogFile::existing(log_path(dir, &id)) {
                    let mut g = job.lock();
                    g.log = LogRing::resumed(64 * 1024, file.entries(), bytes);
                    g.file = Some(file);
                }
                jobs.insert(id, Arc::new(job));
            }
        }
        let table = Table {
            config,
            node,
            jobs: Mutex::new(jobs),
            store,
            log_dir,
            reservations,
            dirty: tokio::sync::Notify::new(),
            forgotten: Mutex::new(Vec::new()),
            shutdown,
        };
        let this = Self {
            inner: Arc::new(table),
        };
        if this.inner.store.is_some() {
            this.save_now();
            tokio::spawn(this.clone().writer());
        }
        this
    }

    /// The configuration.
    pub fn config(&self) -> &JobsConfig {
        &self.inner.config
    }

    /// This node's `(id, name)`.
    pub fn node(&self) -> &(String, String) {
        &self.inner.node
    }

    fn table(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Job>>> {
        self.inner
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `spec` (normalized) for `actor`, holding `reserve` (its
    /// GPUs as devices that pass `gpu`): the job is listed (pending) but
    /// does not run until [`Self::launch`] has its record, the devices it
    /// was given among it, on disk.
    ///
    /// # Errors
    /// Jobs are disabled, as many run as may, or `reserve` is not free.
    pub fn start(
        &self,
        spec: JobSpec,
        actor: String,
        reserve: Amounts,
        gpu: &GpuFilter,
    ) -> Result<Admitted, StartError> {
        let cfg = &self.inner.config;
        if !cfg.enabled {
            return Err(StartError::Disabled);
        }
        let mut doomed = Vec::new();
        let job = {
            let mut table = self.table();
            let running = table
                .values()
                .filter(|j| !j.lock().state.status().is_final())
                .count();
            if running >= cfg.max_running {
                return Err(StartError::Busy(running));
            }
            let held = self
                .inner
                .reservations
                .try_reserve(reserve, gpu)
                .map_err(StartError::Short)?;
            // Forget the oldest finished jobs beyond the history bound.
            let mut finished: Vec<(i64, String)> = table
                .values()
                .filter_map(|j| {
                    let g = j.lock();
                    g.state
                        .status()
                        .is_final()
                        .then(|| (g.state.created_unix_ns, j.id.clone()))
                })
                .collect();
            let excess = finished.len().saturating_sub(cfg.history.saturating_sub(1));
            if excess > 0 && excess < finished.len() {
                // The `excess` oldest first (usually one: no need to sort all).
                finished.select_nth_unstable(excess - 1);
            }
            for (_, id) in finished.into_iter().take(excess) {
                if let Some(old) = table.remove(&id) {
                    old.forget();
                    if let Some(path) = old.lock().file.as_mut().and_then(logfile::LogFile::remove)
                    {
                        doomed.push(path);
                    }
                    self.inner
                        .forgotten
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(id);
                }
            }
            let mut rng = rand::rng();
            let id = loop {
                let id = format!("{:012x}", rng.random::<u64>() >> 16);
                if !table.contains_key(&id) {
                    break id;
                }
            };
            let mut state = JobState::new(spec, crate::clock::unix_ns());
            state.gpus = held
                .gpus()
                .iter()
                .map(|d| JobGpu {
                    uuid: d.uuid.clone(),
                    index: d.index,
                    lost: false,
                })
                .collect();
            let mut job = Job::new(id.clone(), actor, state, cfg.log_bytes);
            job.reserved = reserve;
            if let Some(dir) = &self.inner.log_dir {
                job.lock().file = Some(logfile::LogFile::create(
                    log_path(dir, &id),
                    cfg.log_file_bytes,
                ));
            }
            let job = Arc::new(job);
            table.insert(id, Arc::clone(&job));
            (job, held)
        };
        let (job, held) = job;
        delete_files(doomed);
        let pin = job.pin();
        Ok(Admitted { job, pin, held })
    }

    /// Syncs the records (`admitted`'s among them) to the data dir, then
    /// runs the job; the job's output is held for the returned pin from the
    /// start. A client learns a job's id only from here: a node killed from
    /// then on reports the job at its next start ("node restarted"), never
    /// forgets it, and never leaves its processes running unknown to it.
    ///
    /// # Errors
    /// The record could not be written and synced (a full or read-only
    /// disk): the job is taken back (unlisted, its reservation freed, a
    /// later save records that it is gone) and never runs.
    pub async fn launch(&self, admitted: Admitted) -> Result<(Arc<Job>, ReaderPin), StartError> {
        let Admitted { job, pin, held } = admitted;
        let jobs = self.clone();
        let saved = tokio::task::spawn_blocking(move || jobs.save_durably())
            .await
            .unwrap_or_else(|e| Err(format!("the save failed: {e}")));
        if let Err(why) = saved {
            warn!(job = %job.id, error = %why, "job refused: its record cannot be saved");
            self.withdraw(&job);
            drop(held);
            return Err(StartError::Unrecorded(why));
        }
        tokio::spawn(runner::run(self.clone(), Arc::clone(&job), held));
        Ok((job, pin))
    }

    /// Takes back a job that never ran.
    fn withdraw(&self, job: &Arc<Job>) {
        let removed = self.table().remove(&job.id).is_some();
        job.forget();
        if removed {
            // Its line may have reached the disk before the save failed.
            self.forgotten().push(job.id.clone());
        }
        if let Some(path) = job.lock().file.as_mut().and_then(logfile::LogFile::remove) {
            delete_files(vec![path]);
        }
    }

    /// The job `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.table().get(id).cloned()
    }

    /// Every job, oldest first.
    pub fn list(&self) -> Vec<Arc<Job>> {
        let mut jobs: Vec<_> = self.table().values().cloned().collect();
        jobs.sort_by_cached_key(|j| j.lock().state.created_unix_ns);
        jobs
    }

    /// Asks job `id` to stop for `actor`; `None` if there is no such job,
    /// `Some(false)` if it was over or already stopping.
    pub fn cancel(&self, id: &str, actor: &str) -> Option<bool> {
        let job = self.get(id)?;
        let asked = job.update(|s| s.cancel(actor));
        if asked {
            job.cancelled().cancel();
            self.persist();
        }
        Some(asked)
    }

    /// Keeps the output of finished jobs within `history_log_bytes` in all:
    /// beyond it, the oldest finished jobs' output is dropped (their records
    /// and step statuses stay; a reader is told of the gap).
    pub fn trim_history(&self) {
        let cfg = &self.inner.config;
        let mut finished: Vec<_> = self
            .list()
            .into_iter()
            .filter(|j| j.lock().state.status().is_final())
            .collect();
        finished.reverse();
        let mut doomed = Vec::new();
        let (mut in_memory, mut on_disk) = (0usize, 0u64);
        for j in finished {
            let mut g = j.lock();
            in_memory += g.log.held();
            if in_memory > cfg.history_log_bytes {
                g.log.clear_output();
            }
            if let Some(f) = g.file.as_mut() {
                on_disk += f.written();
                if on_disk > cfg.history_file_bytes
                    && let Some(path) = f.remove()
                {
                    doomed.push(path);
                }
            }
        }
        delete_files(doomed);
    }

    /// Fires when the node shuts down.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }
}
