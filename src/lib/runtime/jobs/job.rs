//! One job: its state and retained output behind a lock, a change counter
//! readers wait on, the pins of readers that follow it (output they have not
//! read is held back for them), and the token that cancels it.

pub(crate) mod log_writer;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError},
    time::Duration,
};

use tokio::sync::watch;
use tracing::warn;

use super::logfile::LogFile;
use tokio_util::sync::CancellationToken;

use crate::core::{
    jobs::{
        log::{Cursor, Entry, LogRing},
        state::{JobState, ProcessRef},
    },
    membership::record::Amounts,
};

/// One job: its state and output behind a lock, a change counter readers
/// wait on, and the token that cancels it.
#[derive(Debug)]
pub struct Job {
    /// Its id (12 hex digits, unique on this node).
    pub id: String,
    /// Who started it.
    pub actor: String,
    /// What it holds while it runs.
    pub reserved: Amounts,
    inner: Mutex<Inner>,
    changed: watch::Sender<u64>,
    /// Woken when a following reader reads or goes away.
    progress: tokio::sync::Notify,
    cancel: CancellationToken,
    /// Its record as saved in the journal, kept once the job is over (a
    /// finished job's record no longer changes): rewriting the journal then
    /// re-encodes only the running jobs, not the whole history.
    final_record: OnceLock<Vec<u8>>,
}

/// What the lock guards.
#[derive(Debug)]
pub struct Inner {
    /// Steps and statuses.
    pub state: JobState,
    /// Retained output and step changes.
    pub log: LogRing,
    /// The same entries on disk, up to its cap (with a data dir).
    pub file: Option<LogFile>,
    /// Where each following reader is: output they have not read is not
    /// dropped while they keep reading (see [`Job::push_log`]).
    pins: BTreeMap<u64, Cursor>,
    next_pin: u64,
    /// Changes of its record so far, and how many of them are saved.
    version: u64,
    saved: u64,
    /// Left the history: its record is never written again (a save that
    /// listed it before then would otherwise bring it back after its
    /// `forget` line).
    forgotten: bool,
}

impl Inner {
    /// Appends `entry` to the ring (the file's writer takes it from there:
    /// entry N of one is entry N of the other).
    fn push(&mut self, entry: Entry) {
        self.log.push(entry);
    }

    /// Whether pushing `cost` bytes of output would drop an entry a
    /// following reader has not read, or the log file has not taken.
    fn would_drop_unread(&self, cost: usize) -> bool {
        self.pins
            .values()
            .chain(self.file.as_ref().and_then(LogFile::behind))
            .any(|c| self.log.would_drop_unread(c, cost))
    }
}

/// A following reader's hold on a job's output; let go when dropped.
#[derive(Debug)]
pub struct ReaderPin {
    job: Arc<Job>,
    id: u64,
}

impl ReaderPin {
    /// The reader has read up to `cursor`.
    pub fn advance(&self, cursor: Cursor) {
        if let Some(c) = self.job.lock().pins.get_mut(&self.id) {
            *c = cursor;
        }
        self.job.progress.notify_waiters();
    }
}

impl Drop for ReaderPin {
    fn drop(&mut self) {
        self.job.lock().pins.remove(&self.id);
        self.job.progress.notify_waiters();
    }
}

/// How long a following reader may read nothing while the job's output
/// waits for it; then it is let go of (it sees a gap) and output flows on.
pub const READER_STALL: Duration = Duration::from_secs(10);

impl Job {
    pub(super) fn new(id: String, actor: String, state: JobState, log_bytes: usize) -> Self {
        Self {
            id,
            actor,
            reserved: Amounts::default(),
            inner: Mutex::new(Inner {
                state,
                log: LogRing::new(log_bytes),
                file: None,
                pins: BTreeMap::new(),
                next_pin: 0,
                version: 1,
                saved: 0,
                forgotten: false,
            }),
            changed: watch::Sender::new(0),
            progress: tokio::sync::Notify::new(),
            cancel: CancellationToken::new(),
            final_record: OnceLock::new(),
        }
    }

    /// Appends its record, as the journal holds it, to `out` if it changed
    /// since it was last saved; the version written.
    pub(super) fn encode_unsaved(&self, out: &mut Vec<u8>) -> Option<u64> {
        let g = self.lock();
        (g.version != g.saved && !g.forgotten).then(|| self.encode(&g, out))
    }

    /// Appends its record to `out` (unless it left the history); the version
    /// written.
    pub(super) fn encode_all(&self, out: &mut Vec<u8>) -> Option<u64> {
        let g = self.lock();
        (!g.forgotten).then(|| self.encode(&g, out))
    }

    /// It left the history: its record is not to be written again.
    pub(super) fn forget(&self) {
        self.lock().forgotten = true;
    }

    fn encode(&self, g: &Inner, out: &mut Vec<u8>) -> u64 {
        if let Some(bytes) = self.final_record.get() {
            out.extend_from_slice(bytes);
            return g.version;
        }
        let start = out.len();
        super::record::encode_record(&self.id, &self.actor, &g.state, out);
        if g.state.status().is_final() {
            let _ = self.final_record.set(out[start..].to_vec());
        }
        g.version
    }

    /// Its record as of `version` is on disk.
    pub(super) fn mark_saved(&self, version: u64) {
        let mut g = self.lock();
        g.saved = g.saved.max(version);
    }

