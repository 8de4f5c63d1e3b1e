//! The ids of delivered broadcasts, on disk, so a node that restarts within
//! `--seen-ttl` still refuses what it delivered before (a sender's retry, a
//! piece or pull in flight across the restart): exactly once holds across
//! restarts, not only within one run.
//!
//! Two append-only files in the data dir, `seen.log` and `seen.log.old`, of
//! 24-byte records (16-byte id, 8-byte unix milliseconds, big-endian). Each
//! delivery appends one record with one `write` (the page cache keeps it across
//! a crash of the process; a power loss may lose the last few). When the
//! current file is older than the TTL, or holds more records than the seen
//! cache does, it becomes the old one and a new one starts, so the two cover
//! at least the TTL and the disk holds at most twice the cache's ids. At start
//! both are read, records older than the TTL skipped, a torn last record
//! ignored.

use std::{
    fs::{File, OpenOptions},
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tracing::warn;

use crate::core::ids::MessageId;

const RECORD: usize = 24;
const FILE: &str = "seen.log";
const OLD: &str = "seen.log.old";

struct Current {
    file: Option<File>,
    records: usize,
    started: SystemTime,
}

/// The on-disk seen set of one node.
pub(super) struct SeenLog {
    dir: PathBuf,
    ttl: Duration,
    max_records: usize,
    current: Mutex<Current>,
}

impl std::fmt::Debug for SeenLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeenLog")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Reads the records of `path` delivered after `since` (unix ms).
fn read(path: &Path, since: u64, out: &mut Vec<(MessageId, u64)>) {
    let mut bytes = Vec::new();
    match File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot read the delivered-broadcast log; ids in it are forgotten");
            return;
        }
    }
    for r in bytes.chunks_exact(RECORD) {
        let (id, at) = r.split_at(16);
        let at = u64::from_be_bytes(at.try_into().unwrap_or([0; 8]));
        if at > since
            && let Ok(id) = MessageId::from_slice(id)
        {
            out.push((id, at));
        }
    }
}

impl SeenLog {
    /// Opens the log in `dir`; returns it and the ids delivered within `ttl`
    /// before now with how long ago, oldest first, at most `max_records`.
    pub(super) fn open(
        dir: &Path,
        ttl: Duration,
        max_records: usize,
    ) -> (Self, Vec<(MessageId, Duration)>) {
        let now = SystemTime::now();
        let since = unix_ms(now.checked_sub(ttl).unwrap_or(UNIX_EPOCH));
        let mut found = Vec::new();
        read(&dir.join(OLD), since, &mut found);
        read(&dir.join(FILE), since, &mut found);
        found.sort_by_key(|(_, at)| *at);
        let skip = found.len().saturating_sub(max_records);
        let kept = &found[skip..];
        let now_ms = unix_ms(now);
        let restored = kept
            .iter()
            .map(|(id, at)| (*id, Duration::from_millis(now_ms.saturating_sub(*at))))
            .collect();
        // What is still within the TTL goes into a fresh file, so a second
        // restart finds it too; the rest is dropped from disk.
        let file = compact(dir, kept).map_err(|e| {
            warn!(dir = %dir.display(), error = %e, "cannot rewrite the delivered-broadcast log; a restart may deliver recent broadcasts again");
        });
        let log = Self {
            dir: dir.to_owned(),
            ttl,
            max_records: max_records.max(1),
            current: Mutex::new(Current {
                file: file.ok(),
                records: kept.len(),
                started: now,
            }),
        };
        (log, restored)
    }

