//! `<data_dir>/jobs.jsonl`: the records of the jobs this node runs and ran
//! (spec, statuses, who started and cancelled them; not their output;
//! readable by the node's user only, as the steps' environment may hold
//! secrets), read back on start.
//!
//! A journal: a header line, then one line per saved change, each a job's
//! whole record (the last line of a job wins) or `{"forget":ID}` once the
//! job left the history. A save appends the records that changed since the
//! last one, so a change costs its own bytes, not the whole history's
//! (`jobs.json`, rewritten whole three times per job, was most of a node's
//! CPU in `gsp run --all -- true`).
//!
//! Durability: every save is written at once (the page cache keeps it
//! through a crash of the node's process); a [`Sync::Now`] save also syncs
//! it to the disk before it returns, which the node does before a client
//! learns a new job's id. Other changes (a step's process, a step or job
//! ending, a cancel, a job leaving the history) are synced within
//! [`SYNC_DELAY`] by the node's writer task, one sync for all of them, and
//! when the node stops: only a crash of the whole machine within that time
//! loses them, and then the job reads as ended by a restart ("node
//! restarted", FAILED), never as a success it did not have. A step's process
//! needs no sync at all: a machine crash leaves no process to stop. A sync
//! on this VM's virtio disk cost the node more CPU than the rest of a short
//! job's bookkeeping together.
//!
//! Once the journal holds [`COMPACT_FACTOR`] times the lines it needs, it is
//! rewritten with one line per job (atomically: a crash leaves the old
//! journal or the new one).
//!
//! A crash mid-append leaves a partial last line, which the next start skips
//! (what it held was not confirmed to anyone: a [`Sync::Now`] save returns
//! after the sync).
//! Nodes before the journal kept `jobs.json`; it is read once and replaced.

use std::{
    fs::File,
    io::Write as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
};

use serde::Deserialize;
use tracing::warn;

use super::{
    job::Job,
    record::{Forget, Record},
};
use crate::{core::jobs::state::JobState, runtime::identity::write_private};

/// The journal's name inside the data directory.
pub const FILE_NAME: &str = "jobs.jsonl";
const SCHEMA: &str = "gsp.jobs-journal.v1";
/// The file of nodes before the journal, read once when there is no journal.
const OLD_FILE_NAME: &str = "jobs.json";
const OLD_SCHEMA: &str = "gsp.jobs-state.v1";
/// The journal is rewritten once it holds this many times the lines it
/// needs (one per job, plus [`SLACK_LINES`]).
pub const COMPACT_FACTOR: usize = 4;
const SLACK_LINES: usize = 16;
/// Changes saved without [`Sync::Now`] reach the disk within this long.
pub const SYNC_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether a save waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// Synced before the save returns.
    Now,
    /// Written at once, synced by a later [`Store::sync`].
    Later,
}

#[derive(Deserialize)]
struct Header {
    schema: String,
}

#[derive(Deserialize)]
struct OldFile {
    schema: String,
    jobs: Vec<Record>,
}

/// One line of the journal after the header.
#[derive(Deserialize)]
struct Line {
    #[serde(flatten)]
    record: Option<Record>,
    forget: Option<String>,
}

/// Where one node's job records live.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    journal: Mutex<Journal>,
}

#[derive(Debug, Default)]
struct Journal {
    /// Open for appending; `None` before the first save and after a failed
    /// one (the next save rewrites the journal whole).
    file: Option<File>,
    /// Lines after the header.
    lines: usize,
    /// Written since the last sync.
    unsynced: bool,
    /// Why the last save or sync failed (the file and the error), until one
    /// succeeds.
    failed: Option<String>,
}

impl Journal {
    /// Records why a save or sync failed; logs it when it starts failing or
    /// fails for another reason (a full disk is not logged at every retry).
    fn fail(&mut self, path: &Path, why: String) {
        if self.failed.as_deref() != Some(why.as_str()) {
            warn!(path = %path.display(), error = %why, "cannot save the job records; jobs whose records cannot be saved are refused");
        }
        self.failed = Some(why);
    }

    /// A save or sync succeeded: logs the recovery, if it was failing.
    fn recovered(&mut self, path: &Path) {
        if self.failed.take().is_some() {
            tracing::info!(path = %path.display(), "the job records are saved again");
        }
    }

    /// Whether the next save of `jobs` jobs writes the journal whole: none
    /// is open, or it holds [`COMPACT_FACTOR`] times the lines it needs.
    fn due_for_rewrite(&self, jobs: usize) -> bool {
        self.file.is_none() || self.lines > COMPACT_FACTOR * (jobs + SLACK_LINES)
    }
}

impl Store {
    /// The store in `dir`.
    pub fn in_dir(dir: impl AsRef<Path>) -> Self {
        Self {
            path: dir.as_ref().join(FILE_NAME),
            journal: Mutex::new(Journal::default()),
        }
    }