    /// Records the process running step `i` (readers are not told: it is for
    /// the node's next start, see [`super::leftover`]).
    pub fn set_process(&self, i: usize, process: ProcessRef) {
        let mut g = self.lock();
        if let Some(step) = g.state.steps.get_mut(i) {
            step.process = Some(process);
            g.version += 1;
        }
    }

    /// The state and log, locked (never held across an await).
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the state with `f`, records every step whose state changed in
    /// the log, and wakes readers. A call that changed nothing (a job with no
    /// step left to start, a second cancel) leaves the record unsaved-clean
    /// and the readers asleep.
    pub fn update<T>(&self, f: impl FnOnce(&mut JobState) -> T) -> T {
        let (out, any) = {
            let mut g = self.lock();
            // The spec never changes after the job is made: the rest is
            // what a change can touch.
            let before = (
                g.state.steps.clone(),
                g.state.created_unix_ns,
                g.state.ended_unix_ns,
                g.state.cancelled_by.clone(),
                g.state.gpus.iter().filter(|d| d.lost).count(),
            );
            let out = f(&mut g.state);
            let changed: Vec<_> = g
                .state
                .steps
                .iter()
                .enumerate()
                .filter(|(i, s)| before.0.get(*i) != Some(*s))
                .map(|(i, s)| Entry::Step(u32::try_from(i).unwrap_or(u32::MAX), s.clone()))
                .collect();
            let any = !changed.is_empty()
                || g.state.steps.len() != before.0.len()
                || (before.1, before.2, &before.3, before.4)
                    != (
                        g.state.created_unix_ns,
                        g.state.ended_unix_ns,
                        &g.state.cancelled_by,
                        g.state.gpus.iter().filter(|d| d.lost).count(),
                    );
            if any {
                g.version += 1;
            }
            for e in changed {
                g.push(e);
            }
            (out, any)
        };
        if any {
            self.changed.send_modify(|n| *n += 1);
        }
        out
    }

    /// Appends output and wakes readers. While a following reader (a `gsp
    /// run` or `gsp logs --follow` client) has not read what the ring would
    /// drop to make room, this waits for it, so the step's writes block as on
    /// a full pipe rather than its output being lost; a reader that reads
    /// nothing for `stall` is let go of (it is told of the gap).
    pub async fn push_log(self: &Arc<Self>, entry: Entry, stall: Duration) {
        let cost = entry.cost();
        // The log file's writer starts with the first output, before that
        // output waits for room: the ring holds back what the file has not
        // taken, the step changes before this output included.
        if self.lock().file.as_mut().is_some_and(LogFile::start) {
            tokio::spawn(log_writer::run(Arc::clone(self)));
        }
        let mut entry = Some(entry);
        loop {
            let progressed = self.progress.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            {
                // Checked and pushed under one lock: the stdout and stderr
                // pumps push concurrently, and two that both saw room for
                // their own entry could otherwise drop what a reader has not
                // read.
                let mut g = self.lock();
                if !g.would_drop_unread(cost) {
                    if let Some(e) = entry.take() {
                        g.push(e);
                    }
                    break;
                }
            }
            if tokio::time::timeout(stall, progressed).await.is_err() {
                let mut g = self.lock();
                let Inner {
                    log, pins, file, ..
                } = &mut *g;
                pins.retain(|_, c| !log.would_drop_unread(c, cost));
                if let Some(f) = file
                    && f.behind().is_some_and(|c| log.would_drop_unread(c, cost))
                {
                    self.end_stalled_file(f, stall);
                }
                if let Some(e) = entry.take() {
                    g.push(e);
                }
                break;
            }
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// Holds output for a following reader until it reads it (see
    /// [`Self::push_log`]).
    pub fn pin(self: &Arc<Self>) -> ReaderPin {
        let id = {
            let mut g = self.lock();
            let id = g.next_pin;
            g.next_pin += 1;
            g.pins.insert(id, Cursor::default());
            id
        };
        ReaderPin {
            job: Arc::clone(self),
            id,
        }
    }

    /// Wakes what waits for room in the ring (see [`Self::push_log`]): the
    /// log file's writer took entries.
    pub(super) fn file_progressed(&self) {
        self.progress.notify_waiters();
    }

    /// Returns once the log file holds every entry (or takes no more): its
    /// writer gets `stall` at most to catch up after its last write, then
    /// the file ends there.
    pub async fn log_written(&self, stall: Duration) {
        loop {
            let progressed = self.progress.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            {
                let g = self.lock();
                let behind = g
                    .file
                    .as_ref()
                    .filter(|f| f.is_live())
                    .and_then(LogFile::behind);
                if behind.is_none_or(|c| g.log.is_read(c)) {
                    return;
                }
            }
            if tokio::time::timeout(stall, progressed).await.is_err() {
                if let Some(f) = self.lock().file.as_mut() {
                    self.end_stalled_file(f, stall);
                }
                return;
            }
        }
    }

    /// Ends `f`, whose writer took nothing for `stall`: what it holds stays,
    /// the rest of the output is in memory only.
    fn end_stalled_file(&self, f: &mut LogFile, stall: Duration) {
        warn!(job = %self.id, path = %f.path().display(), stalled_s = stall.as_secs(), "the job's log file took nothing for a while; it ends here, and the rest of the output stays in memory only");
        f.end();
    }

    /// A receiver woken on every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Fires when the job is to stop.
    pub fn cancelled(&self) -> &CancellationToken {
        &self.cancel
    }
}
