//! Broadcasts being put together from their pieces: a bounded table of
//! partial payloads, plus recently finished ones (to remember which pieces were
//! already forwarded).

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use bytes::BytesMut;

use crate::core::{
    ids::{MessageId, NodeId},
    message::MessageMeta,
    piece::PieceInfo,
};

/// Finished assemblies remembered (which pieces were forwarded), at most; the
/// oldest are forgotten first.
const MAX_FINISHED: usize = 1024;
/// How long a finished assembly is remembered (long enough for a sender's
/// retries of a piece already in), and an unfinished one kept without news.
const FINISHED_TTL: Duration = Duration::from_secs(120);

/// One broadcast being put together from its pieces.
#[derive(Debug)]
pub(super) struct Assembly {
    /// The whole broadcast's metadata (its own id, no piece).
    pub(super) meta: MessageMeta,
    pub(super) count: u32,
    pub(super) piece_len: u64,
    pub(super) total_len: u64,
    pub(super) crc32: u32,
    /// The whole payload, each piece copied to its place as it comes (one
    /// allocation per broadcast, handed on as the delivered payload without a
    /// further copy); empty once finished.
    pub(super) buf: BytesMut,
    /// Pieces in `buf` so far.
    pub(super) have: Vec<bool>,
    /// Each placed piece's CRC-32, verified against its bytes on receipt: the
    /// whole's checksum is their combination, without reading the payload
    /// again.
    pub(super) piece_crcs: Vec<u32>,
    pub(super) got: u32,
    /// Pieces already sent down their tree from here.
    pub(super) forwarded: Vec<bool>,
    /// When the last new piece came.
    pub(super) progress: Instant,
    pub(super) finished: bool,
    /// Already counted and repaired as stalled.
    pub(super) stalled: bool,
    /// The neighbour whose piece started it: one neighbour may hold only a
    /// share of the table.
    pub(super) opened_by: NodeId,
}

/// The broadcasts being assembled here, and recently finished ones.
#[derive(Debug, Default)]
pub(super) struct Assemblies {
    pub(super) items: BTreeMap<MessageId, Assembly>,
    /// Payload bytes held by unfinished assemblies.
    pub(super) bytes: u64,
    /// Unfinished assemblies (kept with `bytes`, so that asking costs
    /// nothing: the executor asks after every change).
    pub(super) open: usize,
}

impl Assemblies {
    /// Unfinished assemblies opened by a piece from `sender`.
    pub(super) fn opened_by(&self, sender: &NodeId) -> usize {
        self.items
            .values()
            .filter(|a| !a.finished && a.opened_by == *sender)
            .count()
    }

    /// Unfinished assemblies and the bytes they hold.
    pub(super) fn load(&self) -> (usize, u64) {
        debug_assert_eq!(
            self.open,
            self.items.values().filter(|a| !a.finished).count()
        );
        (self.open, self.bytes)
    }

    /// When `id`, being assembled, counts as stalled if no piece comes.
    pub(super) fn stall_at(&self, id: &MessageId, stall: Duration) -> Option<Instant> {
        self.items
            .get(id)
            .filter(|a| !a.finished)
            .map(|a| a.progress + stall)
    }

    /// `id` is in whole: drop its partial payload.
    pub(super) fn finish(&mut self, id: &MessageId) {
        if let Some(a) = self.items.get_mut(id)
            && !a.finished
        {
            self.bytes -= a.total_len;
            self.open -= 1;
            a.finished = true;
            a.buf = BytesMut::new();
            a.have = Vec::new();
        }
    }

    /// Unfinished assemblies that just went `stall` without a new piece (each
    /// reported once), with their origin and size.
    pub(super) fn newly_stalled(
        &mut self,
        now: Instant,
        stall: Duration,
    ) -> Vec<(MessageId, NodeId, u64)> {
        self.items
            .iter_mut()
            .filter(|(_, a)| !a.finished && !a.stalled && now >= a.progress + stall)
            .map(|(id, a)| {
                a.stalled = true;
                (*id, a.meta.origin.clone(), a.total_len)
            })
            .collect()
    }

    /// Forgets finished assemblies older than [`FINISHED_TTL`] and the oldest
    /// beyond [`MAX_FINISHED`].
    /// Unfinished ones without a piece for as long are dropped too (their
    /// whole was pulled, or is lost): their bytes and slot are freed.
    pub(super) fn expire(&mut self, now: Instant) {
        let (mut freed, mut dropped) = (0, 0);
        self.items.retain(|_, a| {
            let keep = now.saturating_duration_since(a.progress) < FINISHED_TTL;
            if !keep && !a.finished {
                freed += a.total_len;
                dropped += 1;
            }
            keep
        });
        self.bytes -= freed;
        self.open -= dropped;
        let finished = self.items.values().filter(|a| a.finished).count();
        if finished > MAX_FINISHED {
            let mut old: Vec<(Instant, MessageId)> = self
                .items
                .iter()
                .filter(|(_, a)| a.finished)
                .map(|(id, a)| (a.progress, *id))
                .collect();
            old.sort();
            for (_, id) in old.into_iter().take(finished - MAX_FINISHED) {
                self.items.remove(&id);
            }
        }
    }
}

/// A new entry for the broadcast `info` belongs to, from the piece `meta`;
/// `finished` when the whole is already here.
pub(super) fn new_assembly(
    sender: &NodeId,
    meta: &MessageMeta,
    info: &PieceInfo,
    finished: bool,
    now: Instant,
) -> Assembly {
    let mut whole = meta.clone();
    whole.id = info.message;
    whole.piece = None;
    let n = info.count as usize;
    Assembly {
        meta: whole,
        count: info.count,
        piece_len: info.piece_len,
        total_len: info.total_len,
        crc32: info.crc32,
        // Zeroed, so pieces may land in any order without unsafe code; fresh
        // pages come zeroed from the kernel, and a page is touched first when
        // its piece is written.
        buf: if finished {
            BytesMut::new()
        } else {
            BytesMut::zeroed(usize::try_from(info.total_len).unwrap_or(0))
        },
        have: if finished { Vec::new() } else { vec![false; n] },
        piece_crcs: if finished { Vec::new() } else { vec![0; n] },
        got: 0,
        forwarded: vec![false; n],
        progress: now,
        finished,
        stalled: false,
        opened_by: sender.clone(),
    }
}
