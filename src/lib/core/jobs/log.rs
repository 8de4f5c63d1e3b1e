//! A job's retained output and step changes, in the order they happened, in
//! a ring bounded by bytes: at the bound the oldest entries go, and a reader
//! that had not read them is told how many output bytes it missed (a gap),
//! never handed a silently shortened log.

use std::collections::VecDeque;

use bytes::Bytes;

use super::{Stream, state::StepState};

/// What a step change costs against the ring's bound.
pub const STEP_ENTRY_BYTES: usize = 256;
/// What an output entry costs against the bound beyond its bytes: its slot
/// in the ring and the allocation its bytes sit in. Without it, a step that
/// writes a byte at a time would fill an 8 MiB ring with 8 million entries,
/// hundreds of MiB of memory.
pub const LOG_ENTRY_OVERHEAD: usize = 64;

/// Something that happened to a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Output of step `step`.
    Log {
        /// The step's index.
        step: u32,
        /// Which stream.
        stream: Stream,
        /// The bytes, as read.
        data: Bytes,
    },
    /// Step `0` is now in state `1`.
    Step(u32, StepState),
}

impl Entry {
    /// What it costs against the ring's bound.
    pub fn cost(&self) -> usize {
        match self {
            Self::Log { data, .. } => data.len() + LOG_ENTRY_OVERHEAD,
            Self::Step(..) => STEP_ENTRY_BYTES,
        }
    }

    fn log_bytes(&self) -> u64 {
        match self {
            Self::Log { data, .. } => data.len() as u64,
            Self::Step(..) => 0,
        }
    }
}

/// Where a reader is: the next entry and the output bytes before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    seq: u64,
    bytes: u64,
}

impl Cursor {
    /// The next entry's sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Moves past `entry`, read from elsewhere (the job's log file).
    pub fn skip(&mut self, entry: &Entry) {
        self.seq += 1;
        self.bytes += entry.log_bytes();
    }
}

/// What one read returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Read {
    /// Output bytes dropped from the ring before the reader got them.
    pub gap: u64,
    /// Entries, oldest first.
    pub entries: Vec<Entry>,
}

/// The ring.
#[derive(Debug)]
pub struct LogRing {
    /// `(seq, output bytes before it, entry)`.
    entries: VecDeque<(u64, u64, Entry)>,
    next_seq: u64,
    /// Output bytes ever pushed.
    total: u64,
    /// Output bytes dropped at the bound.
    dropped: u64,
    held: usize,
    cap: usize,
}

impl LogRing {
    /// A ring holding about `cap` bytes (at least 64 KiB).
    pub fn new(cap: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            next_seq: 0,
            total: 0,
            dropped: 0,
            held: 0,
            cap: cap.max(64 * 1024),
        }
    }

    /// Appends `entry`, dropping the oldest entries beyond the bound. Output
    /// larger than the whole ring keeps its tail. A step's change drops
    /// nothing: the runtime records it without waiting for readers, so
    /// evicting for it could drop output a reader that holds the job back
    /// has not read; it may take the ring past its bound by a few hundred
    /// bytes per step change (bounded by the steps), which the next output
    /// makes room for.
    pub fn push(&mut self, mut entry: Entry) {
        if let Entry::Log { data, .. } = &mut entry
            && data.len() > self.cap
        {
            let cut = data.len() - self.cap;
            self.total += cut as u64;
            self.dropped += cut as u64;
            *data = data.slice(cut..);
        }
        let cost = entry.cost();
        let evicts = matches!(entry, Entry::Log { .. });
        while evicts && self.held + cost > self.cap {
            let Some((_, _, old)) = self.entries.pop_front() else {
                break;
            };
            self.held -= old.cost();
            self.dropped += old.log_bytes();
        }
        let bytes = entry.log_bytes();
        self.entries.push_back((self.next_seq, self.total, entry));
        self.next_seq += 1;
        self.total += bytes;
        self.held += cost;
    }

    /// A ring for a job of an earlier run whose `entries` entries (`bytes`
    /// of output) are not in memory (they may be in its log file).
    pub fn resumed(cap: usize, entries: u64, bytes: u64) -> Self {
        Self {
            next_seq: entries,
            total: bytes,
            dropped: bytes,
            ..Self::new(cap)
        }
    }

    /// The sequence number of the oldest entry held (the next one if none).
    pub fn first_seq(&self) -> u64 {
        self.entries.front().map_or(self.next_seq, |e| e.0)
    }

    /// Bytes held now (output, and a nominal cost per step change).
    pub fn held(&self) -> usize {
        self.held
    }

    /// Drops every output entry (step changes stay), counting the output as
    /// dropped: a later reader is told of the gap.
    pub fn clear_output(&mut self) {
        let before = self.entries.len();
        let mut dropped = 0;
        self.entries.retain(|(_, _, e)| {
            dropped += e.log_bytes();
            matches!(e, Entry::Step(..))
        });
        if self.entries.len() != before {
            self.dropped += dropped;
            self.held = self.entries.iter().map(|(_, _, e)| e.cost()).sum();
        }
    }

    /// Output bytes dropped at the bound so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Output bytes ever pushed.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Entries after `cursor`, up to about `max_bytes` of them (at least one),
    /// and the cursor moved past them.
    pub fn read(&self, cursor: &mut Cursor, max_bytes: usize) -> Read {
        let mut out = Read::default();
        let first = self.entries.front().map_or(self.next_seq, |e| e.0);
        cursor.seq = cursor.seq.max(first);
        let skip = usize::try_from(cursor.seq - first).unwrap_or(usize::MAX);
        // Output between what the reader had and the next entry it gets was
        // dropped: whole entries, or the head of one larger than the ring.
        let next_before = self.entries.get(skip).map_or(self.total, |e| e.1);
        if next_before > cursor.bytes {
            out.gap = next_before - cursor.bytes;
            cursor.bytes = next_before;
        }
        let mut size = 0;
        for (seq, _, e) in self.entries.iter().skip(skip) {
            if size > 0 && size + e.cost() > max_bytes {
                break;
            }
            size += e.cost();
            cursor.seq = seq + 1;
            cursor.bytes += e.log_bytes();
            out.entries.push(e.clone());
        }
        out
    }

    /// Whether pushing `cost` more bytes would drop an entry a reader at
    /// `cursor` has not read yet.
    pub fn would_drop_unread(&self, cursor: &Cursor, cost: usize) -> bool {
        let mut over = (self.held + cost).saturating_sub(self.cap);
        for (seq, _, e) in &self.entries {
            if over == 0 {
                return false;
            }
            if *seq >= cursor.seq {
                return true;
            }
            over = over.saturating_sub(e.cost());
        }
        false
    }

    /// Whether `cursor` has read everything pushed.
    pub fn is_read(&self, cursor: &Cursor) -> bool {
        cursor.seq >= self.next_seq
    }
}
