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
use tracing::warn;

use crate::core::jobs::{Stream, log::Entry, state::StepState};

/// Step changes a job may make before its first output without the file
/// being created (64 steps change state 2-3 times each).
const PENDING_MAX: usize = 256;

/// A job's log file being written.
///
/// The file is created with the job's first output, its step changes until
/// then written first: a job that prints nothing (`gsp run --all -- true`)
/// costs no file. Creating and deleting a file per job made inode allocation
/// (ext4 skips recently deleted inodes) 13% of a node's CPU in that run.
/// Such a job's step changes are in its record (`gsp jobs`), and in its log
/// until the node restarts.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    state: State,
    written: u64,
    cap: u64,
    entries: u64,
}

#[derive(Debug)]
enum State {
    /// Not created yet: the step changes so far.
    Pending(Vec<Entry>),
    /// Being written.
    Open(File),
    /// Full, failed, or a job of an earlier run's (`on_disk`: there is a
    /// file to delete).
    Ended { on_disk: bool },
}

impl LogFile {
    /// The file at `path`, to hold at most `cap` bytes; created with the
    /// first output (a failure is logged: the job runs on with its output in
    /// memory only).
    pub fn create(path: PathBuf, cap: u64) -> Self {
        Self {
            path,
            state: State::Pending(Vec::new()),
            written: 0,
            cap,
            entries: 0,
        }
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
            },
            bytes,
        ))
    }

    /// Appends `entry`; once the cap would be passed the file ends.
    pub fn append(&mut self, entry: &Entry) {
        if let State::Pending(held) = &mut self.state {
            if matches!(entry, Entry::Step(..)) && held.len() < PENDING_MAX {
                held.push(entry.clone());
                return;
            }
            let held = std::mem::take(held);
            self.state = match self.open() {
                Some(f) => State::Open(f),
                None => State::Ended { on_disk: false },
            };
            for e in &held {
                self.write(e);
            }
        }
        self.write(entry);
    }

    fn write(&mut self, entry: &Entry) {
        let State::Open(f) = &mut self.state else {
            return;
        };
        let (kind, step, payload): (u8, u32, Bytes) = match entry {
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
        };
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        let size = 9 + u64::from(len);
        if self.written + size > self.cap {
            self.state = State::Ended { on_disk: true };
            return;
        }
        let mut head = [0u8; 9];
        head[0] = kind;
        head[1..5].copy_from_slice(&step.to_le_bytes());
        head[5..9].copy_from_slice(&len.to_le_bytes());
        if let Err(e) = write_both(f, &head, &payload) {
            warn!(path = %self.path.display(), error = %e, "cannot write the job's log file; output stays in memory only");
            self.state = State::Ended { on_disk: true };
            return;
        }
        self.written += size;
        self.entries += 1;
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

    /// Stops writing and deletes the file.
    pub fn remove(&mut self) {
        let on_disk = match &self.state {
            State::Pending(_) | State::Ended { on_disk: false } => false,
            State::Open(_) | State::Ended { on_disk: true } => true,
        };
        self.state = State::Ended { on_disk: false };
        self.entries = 0;
        self.written = 0;
        if on_disk {
            let _ = std::fs::remove_file(&self.path);
        }
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
fn write_both(f: &mut File, head: &[u8], payload: &[u8]) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn log(s: &str) -> Entry {
        Entry::Log {
            step: 1,
            stream: Stream::Stderr,
            data: Bytes::from(s.to_owned()),
        }
    }

    #[test]
    fn entries_read_back_in_order_and_the_cap_ends_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.log");
        let mut f = LogFile::create(path.clone(), 9 * 3 + 15);
        for s in ["hello", "world", "again", "over"] {
            f.append(&log(s));
        }
        assert_eq!(f.entries(), 3, "the fourth would pass the cap");
        let mut pos = FilePos::default();
        let got = read(&path, &mut pos, 1, 3, 10).unwrap();
        assert_eq!(got, [log("world"), log("again")]);
        let (again, bytes) = LogFile::existing(path).unwrap();
        assert_eq!((again.entries(), bytes), (3, 15));
    }

    fn step(i: u32) -> Entry {
        let spec = crate::core::jobs::spec::JobSpec::command(vec!["true".to_owned()]);
        let state = crate::core::jobs::state::JobState::new(spec, 1);
        Entry::Step(i, state.steps[0].clone())
    }

    #[test]
    fn no_file_until_the_first_output_then_the_step_changes_come_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs").join("j.log");
        let mut f = LogFile::create(path.clone(), 1 << 20);
        f.append(&step(0));
        f.append(&step(1));
        assert!(!path.exists(), "step changes alone make no file");
        assert_eq!(f.entries(), 0);
        f.append(&log("out"));
        assert!(
            path.exists(),
            "the first output creates it, and its directory"
        );
        assert_eq!(f.entries(), 3);
        let got = read(&path, &mut FilePos::default(), 0, 3, 10).unwrap();
        assert_eq!(got, [step(0), step(1), log("out")]);
        f.remove();
        assert!(!path.exists());
    }

    #[test]
    fn a_job_that_printed_nothing_leaves_no_file_to_delete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.log");
        let mut f = LogFile::create(path.clone(), 1 << 20);
        f.append(&step(0));
        // Another job's file by that name is not this job's to delete.
        std::fs::write(&path, b"not mine").unwrap();
        f.remove();
        assert!(path.exists());
    }
}
