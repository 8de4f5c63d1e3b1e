//! Swarm broadcasts: a large payload leaves its origin as pieces striped over
//! `k` trees (see [`crate::broadcast::tree`]); every node forwards each
//! piece to its children in that piece's tree as soon as the piece is in, while
//! the rest is still arriving, and assembles the whole. A child that cannot
//! take a piece is routed around: its children get the piece from its parent.
//! A node that stops getting pieces pulls the whole payload from a holder.

use std::{sync::Arc, time::Instant};

use bytes::Bytes;
use rand::Rng;

use super::{Action, BroadcastState, Pull, assembly::new_assembly};
use crate::{
    broadcast::tree,
    ids::{MessageId, NodeId},
    message::{InboundMessage, MessageMeta, OutboundMessage},
    piece::{MAX_SUBTREE, PieceInfo, piece_id},
};

/// What became of one received piece.
#[derive(Debug)]
pub struct PieceOutcome {
    /// For the sender's hop ACK.
    pub verdict: PieceVerdict,
    /// Forward the piece down its tree.
    pub actions: Vec<Action>,
    /// The whole broadcast, when this piece completed it; pass it to
    /// [`BroadcastState::on_payload`] (after any origin check).
    pub complete: Option<InboundMessage>,
}

/// The hop ACK of a piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PieceVerdict {
    /// A new piece.
    New,
    /// Already here.
    Duplicate,
    /// Refused, with the reason.
    Rejected(String),
}

impl BroadcastState {
    /// Whether a payload of `len` bytes to `peers` goes as a swarm, and if so
    /// its piece length.
    fn swarm_piece_len(&self, len: u64, peers: &[NodeId]) -> Option<u64> {
        let c = &self.config;
        let k = c.swarm_fanout.max(2);
        let list_bytes: usize = peers.iter().map(|p| p.as_str().len() + 2).sum();
        if len < c.swarm_min_bytes
            || peers.len() <= c.swarm_min_peers.max(k)
            || peers.len() > MAX_SUBTREE
            || list_bytes > c.swarm_max_list_bytes
        {
            return None;
        }
        // The root of a tree gets the whole list with each piece: keep that
        // under a sixteenth of the piece.
        let piece = c
            .piece_bytes
            .max(16 * list_bytes as u64)
            .max(len.div_ceil(u64::from(crate::piece::MAX_PIECES)));
        Some(piece)
    }

    /// As origin: the pieces of the broadcast `meta` for the roots of
    /// the trees over `peers`, or `None` when it goes by direct push.
    pub(super) fn originate_swarm<R: Rng>(
        &mut self,
        meta: &MessageMeta,
        (payload, crc32): (&Bytes, u32),
        peers: &[NodeId],
        now: Instant,
        rng: &mut R,
    ) -> Option<Vec<Action>> {
        let total_len = payload.len() as u64;
        let piece_len = self.swarm_piece_len(total_len, peers)?;
        let count = u32::try_from(total_len.div_ceil(piece_len).max(1)).ok()?;
        let k = self.config.swarm_fanout.max(2);
        let trees = k.min(count as usize);
        let layouts = tree::plan(peers, trees, k, rng);
        let info = PieceInfo {
            message: meta.id,
            index: 0,
            count,
            piece_len,
            total_len,
            crc32,
            fanout: u32::try_from(k).ok()?,
            subtree: Vec::new(),
        };
        let mut actions = Vec::with_capacity(count as usize);
        for index in 0..count {
            let layout = &layouts[index as usize % trees];
            let Some((root, below)) = layout.split_first() else {
                continue;
            };
            let r = info.range(index);
            let (Ok(start), Ok(end)) = (usize::try_from(r.start), usize::try_from(r.end)) else {
                return None;
            };
            let data = payload.slice(start..end);
            actions.push(Action::SendPiece {
                to: root.clone(),
                piece: piece_message(meta, &info, index, below.to_vec(), data, None),
            });
        }
        self.counters.swarms_started += 1;
        // The layout, so that wants for single pieces can be answered (the
        // payload itself is in the store).
        self.assemblies.items.insert(
            meta.id,
            super::assembly::new_assembly(&self.local, meta, &info, true, now),
        );
        Some(actions)
    }

