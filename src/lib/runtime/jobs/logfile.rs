//! `<data_dir>/jobs/<id>.log`: a job's output and step changes as they
//! happen, in the order of its in-memory ring (entry N of the file is entry N
//! of the ring), up to a size cap; after it the file ends and later entries
//! live in memory only. Readers that fall behind the ring, and readers after
//! a restart, replay from here. Records: kind (0 stdout, 1 stderr, 2 step
//! change), step (u32), length (u32), then the output bytes or the step's
//! state as JSON; little-endian.

use std::{
    fs::File,
    io::{self, BufReader, Seek as _, SeekFrom, Write as _},
    path::{Path, PathBuf},
};

use bytes::Bytes;

use crate::core::jobs::{
    Stream,
    log::{Cursor, Entry, LogRing},
    state::StepState,
};

/// A job's log file, as its record under the job's lock knows it: where it
/// is, how much of the job's ring it holds, and whether more is to come.
///
/// The file is created with the job's first output: a job that prints
/// nothing (`gsp run --all -- true`) costs no file. Creating and deleting a
/// file per job made inode allocation (ext4 skips recently deleted inodes)
/// 13% of a node's CPU in that run. Such a job's step changes are in its
/// record (`gsp jobs`), and in its log until the node restarts.
///
/// The writing is done by the job's writer task ([`super::job::log_writer`])
/// with a [`super::job::log_writer::Writer`], off the runtime's worker threads and outside the lock:
/// a slow or stuck disk holds back the job's output (its writes block as on
/// a full pipe, see [`super::Job::push_log`]), never the node.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    state: State,
    written: u64,
    cap: u64,
    entries: u64,
    /// The next entry of the ring to write (entry N of the file is entry N
    /// of the ring).
    cursor: Cursor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No output yet: no file, and no writer.
    Idle,
    /// Its writer writes what the ring holds from `cursor` on.
    Live,
    /// Full, failed, stalled, or a job of an earlier run's (`on_disk`: there
    /// may be a file to delete).
    Ended { on_disk: bool },
}

impl LogFile {
    /// The file at `path`, to hold at most `cap` bytes; created by its
    /// writer with the job's first output.
    pub fn create(path: PathBuf, cap: u64) -> Self {
        Self {
            path,
            state: State::Idle,
            written: 0,
            cap,
            entries: 0,
            cursor: Cursor::default(),
        }
    }

    /// The file of a job of an earlier run: its entries and output bytes,
    /// for reading only.
    pub fn existing(path: PathBuf) -> Option<(Self, u64)> {
        let (entries, bytes, written) = scan(&path).ok()?;
        Some((
            Self {
                path,
                state: State::Ended { on_disk: true },
                written,
                cap: written,
                entries,
                cursor: Cursor::default(),
            },
            bytes,
        ))
    }

    /// Where writing is, while entries from there on are still to be
    /// written: the ring must keep them until then.
    pub fn behind(&self) -> Option<&Cursor> {
        match self.state {
            State::Idle | State::Live => Some(&self.cursor),
            State::Ended { .. } => None,
        }
    }

    /// Whether entries still go to the file and a writer writes them.
    pub fn is_live(&self) -> bool {
        self.state == State::Live
    }

    /// The job printed: a writer is to start (`true` the first time only).
    pub fn start(&mut self) -> bool {
        let idle = self.state == State::Idle;
        if idle {
            self.state = State::Live;
        }
        idle
    }

    /// What the writer is to write next: up to about `max_bytes` of the
    /// entries the ring holds from the cursor on, the cursor past them, and
    /// the bytes the cap leaves. `None` when the ring no longer holds them
    /// (it dropped output not yet written: the file has ended).
    pub fn next_batch(&mut self, ring: &LogRing, max_bytes: usize) -> Option<Batch> {
        let mut cursor = self.cursor;
        let read = ring.read(&mut cursor, max_bytes);
        let skipped = cursor.seq() != self.cursor.seq() + read.entries.len() as u64;
        if read.gap > 0 || skipped {
            self.end();
            return None;
        }
        Some(Batch {
            entries: read.entries,
            room: self.cap.saturating_sub(self.written),
        })
    }

    /// The writer wrote what it was given, unless the file was
    /// deleted or ended meanwhile; whether it is still live.
    pub(crate) fn wrote(&mut self, batch: &[Entry], wrote: &Wrote) -> bool {
        if self.state != State::Live {
            return false;
        }
        for e in batch.iter().take(wrote.entries) {
            self.cursor.skip(e);
        }
        self.entries += wrote.entries as u64;
        self.written += wrote.bytes;
        if wrote.ended {
            self.state = State::Ended { on_disk: true };
        }
        !wrote.ended
    }

    /// No more entries go to the file (the disk stalled): what is in it
    /// stays, readers find the rest in memory only.
    pub fn end(&mut self) {
        let on_disk = matches!(self.state, State::Live | State::Ended { on_disk: true });
        self.state = State::Ended { on_disk };
    }