    /// Appends `id`, delivered now. Failures are logged, never fatal: the
    /// delivery itself has happened.
    pub(super) fn record(&self, id: MessageId) {
        let now = SystemTime::now();
        let mut c = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let old = now.duration_since(c.started).unwrap_or_default() >= self.ttl;
        if (c.file.is_none() || c.records >= self.max_records || old)
            && let Err(e) = self.rotate(&mut c, now)
        {
            warn!(dir = %self.dir.display(), error = %e, "cannot start a new delivered-broadcast log; a restart may deliver recent broadcasts again");
            return;
        }
        let mut rec = [0u8; RECORD];
        rec[..16].copy_from_slice(id.as_bytes());
        rec[16..].copy_from_slice(&unix_ms(now).to_be_bytes());
        if let Some(f) = c.file.as_mut()
            && let Err(e) = f.write_all(&rec)
        {
            warn!(dir = %self.dir.display(), error = %e, "cannot record a delivered broadcast; a restart may deliver it again");
            c.file = None;
            return;
        }
        c.records += 1;
    }

    fn rotate(&self, c: &mut Current, now: SystemTime) -> std::io::Result<()> {
        c.file = None;
        let current = self.dir.join(FILE);
        if current.exists() {
            std::fs::rename(&current, self.dir.join(OLD))?;
        }
        c.file = Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&current)?,
        );
        c.records = 0;
        c.started = now;
        Ok(())
    }
}

/// Writes `records` as the whole current file (via a temporary one) and drops
/// the old file; returns the current file open for appending.
fn compact(dir: &Path, records: &[(MessageId, u64)]) -> std::io::Result<File> {
    let tmp = dir.join("seen.log.tmp");
    let mut bytes = Vec::with_capacity(records.len() * RECORD);
    for (id, at) in records {
        bytes.extend_from_slice(id.as_bytes());
        bytes.extend_from_slice(&at.to_be_bytes());
    }
    if let Err(e) =
        std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, dir.join(FILE)))
    {
        // Nothing half-written stays behind (a full disk leaves an empty file).
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    match std::fs::remove_file(dir.join(OLD)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    OpenOptions::new().append(true).open(dir.join(FILE))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn ids_survive_a_reopen_and_expire_after_the_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let (log, restored) = SeenLog::open(dir.path(), Duration::from_secs(600), 100);
        assert!(restored.is_empty());
        let ids: Vec<MessageId> = (0..5).map(|_| MessageId::new()).collect();
        for id in &ids {
            log.record(*id);
        }
        drop(log);
        let (_, restored) = SeenLog::open(dir.path(), Duration::from_secs(600), 100);
        let got: Vec<MessageId> = restored.iter().map(|(id, _)| *id).collect();
        assert_eq!(got, ids);
        assert!(
            restored
                .iter()
                .all(|(_, age)| *age < Duration::from_secs(5))
        );
        // A second restart still finds them (the first rewrote the log).
        let (_, again) = SeenLog::open(dir.path(), Duration::from_secs(600), 100);
        assert_eq!(again.len(), 5);
        // A zero TTL forgets them all.
        let (_, restored) = SeenLog::open(dir.path(), Duration::ZERO, 100);
        assert!(restored.is_empty());
    }

    #[test]
    fn the_disk_holds_at_most_twice_the_cap_and_the_newest_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = SeenLog::open(dir.path(), Duration::from_secs(600), 10);
        let ids: Vec<MessageId> = (0..35).map(|_| MessageId::new()).collect();
        for id in &ids {
            log.record(*id);
        }
        let bytes = |name| std::fs::metadata(dir.path().join(name)).map_or(0, |m| m.len());
        assert!(bytes(FILE) + bytes(OLD) <= 20 * RECORD as u64);
        drop(log);
        let (_, restored) = SeenLog::open(dir.path(), Duration::from_secs(600), 10);
        let got: Vec<MessageId> = restored.iter().map(|(id, _)| *id).collect();
        assert_eq!(got, ids[25..]);
    }

    #[test]
    fn a_torn_last_record_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = SeenLog::open(dir.path(), Duration::from_secs(600), 100);
        let id = MessageId::new();
        log.record(id);
        drop(log);
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE))
            .unwrap();
        f.write_all(&[1, 2, 3]).unwrap();
        let (_, restored) = SeenLog::open(dir.path(), Duration::from_secs(600), 100);
        assert_eq!(restored.len(), 1);
        assert_eq!(restored[0].0, id);
    }
}