    /// A piece arrived from a neighbour (already checked against the wire's
    /// limits by the caller, who passes its payload cap).
    pub fn on_piece(
        &mut self,
        msg: &InboundMessage,
        max_payload: u64,
        now: Instant,
    ) -> PieceOutcome {
        let refuse = |why: String| PieceOutcome {
            verdict: PieceVerdict::Rejected(why),
            actions: Vec::new(),
            complete: None,
        };
        let Some(info) = msg.meta.piece.clone() else {
            return refuse("not a piece".to_owned());
        };
        if let Err(why) = info.check(max_payload, msg.payload.len() as u64) {
            self.counters.pieces_refused += 1;
            return refuse(why);
        }
        let delivered = self.seen.contains(&info.message, now);
        if !self.assemblies.items.contains_key(&info.message) {
            let (open, bytes) = self.assemblies.load();
            let room = delivered
                || (open < self.config.max_assemblies
                    && bytes + info.total_len <= self.config.assembly_bytes);
            if !room {
                self.counters.pieces_refused += 1;
                return refuse(format!(
                    "{open} broadcasts ({bytes} bytes) are being assembled here already"
                ));
            }
            // One neighbour (a broken or hostile one) cannot take the table.
            let share = (self.config.max_assemblies / 4).max(1);
            let by_sender = self.assemblies.opened_by(&msg.sender);
            if !delivered && by_sender >= share {
                self.counters.pieces_refused += 1;
                return refuse(format!(
                    "{by_sender} broadcasts started by {} are being assembled here already (at most {share} per neighbour)",
                    msg.sender
                ));
            }
            self.assemblies.items.insert(
                info.message,
                new_assembly(&msg.sender, &msg.meta, &info, delivered, now),
            );
            if !delivered {
                self.assemblies.bytes += info.total_len;
                self.assemblies.open += 1;
            }
        }
        let Some(a) = self.assemblies.items.get_mut(&info.message) else {
            return refuse("assembly vanished".to_owned());
        };
        if (a.count, a.piece_len, a.total_len, a.crc32)
            != (info.count, info.piece_len, info.total_len, info.crc32)
            || a.meta.origin != msg.meta.origin
        {
            self.counters.pieces_refused += 1;
            return refuse(format!(
                "piece {} of broadcast {} disagrees with the pieces received before",
                info.index, info.message
            ));
        }
        let i = info.index as usize;
        let mut actions = Vec::new();
        // A piece fetched to fill a gap carries no forwarding list: it goes
        // down this node's side of its tree as the tree's own pieces did.
        let answer = info.subtree.is_empty() && a.asked.contains_key(&info.index);
        let want_now = if answer || a.finished {
            Vec::new()
        } else {
            let (config, piece_len) = (&self.config, a.piece_len);
            a.came_down_tree(info.index, (&msg.sender, &info.subtree), now, |pieces| {
                config.pull_timeout(piece_len.saturating_mul(pieces as u64))
            })
        };
        if !want_now.is_empty() {
            self.counters.pieces_wanted += want_now.len() as u64;
            actions.push(Action::WantPieces {
                to: msg.sender.clone(),
                id: info.message,
                pieces: want_now,
            });
        }
        let below = if info.subtree.is_empty() {
            let t = a.tree_of(info.index);
            a.trees[t].below.clone().unwrap_or_default()
        } else {
            info.subtree.clone()
        };
        if !below.is_empty() && !a.forwarded[i] {
            a.forwarded[i] = true;
            let mut meta = msg.meta.clone();
            meta.hops = meta.hops.saturating_add(1);
            for (to, below) in route(&below, info.fanout as usize, &self.local) {
                actions.push(Action::SendPiece {
                    to,
                    piece: piece_message(
                        &meta,
                        &info,
                        info.index,
                        below,
                        msg.payload.clone(),
                        Some(msg.crc32),
                    ),
                });
            }
        }
        if a.finished || a.have.get(i).copied().unwrap_or(true) {
            self.counters.pieces_duplicate += 1;
            return PieceOutcome {
                verdict: PieceVerdict::Duplicate,
                actions,
                complete: None,
            };
        }
        let r = info.range(info.index);
        let place = usize::try_from(r.start)
            .ok()
            .zip(usize::try_from(r.end).ok())
            .and_then(|(start, end)| a.buf.get_mut(start..end))
            .filter(|place| place.len() == msg.payload.len());
        let Some(place) = place else {
            self.counters.pieces_refused += 1;
            return refuse(format!(
                "piece {} of broadcast {} does not fit its place",
                info.index, info.message
            ));
        };
        place.copy_from_slice(&msg.payload);
        a.have[i] = true;
        if let Some(c) = a.piece_crcs.get_mut(i) {
            *c = msg.crc32;
        }
        a.got += 1;
        a.progress = now;
        a.stalled = false;
        self.counters.pieces_received += 1;
        let complete = (a.got == a.count).then(|| {
            let computed = combined_crc(&a.piece_crcs, a.piece_len, a.total_len);
            let payload = std::mem::take(&mut a.buf).freeze();
            (a.meta.clone(), payload, a.crc32, computed)
        });
        let complete = complete.and_then(|(meta, payload, crc32, computed)| {
            self.assemblies.finish(&info.message);
            if computed != crc32 {
                // Some piece was wrong though each matched its own checksum:
                // forged or buggy. Fetch the whole from its origin.
                self.counters.assembly_corrupt += 1;
                self.pull_whole(info.message, meta.origin, info.total_len, now);
                return None;
            }
            self.counters.assembled += 1;
            Some(InboundMessage {
                // Assembled here: the receipt goes to the origin explicitly.
                sender: self.local.clone(),
                meta,
                payload,
                crc32,
            })
        });
        PieceOutcome {
            verdict: PieceVerdict::New,
            actions,
            complete,
        }
    }

