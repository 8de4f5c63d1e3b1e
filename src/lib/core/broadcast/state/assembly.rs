//! Broadcasts being put together from their pieces: a bounded table of
//! partial payloads, plus recently finished ones (to remember which pieces were
//! already forwarded).

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use bytes::BytesMut;

use crate::{
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

/// This node's side of one of a swarm's trees, as its pieces showed it.
#[derive(Debug, Clone, Default)]
pub(super) struct TreeSide {
    /// The neighbour the tree's last piece came from (its parent here, or
    /// the node that routed around a dead parent).
    pub(super) parent: Option<NodeId>,
    /// The nodes below this one in the tree (empty: a leaf), from the first
    /// of its pieces that came down the tree: pieces fetched to fill a gap
    /// carry no list and go down by this one.
    pub(super) below: Option<Vec<NodeId>>,
}

/// A want out for a missing piece.
#[derive(Debug, Clone)]
pub(super) struct Asked {
    /// When its answer is late (the holder sends the pieces of one want one
    /// after the other: the later in the want, the later it comes).
    pub(super) due: Instant,
    /// To whom.
    pub(super) to: NodeId,
    /// Wants sent for this piece so far.
    pub(super) attempts: u32,
    /// `to` left the cluster: want it again without waiting.
    pub(super) holder_gone: bool,
}

/// One broadcast being put together from its pieces.
#[derive(Debug)]
pub(super) struct Assembly {
    /// The whole broadcast's metadata (its own id, no piece).
    pub(super) meta: MessageMeta,
    pub(super) count: u32,
    pub(super) piece_len: u64,
    pub(super) total_len: u64,
    pub(super) crc32: u32,
    /// Fanout of the trees (pieces go round-robin over `min(fanout, count)`
    /// trees).
    pub(super) fanout: u32,
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
    /// Per tree, what its pieces showed.
    pub(super) trees: Vec<TreeSide>,
    /// The wants out for missing pieces (kept once a piece came: a piece
    /// without a forwarding list for an index asked for is an answer).
    pub(super) asked: BTreeMap<u32, Asked>,
    /// When the first of those wants is due for another ask (`None`: none
    /// is), so that a tick looks at an assembly only when something is due.
    pub(super) next_due: Option<Instant>,
    /// When the first piece came.
    pub(super) started: Instant,
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

impl Assembly {
    /// Piece `index` came down its tree from `sender`, with the forwarding
    /// list `subtree`: notes the tree's parent and this node's side of it.
    /// Returns the missing pieces to want from `sender` at once: when the
    /// tree's pieces came from another neighbour before, that one is gone or
    /// routed around, and `sender`, now routing around it, had the tree's
    /// pieces before this one (what it sent there, some of which may never
    /// have come down).
    pub(super) fn came_down_tree(
        &mut self,
        index: u32,
        (sender, subtree): (&NodeId, &[NodeId]),
        now: Instant,
        answer_time: impl Fn(usize) -> Duration,
    ) -> Vec<u32> {
        let t = self.tree_of(index);
        let step = u32::try_from(self.trees.len().max(1)).unwrap_or(1);
        let side = &mut self.trees[t];
        let rerouted = side.parent.as_ref().is_some_and(|p| p != sender);
        side.parent = Some(sender.clone());
        if side.below.is_none() {
            side.below = Some(subtree.to_vec());
        }
        let mut missing = Vec::new();
        if !rerouted {
            return missing;
        }
        let mut j = index % step;
        while j < index {
            let k = j as usize;
            if !self.have.get(k).copied().unwrap_or(true) && !self.asked.contains_key(&j) {
                missing.push(j);
            }
            j = j.saturating_add(step);
        }
        let due = now + answer_time(missing.len());
        for &j in &missing {
            self.asked.insert(
                j,
                Asked {
                    due,
                    to: sender.clone(),
                    attempts: 1,
                    holder_gone: false,
                },
            );
        }
        if !missing.is_empty() {
            self.next_due = Some(self.next_due.map_or(due, |d| d.min(due)));
        }
        missing
    }

    /// The tree piece `index` travels down.
    pub(super) fn tree_of(&self, index: u32) -> usize {
        index as usize % self.trees.len().max(1)
    }

    /// How long the assembly may go without a new piece before what is
    /// missing is fetched: eight times the mean time between its pieces so
    /// far, within `[floor, ceiling]`.
    pub(super) fn quiet_limit(&self, floor: Duration, ceiling: Duration) -> Duration {
        let gaps = self.got.saturating_sub(1).max(1);
        let mean = self.progress.saturating_duration_since(self.started) / gaps;
        (mean * 8).clamp(floor, ceiling.max(floor))
    }
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
            a.asked = BTreeMap::new();
            a.next_due = None;
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
    let trees = info.fanout.min(info.count).max(1) as usize;
    Assembly {
        meta: whole,
        count: info.count,
        piece_len: info.piece_len,
        total_len: info.total_len,
        crc32: info.crc32,
        fanout: info.fanout,
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
        trees: vec![TreeSide::default(); trees],
        asked: BTreeMap::new(),
        next_due: None,
        started: now,
        progress: now,
        finished,
        stalled: false,
        opened_by: sender.clone(),
    }
}
