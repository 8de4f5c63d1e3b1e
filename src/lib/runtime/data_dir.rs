//! Whether the node can write its data dir. Every durable promise checks its
//! own write (a job whose record cannot be synced is not started; a label or
//! maintenance change that cannot be saved is refused, naming the file);
//! this says so for the node as a whole: every [`CHECK_EVERY`] it writes,
//! syncs and removes a small file there, on the blocking pool, and a check
//! that fails or takes over [`CHECK_TIMEOUT`] (a frozen or hung disk) marks
//! the data dir unwritable until one succeeds. Shown by `gsp peers` (a
//! warning), `/readyz` (503) and `gsp_data_dir_writable`; each change is
//! logged once.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How often the data dir is checked.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);
/// A check that takes longer than this counts as failed (it may still be
/// stuck in the kernel; the next starts only once it returns).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// The file each check writes and removes.
pub const CHECK_FILE: &str = ".gsp-write-check";

/// The data dir's writability, as last checked.
#[derive(Debug, Default)]
pub struct DataDirHealth {
    /// Why the last check failed (`None`: it succeeded, or none ran yet).
    failure: Mutex<Option<String>>,
    /// Checks that failed, since start.
    failures: AtomicU64,
}

impl DataDirHealth {
    /// Why the data dir cannot be written, if the last check failed.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Checks that failed since the node started.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Records a check's outcome; logs a change once.
    pub fn record(&self, outcome: Result<(), String>) {
        let mut failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Ok(()) => {
                if failure.take().is_some() {
                    info!("the data dir is writable again");
                }
            }
            Err(why) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                if failure.is_none() {
                    warn!(reason = %why, "cannot write the data dir: jobs are refused, and changes to labels and maintenance cannot be saved");
                }
                *failure = Some(why);
            }
        }
    }
}

/// One check: writes, syncs and removes [`CHECK_FILE`] in `dir`. A failure
/// names the file and the error.
///
/// # Errors
/// Any step failed.
pub fn check(dir: &Path) -> Result<(), String> {
    let path = dir.join(CHECK_FILE);
    let written = std::fs::File::create(&path)
        .and_then(|mut f| {
            f.write_all(b"gsp\n")?;
            f.sync_all()
        })
        .map_err(|e| format!("cannot write {}: {e}", path.display()));
    let removed = std::fs::remove_file(&path);
    written?;
    removed.map_err(|e| format!("cannot remove {}: {e}", path.display()))
}

/// Checks `dir` every [`CHECK_EVERY`] until `shutdown`, recording each
/// outcome in `health` (the first at once).
pub async fn keep_checking(dir: PathBuf, health: Arc<DataDirHealth>, shutdown: CancellationToken) {
    loop {
        let d = dir.clone();
        let task = tokio::task::spawn_blocking(move || check(&d));
        let outcome = tokio::select! {
            () = shutdown.cancelled() => return,
            r = tokio::time::timeout(CHECK_TIMEOUT, task) => match r {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(e)) => Err(format!("the check of {} failed: {e}", dir.display())),
                Err(_) => Err(format!(
                    "writing to {} took over {CHECK_TIMEOUT:?} (a frozen or hung disk?)",
                    dir.display()
                )),
            },
        };
        health.record(outcome);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(CHECK_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn a_directory_that_cannot_be_written_fails_its_check_by_name() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check(dir.path()), Ok(()));
        assert!(!dir.path().join(CHECK_FILE).exists(), "nothing left behind");
        let gone = dir.path().join("gone");
        let why = check(&gone).unwrap_err();
        assert!(why.contains("gone/.gsp-write-check"), "{why}");
        let h = DataDirHealth::default();
        h.record(Err(why.clone()));
        assert_eq!(h.failure(), Some(why));
        assert_eq!(h.failures(), 1);
        h.record(Ok(()));
        assert_eq!(h.failure(), None);
    }
}