    /// Sending `piece` to the peer it was addressed to failed: send it to the
    /// nodes below that peer (its forwarding list) instead.
    pub fn on_piece_failed(&mut self, piece: &OutboundMessage) -> Vec<Action> {
        let Some(info) = piece.meta.piece.as_deref() else {
            return Vec::new();
        };
        self.counters.pieces_rerouted += 1;
        route(&info.subtree, info.fanout as usize, &self.local)
            .into_iter()
            .map(|(to, below)| Action::SendPiece {
                to,
                piece: piece_message(
                    &piece.meta,
                    info,
                    info.index,
                    below,
                    piece.payload.clone(),
                    Some(piece.crc32),
                ),
            })
            .collect()
    }

    /// The whole of `id` was refused after assembly (its origin's signature did
    /// not hold): fetch it from its origin.
    pub fn on_assembled_refused(&mut self, id: MessageId, origin: NodeId, size: u64, now: Instant) {
        self.counters.assembly_corrupt += 1;
        self.pull_whole(id, origin, size, now);
    }

    /// Pulls `id` whole now, from `holder` first.
    pub(super) fn pull_whole(&mut self, id: MessageId, holder: NodeId, size: u64, now: Instant) {
        let pull = self.pulls.entry(id).or_insert_with(|| Pull {
            size,
            holders: Vec::new(),
            asked: 0,
            due: now,
            attempts: 0,
        });
        if !pull.holders.contains(&holder) {
            pull.holders.insert(0, holder);
            pull.asked = 0;
        }
        pull.due = pull.due.min(now);
    }

    /// Partial broadcasts that stopped getting pieces are pulled whole, from
    /// whoever announced them, and their origin.
    pub(super) fn repair_stalled(&mut self, now: Instant) {
        let stall = self.config.swarm_stall;
        for (id, origin, size) in self.assemblies.newly_stalled(now, stall) {
            self.counters.assembly_stalls += 1;
            match self.pulls.get_mut(&id) {
                Some(p) => {
                    if !p.holders.contains(&origin) {
                        p.holders.push(origin);
                    }
                    p.due = p.due.min(now);
                }
                None => self.pull_whole(id, origin, size, now),
            }
        }
    }
}

/// The children to send a piece to, given the nodes below this one; a list
/// that names this node (a broken or hostile sender) skips it.
fn route(subtree: &[NodeId], k: usize, local: &NodeId) -> Vec<(NodeId, Vec<NodeId>)> {
    let mut out = Vec::new();
    let mut todo = vec![subtree.to_vec()];
    while let Some(list) = todo.pop() {
        for (child, below) in tree::children(&list, k) {
            if child == *local {
                todo.push(below);
            } else {
                out.push((child, below));
            }
        }
    }
    out
}

/// Piece `index` of the broadcast `meta`, for a receiver with `below` under it.
/// `crc32` is the piece's checksum when known (a forwarded piece).
pub(super) fn piece_message(
    meta: &MessageMeta,
    info: &PieceInfo,
    index: u32,
    below: Vec<NodeId>,
    data: Bytes,
    crc32: Option<u32>,
) -> OutboundMessage {
    let mut m = meta.clone();
    m.id = piece_id(info.message, index);
    let crc32 = crc32.unwrap_or_else(|| crc32fast::hash(&data));
    m.piece = Some(Arc::new(PieceInfo {
        message: info.message,
        index,
        count: info.count,
        piece_len: info.piece_len,
        total_len: info.total_len,
        crc32: info.crc32,
        fanout: info.fanout,
        subtree: below,
    }));
    OutboundMessage {
        meta: m,
        payload: data,
        crc32,
    }
}

/// The CRC-32 of a payload from its pieces' (in order; every piece
/// `piece_len` bytes but the last): the same value `crc32fast::hash` gives over
/// the whole, at a cost per piece rather than per byte. Each piece's value was
/// checked against its bytes when it came (`InboundMessage::crc32`).
fn combined_crc(piece_crcs: &[u32], piece_len: u64, total_len: u64) -> u32 {
    let mut whole = crc32fast::Hasher::new();
    let mut left = total_len;
    for crc in piece_crcs {
        let len = left.min(piece_len);
        left -= len;
        whole.combine(&crc32fast::Hasher::new_with_initial_len(*crc, len));
    }
    whole.finalize()
}

#[cfg(test)]
mod tests {
    use super::combined_crc;

    #[test]
    fn the_pieces_checksums_combine_into_the_wholes() {
        let data: Vec<u8> = (0..100_003u32)
            .map(|i| (i * 7 + i / 251).to_le_bytes()[0])
            .collect();
        for piece_len in [1_000usize, 4_096, 99_999, 100_003, 1 << 20] {
            let crcs: Vec<u32> = data.chunks(piece_len).map(crc32fast::hash).collect();
            assert_eq!(
                combined_crc(&crcs, piece_len as u64, data.len() as u64),
                crc32fast::hash(&data),
                "piece_len {piece_len}"
            );
        }
    }
}