    /// The records saved last, oldest line first (a missing journal is a
    /// first start; one whose header is unreadable is logged and set aside as
    /// `jobs.jsonl.bad`; unreadable lines are logged and skipped).
    pub fn load(&self) -> Vec<(String, String, JobState)> {
        let raw = match std::fs::read(&self.path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return self.load_old(),
            Err(e) => {
                warn!(path = %self.path.display(), error = %e, "cannot read the job records");
                return Vec::new();
            }
        };
        let mut lines = raw.split_inclusive(|&b| b == b'\n');
        let header = lines
            .next()
            .and_then(|h| serde_json::from_slice::<Header>(h).ok());
        match header {
            Some(h) if h.schema == SCHEMA => {}
            Some(h) => {
                warn!(path = %self.path.display(), schema = %h.schema, "unknown job records schema; ignored");
                return Vec::new();
            }
            None => {
                self.set_aside("no header");
                return Vec::new();
            }
        }
        let mut records: Vec<(String, String, JobState)> = Vec::new();
        let mut index = std::collections::HashMap::new();
        let mut bad = 0usize;
        for (n, line) in lines.enumerate() {
            if line.last() != Some(&b'\n') {
                warn!(path = %self.path.display(), line = n + 2,
                    "the job records end in a partial line (a save cut short); skipped");
                break;
            }
            match serde_json::from_slice::<Line>(line) {
                Ok(Line {
                    record: Some(r), ..
                }) => {
                    if let Some(&i) = index.get(&r.id) {
                        records[i] = (r.id, r.actor, r.state);
                    } else {
                        index.insert(r.id.clone(), records.len());
                        records.push((r.id, r.actor, r.state));
                    }
                }
                Ok(Line {
                    forget: Some(id), ..
                }) => {
                    if let Some(i) = index.remove(&id) {
                        records[i].0.clear();
                    }
                }
                Ok(_) | Err(_) => bad += 1,
            }
        }
        if bad > 0 {
            warn!(path = %self.path.display(), lines = bad, "unreadable job record lines skipped");
        }
        records.retain(|r| !r.0.is_empty());
        records
    }

    /// `jobs.json` of a node before the journal (it is removed by the first
    /// save, which writes the journal whole).
    fn load_old(&self) -> Vec<(String, String, JobState)> {
        let old = self.path.with_file_name(OLD_FILE_NAME);
        let Ok(raw) = std::fs::read(&old) else {
            return Vec::new();
        };
        match serde_json::from_slice::<OldFile>(&raw) {
            Ok(d) if d.schema == OLD_SCHEMA => d
                .jobs
                .into_iter()
                .map(|r| (r.id, r.actor, r.state))
                .collect(),
            Ok(_) | Err(_) => {
                warn!(path = %old.display(), "old job records unreadable; ignored");
                Vec::new()
            }
        }
    }

    fn set_aside(&self, why: &str) {
        let bad = self.path.with_extension("jsonl.bad");
        let _ = std::fs::rename(&self.path, &bad);
        warn!(path = %self.path.display(), moved_to = %bad.display(), why,
            "job records unreadable; set aside, starting with none");
    }

