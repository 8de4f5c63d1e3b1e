//! A job's log-file writer: a task started with the job's first output that
//! writes what the job's ring holds past the file's end, batch by batch, on
//! the blocking pool. The ring keeps what is not written yet (output then
//! waits as for a following reader), so the disk's speed holds back the
//! job's output, never the node's runtime; the task ends with the job, once
//! all is written, or when the file ends (its cap, an error, a stall) or is
//! deleted.

use std::sync::Arc;

use super::{
    Job,
    logfile::{Batch, Writer},
};

/// Bytes of entries written at once, at most (one entry may pass it).
const BATCH_BYTES: usize = 1 << 20;

/// Writes `job`'s log file until it has all of the job's entries.
pub(super) async fn run(job: Arc<Job>) {
    let mut changes = job.subscribe();
    let Some(path) = job.lock().file.as_ref().map(|f| f.path().to_path_buf()) else {
        return;
    };
    let mut writer = Some(Writer::new(path));
    loop {
        changes.borrow_and_update();
        let next = {
            let mut g = job.lock();
            let super::job::Inner {
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
            .is_none_or(super::logfile::LogFile::removed)
    {
        super::delete_files(vec![w.path().to_path_buf()]);
    }
    job.file_progressed();
}

#[cfg(test)]
#[path = "log_writer_tests.rs"]
mod tests;
