//! Saving the jobs' records ([`super::store`]): at once when a client is to
//! learn a new job, otherwise by the writer task, which coalesces bursts of
//! changes and syncs them within [`store::SYNC_DELAY`].

use std::sync::PoisonError;

use super::{Jobs, store};

impl Jobs {
    /// Saves changes as [`Jobs::persist`] asks (written at once, coalescing
    /// bursts), and syncs them within [`store::SYNC_DELAY`], one sync for all
    /// that came meanwhile.
    pub(super) async fn writer(self) {
        let mut sync_at: Option<tokio::time::Instant> = None;
        // Consecutive saves that failed (a full disk): the next retry waits
        // twice as long each time, up to 32 s.
        let mut failures = 0u32;
        loop {
            let due = async {
                match sync_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let changed = tokio::select! {
                () = self.inner.dirty.notified() => true,
                () = due => false,
                () = self.inner.shutdown.cancelled() => {
                    // What waits for its sync gets it before the node stops
                    // (its runners save theirs the same way).
                    self.save_now();
                    return;
                }
            };
            // A few hundred bytes appended into the page cache, as the jobs'
            // log files are written: on this task, where a hand-off to the
            // blocking pool cost more than the write. A sync, a rewrite, or
            // a journal another save holds waits for the disk: not here.
            let inline = if changed { self.append_if_free() } else { None };
            let unsynced = if let Some(unsynced) = inline {
                unsynced
            } else {
                let w = self.clone();
                tokio::task::spawn_blocking(move || {
                    if changed {
                        w.save(store::Sync::Later)
                    } else {
                        w.sync()
                    }
                })
                .await
                .unwrap_or(true)
            };
            let failing = self.inner.store.as_ref().is_some_and(store::Store::failing);
            failures = if failing {
                failures.saturating_add(1)
            } else {
                0
            };
            let now = tokio::time::Instant::now();
            let retry = store::SYNC_DELAY * (1u32 << failures.min(5));
            sync_at = match (unsynced || failing, sync_at) {
                (false, _) => None,
                // A change before the sync that was due: still due then.
                (true, Some(at)) if changed && !failing && at > now => Some(at),
                // The sync ran (or failed): the next one a delay from now,
                // never at a deadline already past (that spun a core on a
                // full disk).
                (true, _) => Some(now + retry),
            };
        }
    }

    /// Has every job's record written soon (by the writer task, which
    /// coalesces bursts of changes).
    pub fn persist(&self) {
        self.inner.dirty.notify_one();
    }

    /// Saves the records that changed since the last save, and returns once
    /// all saved so far is on disk (errors are logged: jobs run on without).
    pub fn save_now(&self) {
        self.save(store::Sync::Now);
    }

    /// [`store::Store::append_if_free`] of the records that changed.
    fn append_if_free(&self) -> Option<bool> {
        let Some(store) = &self.inner.store else {
            return Some(false);
        };
        let jobs: Vec<_> = self.table().values().cloned().collect();
        // Not held while the append waits for the disk: a job starting
        // meanwhile adds to it under the table's lock, which everything
        // else of this node's jobs takes too.
        let forgotten = self.forgotten().clone();
        let saved = store.append_if_free(&jobs, &forgotten);
        if saved.is_some() && !forgotten.is_empty() {
            self.forgotten().retain(|id| !forgotten.contains(id));
        }
        saved
    }

    /// Saves every change and syncs it, for a job about to start: `Err`
    /// names the file and the error when its record is not on disk.
    pub(super) fn save_durably(&self) -> Result<(), String> {
        let Some(store) = &self.inner.store else {
            return Ok(());
        };
        let jobs: Vec<_> = self.table().values().cloned().collect();
        let forgotten = std::mem::take(&mut *self.forgotten());
        store.save_durably(&jobs, &forgotten)
    }

    pub(super) fn forgotten(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.inner
            .forgotten
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Syncs what was saved without; whether some still waits (after a
    /// failed sync the journal is written anew, and synced, at once).
    fn sync(&self) -> bool {
        match &self.inner.store {
            Some(store) if store.sync() => self.save(store::Sync::Now),
            _ => false,
        }
    }

    /// Saves the records that changed since the last save; whether some wait
    /// for a sync.
    fn save(&self, sync: store::Sync) -> bool {
        let Some(store) = &self.inner.store else {
            return false;
        };
        // In any order: the journal does not keep one.
        let jobs: Vec<_> = self.table().values().cloned().collect();
        // A job forgotten since the list was taken is not written again (see
        // `Job::forget`), whichever save writes its `forget` line first.
        let forgotten = std::mem::take(&mut *self.forgotten());
        store.save(&jobs, &forgotten, sync)
    }
}