    /// [`Self::save`] with [`Sync::Later`] if it is only an append and no
    /// other save or sync holds the journal (one may wait for the disk);
    /// `None` otherwise: nothing saved, or the append failed and closed the
    /// journal, and a [`Self::save`] (which writes it anew) is due now, not
    /// at the next change. Whether some of it waits for a sync.
    pub fn append_if_free(&self, jobs: &[Arc<Job>], forgotten: &[String]) -> Option<bool> {
        let mut journal = match self.journal.try_lock() {
            Ok(j) => j,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        if journal.due_for_rewrite(jobs.len()) {
            return None;
        }
        self.append_to(&mut journal, jobs, forgotten);
        journal.file.as_ref().map(|_| journal.unsynced)
    }

    /// Appends to the open journal; a failure is logged and closes it (the
    /// next save starts a new journal: this one may hold part of the lines).
    fn append_to(&self, journal: &mut Journal, jobs: &[Arc<Job>], forgotten: &[String]) {
        let Some(file) = journal.file.as_mut() else {
            return;
        };
        match Self::append(file, jobs, forgotten) {
            Ok(n) => {
                journal.lines += n;
                journal.unsynced |= n > 0;
            }
            Err(e) => {
                let why = format!("cannot write {}: {e}", self.path.display());
                journal.fail(&self.path, why);
                journal.file = None;
            }
        }
    }

    /// [`Self::save`] with [`Sync::Now`], saying whether all saved is on
    /// disk: `Err` names the file and the error.
    ///
    /// # Errors
    /// The journal could not be written or synced.
    pub fn save_durably(&self, jobs: &[Arc<Job>], forgotten: &[String]) -> Result<(), String> {
        let mut journal = self.journal.lock().unwrap_or_else(PoisonError::into_inner);
        self.save_locked(&mut journal, jobs, forgotten, Sync::Now);
        match (&journal.file, journal.unsynced) {
            (Some(_), false) => Ok(()),
            _ => Err(journal
                .failed
                .clone()
                .unwrap_or_else(|| format!("cannot sync {}", self.path.display()))),
        }
    }

    /// Saves what changed in `jobs` (every job this node keeps) since the
    /// last save, and that `forgotten` left the history; with [`Sync::Now`]
    /// returns once all saved so far is on disk (errors are logged: jobs run
    /// on without records). Returns whether some of it waits for a
    /// [`Store::sync`].
    pub fn save(&self, jobs: &[Arc<Job>], forgotten: &[String], sync: Sync) -> bool {
        let mut journal = self.journal.lock().unwrap_or_else(PoisonError::into_inner);
        self.save_locked(&mut journal, jobs, forgotten, sync);
        journal.unsynced
    }

    fn save_locked(
        &self,
        journal: &mut Journal,
        jobs: &[Arc<Job>],
        forgotten: &[String],
        sync: Sync,
    ) {
        if !journal.due_for_rewrite(jobs.len()) {
            self.append_to(journal, jobs, forgotten);
            if sync == Sync::Now {
                Self::sync_locked(&self.path, journal);
            }
            if journal.file.is_some() {
                return;
            }
            // The append or its sync failed and closed the journal: what this
            // save was to record may be on disk only in part. Written anew
            // now, not at the next save: a `Sync::Now` caller is about to
            // tell a client the job exists.
        }
        match self.rewrite(jobs) {
            Ok(file) => {
                journal.file = Some(file);
                journal.lines = jobs.len();
                // Written whole and synced, the old journal replaced.
                journal.unsynced = false;
                journal.recovered(&self.path);
            }
            Err(e) => {
                let why = format!("cannot write {}: {e}", self.path.display());
                journal.fail(&self.path, why);
                journal.file = None;
            }
        }
    }

    /// Whether the last save or sync failed (the next save writes the
    /// journal anew).
    pub fn failing(&self) -> bool {
        self.journal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failed
            .is_some()
    }

    /// Syncs what was saved with [`Sync::Later`]; whether some of it still
    /// waits (the sync failed: the next save rewrites the journal whole).
    pub fn sync(&self) -> bool {
        let mut journal = self.journal.lock().unwrap_or_else(PoisonError::into_inner);
        Self::sync_locked(&self.path, &mut journal);
        journal.unsynced
    }

    fn sync_locked(path: &Path, journal: &mut Journal) {
        if !journal.unsynced {
            return;
        }
        let Some(file) = journal.file.as_ref() else {
            return;
        };
        match file.sync_data() {
            Ok(()) => {
                journal.unsynced = false;
                journal.recovered(path);
            }
            Err(e) => {
                journal.fail(path, format!("cannot sync {}: {e}", path.display()));
                // What the kernel failed to write may be gone from its cache
                // too: the next save starts a new journal.
                journal.file = None;
            }
        }
    }

    /// Appends the changed records, then the forgotten ids; the lines written.
    fn append(file: &mut File, jobs: &[Arc<Job>], forgotten: &[String]) -> std::io::Result<usize> {
        let mut data = Vec::new();
        let mut wrote = Vec::new();
        for job in jobs {
            if let Some(version) = job.encode_unsaved(&mut data) {
                data.push(b'\n');
                wrote.push((job, version));
            }
        }
        for id in forgotten {
            if serde_json::to_writer(&mut data, &Forget { forget: id }).is_ok() {
                data.push(b'\n');
            }
        }
        if data.is_empty() {
            return Ok(0);
        }
        let lines = wrote.len() + forgotten.len();
        file.write_all(&data)?;
        for (job, version) in wrote {
            job.mark_saved(version);
        }
        Ok(lines)
    }

    /// Writes a new journal holding `jobs` (atomically) and opens it for
    /// appending.
    fn rewrite(&self, jobs: &[Arc<Job>]) -> std::io::Result<File> {
        let mut data = Vec::with_capacity(4096);
        serde_json::to_writer(&mut data, &serde_json::json!({ "schema": SCHEMA }))?;
        data.push(b'\n');
        let mut wrote = Vec::with_capacity(jobs.len());
        for job in jobs {
            let at = data.len();
            if let Some(version) = job.encode_all(&mut data)
                && data.len() > at
            {
                data.push(b'\n');
                wrote.push((job, version));
            }
        }
        write_private(&self.path, &data)?;
        let file = std::fs::OpenOptions::new().append(true).open(&self.path)?;
        for (job, version) in wrote {
            job.mark_saved(version);
        }
        let old = self.path.with_file_name(OLD_FILE_NAME);
        if old.exists() {
            let _ = std::fs::remove_file(old);
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests;