    /// Whether it was deleted ([`Self::remove`]): a file its writer created
    /// since is the writer's to delete.
    pub fn removed(&self) -> bool {
        self.state == State::Ended { on_disk: false }
    }

    /// Entries in the file.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Bytes in the file.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops writing; the file to delete, if there may be one (deleted by
    /// the caller off the runtime's threads, see [`super::delete_files`]:
    /// an unlink waits for the disk too).
    #[must_use]
    pub fn remove(&mut self) -> Option<PathBuf> {
        let on_disk = match self.state {
            State::Idle | State::Ended { on_disk: false } => false,
            State::Live | State::Ended { on_disk: true } => true,
        };
        self.state = State::Ended { on_disk: false };
        self.entries = 0;
        self.written = 0;
        on_disk.then(|| self.path.clone())
    }
}

/// Entries for the writer, taken under the job's lock.
#[derive(Debug)]
pub struct Batch {
    /// Oldest first.
    pub entries: Vec<Entry>,
    /// Bytes the file may still take.
    pub room: u64,
}

/// An entry's record: kind (0 stdout, 1 stderr, 2 step change), step, and
/// the output or the step's state as JSON.
pub(super) fn record(entry: &Entry) -> (u8, u32, Bytes) {
    match entry {
        Entry::Log { step, stream, data } => (
            match stream {
                Stream::Stdout => 0,
                Stream::Stderr => 1,
            },
            *step,
            data.clone(),
        ),
        Entry::Step(step, state) => (
            2,
            *step,
            Bytes::from(serde_json::to_vec(state).unwrap_or_default()),
        ),
    }
}

/// Where a reader is in a log file: the byte offset of entry `index`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FilePos {
    offset: u64,
    index: u64,
}

/// Reads up to `max` entries from entry `from` (below `end`), resuming at
/// `pos` when it is there.
///
/// # Errors
/// The file cannot be read or is damaged.
pub fn read(
    path: &Path,
    pos: &mut FilePos,
    from: u64,
    end: u64,
    max: usize,
) -> io::Result<Vec<Entry>> {
    let mut r = BufReader::new(File::open(path)?);
    if pos.index > from {
        *pos = FilePos::default();
    }
    r.seek(SeekFrom::Start(pos.offset))?;
    let mut out = Vec::new();
    while pos.index < end && out.len() < max {
        let Some((entry, size)) = next(&mut r)? else {
            break;
        };
        pos.offset += size;
        pos.index += 1;
        if pos.index > from {
            out.push(entry);
        }
    }
    Ok(out)
}

fn next(r: &mut impl io::Read) -> io::Result<Option<(Entry, u64)>> {
    let mut head = [0u8; 9];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let step = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
    let len = u32::from_le_bytes([head[5], head[6], head[7], head[8]]);
    let mut data = vec![0u8; len as usize];
    r.read_exact(&mut data)?;
    let entry = match head[0] {
        0 | 1 => Entry::Log {
            step,
            stream: if head[0] == 0 {
                Stream::Stdout
            } else {
                Stream::Stderr
            },
            data: Bytes::from(data),
        },
        2 => Entry::Step(
            step,
            serde_json::from_slice::<StepState>(&data).map_err(io::Error::other)?,
        ),
        k => return Err(io::Error::other(format!("unknown record kind {k}"))),
    };
    Ok(Some((entry, 9 + u64::from(len))))
}

/// Writes `head` then `payload` with one system call where the kernel takes
/// both at once (it does for a regular file short of an error).
pub(super) fn write_both(f: &mut File, head: &[u8], payload: &[u8]) -> io::Result<()> {
    let n = loop {
        match f.write_vectored(&[io::IoSlice::new(head), io::IoSlice::new(payload)]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => break r?,
        }
    };
    if n < head.len() {
        f.write_all(&head[n..])?;
        f.write_all(payload)
    } else {
        f.write_all(&payload[n - head.len()..])
    }
}

/// Entries, output bytes and file bytes of a complete file (a damaged tail
/// is ignored: what precedes it is kept).
fn scan(path: &Path) -> io::Result<(u64, u64, u64)> {
    let mut r = BufReader::new(File::open(path)?);
    let (mut entries, mut bytes, mut size) = (0, 0, 0);
    while let Ok(Some((e, n))) = next(&mut r) {
        entries += 1;
        size += n;
        if let Entry::Log { data, .. } = &e {
            bytes += data.len() as u64;
        }
    }
    Ok((entries, bytes, size))
}

/// What a [`Writer::write`] wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Wrote {
    /// Entries, from the batch's first.
    pub(crate) entries: usize,
    /// Bytes.
    pub(crate) bytes: u64,
    /// The file ends here (the cap, or an error, logged).
    pub(crate) ended: bool,
}

#[cfg(test)]
mod tests;
