//! A job's log-file writer: a task started with the job's first output that
//! writes what the job's ring holds past the file's end, batch by batch, on
//! the blocking pool. The ring keeps what is not written yet (output then
//! waits as for a following reader), so the disk's speed holds back the
//! job's output, never the node's runtime; the task ends with the job, once
//! all is written, or when the file ends (its cap, an error, a stall) or is
//! deleted. [`Writer`] is the blocking half: the open file, appended to
//! in the format [`crate::runtime::jobs::logfile`] reads.

use std::{
    fs::File,
    io,
    path::{Path, PathBuf},
    sync::Arc,
};

use tracing::warn;

use crate::core::jobs::log::Entry;
use crate::runtime::jobs::{
    Job,
    logfile::{Batch, Wrote, record, write_both},
};

/// Bytes of entries written at once, at most (one entry may pass it).
const BATCH_BYTES: usize = 1 << 20;

/// Writes `job`'s log file until it has all of the job's entries.
pub(in crate::runtime::jobs) async fn run(job: Arc<Job>) {
    let mut changes = job.subscribe();
    let Some(path) = job.lock().file.as_ref().map(|f| f.path().to_path_buf()) else {
        return;
    };
    let mut writer = Some(Writer::new(path));
    loop {
        changes.borrow_and_update();
        let next = {
            let mut g = job.lock();
            let super::Inner {
                log, file, state, ..
            } = &mut *g;
            match file.as_mut() {
                Some(f) if f.is_live() => match f.next_batch(log, BATCH_BYTES) {
                    Some(b) if b.entries.is_empty() => {
                        if state.status().is_final() {
                            break;
                        }
                        None
                    }
                    Some(b) => Some(b),
                    None => break,
                },
                _ => break,
            }
        };
        let Some(Batch { entries, room }) = next else {
            if changes.changed().await.is_err() {
                break;
            }
            continue;
        };
        let Some(mut w) = writer.take() else { break };
        let Ok((w, entries, wrote)) = tokio::task::spawn_blocking(move || {
            let wrote = w.write(&entries, room);
            (w, entries, wrote)
        })
        .await
        else {
            break;
        };
        let live = job
            .lock()
            .file
            .as_mut()
            .is_some_and(|f| f.wrote(&entries, &wrote));
        job.file_progressed();
        writer = Some(w);
        if !live {
            break;
        }
    }
    // Deleted while this task created it: it is this task's to delete.
    if let Some(w) = writer
        && w.created()
        && job
            .lock()
            .file
            .as_ref()
            .is_none_or(crate::runtime::jobs::logfile::LogFile::removed)
    {
        crate::runtime::jobs::delete_files(vec![w.path().to_path_buf()]);
    }
    job.file_progressed();
}

/// The open file, held by the job's writer task (blocking I/O: called on
/// the blocking pool).
#[derive(Debug)]
pub(crate) struct Writer {
    path: PathBuf,
    file: Option<File>,
}

impl Writer {
    /// The writer of the file at `path`, created with the first write.
    pub(crate) fn new(path: PathBuf) -> Self {
        Self { path, file: None }
    }

    /// Whether it created the file.
    pub(crate) fn created(&self) -> bool {
        self.file.is_some()
    }

    /// Where it writes.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `entries` while `room` allows; the entry that would pass it
    /// ends the file.
    pub(crate) fn write(&mut self, entries: &[Entry], mut room: u64) -> Wrote {
        let mut wrote = Wrote::default();
        if self.file.is_none() {
            self.file = self.open();
            if self.file.is_none() {
                wrote.ended = true;
                return wrote;
            }
        }
        let Some(f) = self.file.as_mut() else {
            wrote.ended = true;
            return wrote;
        };
        for entry in entries {
            let (kind, step, payload) = record(entry);
            let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
            let size = 9 + u64::from(len);
            if size > room {
                wrote.ended = true;
                break;
            }
            let mut head = [0u8; 9];
            head[0] = kind;
            head[1..5].copy_from_slice(&step.to_le_bytes());
            head[5..9].copy_from_slice(&len.to_le_bytes());
            if let Err(e) = write_both(f, &head, &payload) {
                warn!(path = %self.path.display(), error = %e, "cannot write the job's log file; output stays in memory only");
                wrote.ended = true;
                break;
            }
            room -= size;
            wrote.bytes += size;
            wrote.entries += 1;
        }
        wrote
    }

    fn open(&self) -> Option<File> {
        // The directory is made once, when the first file finds it missing.
        File::create(&self.path)
            .or_else(|e| match self.path.parent() {
                Some(dir) if e.kind() == io::ErrorKind::NotFound => {
                    std::fs::create_dir_all(dir).and_then(|()| File::create(&self.path))
                }
                _ => Err(e),
            })
            .map_err(
                |e| warn!(path = %self.path.display(), error = %e, "cannot create the job's log file"),
            )
            .ok()
    }
}

#[cfg(test)]
mod tests;
