//! Missing pieces of a swarm broadcast, fetched one by one: a relay that
//! died with pieces it had not passed on leaves gaps below it, and a
//! receiver resumes from the pieces it has, fetching only what is missing
//! from a node that holds it, instead of the whole payload again.
//!
//! - A piece that came down its tree from a new neighbour (its parent there
//!   died, and the parent's parent routes around it) shows the gap behind it:
//!   the tree's missing pieces before it are wanted from that neighbour at
//!   once (see `Assembly::came_down_tree`). Only then: pieces of one tree may
//!   come in any order (a sender has many in flight on its link), so a later
//!   piece alone says nothing of an earlier one.
//! - A tree whose parent here left the cluster (the failure detector said
//!   so) has its missing pieces wanted from the holders of the whole at once:
//!   a relay that died holding the last pieces of its tree is routed around
//!   by nobody.
//! - An assembly that goes quiet (no new piece for eight times the mean time
//!   between its pieces, within three quarters of `swarm_stall` and
//!   `swarm_stall`: pieces wanted never came, or a node is far behind) has
//!   what is missing wanted from the origin and the nodes that announced the
//!   whole, in turn. Not sooner: a loaded host or link pauses for hundreds of
//!   milliseconds, and each such want is a copy more from the origin.
//!   At most [`QUIET_BATCH`] at a time: what arrives shows the assembly is
//!   not quiet any more, and the trees' own flow (routed around a dead relay)
//!   may well bring the rest.
//! - A want not answered in its time (the holder sends a want's pieces one
//!   after the other, so the time grows with the pieces asked, and doubles
//!   with each want of the same piece: a busy holder is not asked the same
//!   again and again) goes to the next holder; after `max_pull_attempts` the
//!   piece is left to the whole pull of a stalled assembly (see
//!   `repair_stalled`).
//!
//! A fetched piece goes on down this node's side of its tree, so a gap is
//! filled once, at the top of the subtree that lost it.
//!
//! [`BroadcastConfig::pull_timeout`]: crate::broadcast::config::BroadcastConfig::pull_timeout

use std::{collections::BTreeMap, time::Instant};

/// Missing pieces a quiet assembly wants at once, at most.
pub(super) const QUIET_BATCH: usize = 8;

use super::{Action, BroadcastState, assembly::Asked, swarm::piece_message};
use crate::{
    ids::{MessageId, NodeId},
    piece::PieceInfo,
};

impl BroadcastState {
    /// Wants for the missing pieces that are due (see the module's rules).
    /// An assembly is looked at only when it went quiet or one of its wants
    /// is due, so a tick costs little however many pieces are missing.
    pub(super) fn repair_pieces(&mut self, now: Instant) -> Vec<Action> {
        let max_attempts = self.config.max_pull_attempts;
        let stall = self.config.swarm_stall;
        let mut wants: BTreeMap<(NodeId, MessageId), Vec<u32>> = BTreeMap::new();
        for (id, a) in &mut self.assemblies.items {
            if a.finished || a.stalled {
                continue;
            }
            let quiet =
                now.saturating_duration_since(a.progress) >= a.quiet_limit(stall * 3 / 4, stall);
            if !quiet && a.next_due.is_none_or(|d| now < d) {
                continue;
            }
            let mut holders = vec![a.meta.origin.clone()];
            if let Some(p) = self.pulls.get(id) {
                holders.extend(p.holders.iter().filter(|h| **h != a.meta.origin).cloned());
            }
            holders.retain(|h| *h != self.local);
            // Due: unanswered wants past their time; when quiet, also the
            // first missing pieces never asked for.
            let mut due: Vec<(u32, u32)> = a
                .asked
                .iter()
                .filter(|(j, x)| {
                    !a.have.get(**j as usize).copied().unwrap_or(true)
                        && x.attempts < max_attempts
                        && (x.holder_gone || now >= x.due)
                })
                .map(|(j, x)| (*j, x.attempts))
                .collect();
            if quiet {
                due.extend(
                    (0..a.count)
                        .filter(|j| {
                            !a.have.get(*j as usize).copied().unwrap_or(true)
                                && !a.asked.contains_key(j)
                        })
                        .take(QUIET_BATCH)
                        .map(|j| (j, 0)),
                );
            }
            if !holders.is_empty() {
                let mut batch: BTreeMap<NodeId, Vec<(u32, u32)>> = BTreeMap::new();
                for (j, attempts) in due {
                    let to = holders[(attempts as usize + j as usize) % holders.len()].clone();
                    batch.entry(to).or_default().push((j, attempts + 1));
                }
                for (to, pieces) in batch {
                    let answer = self
                        .config
                        .pull_timeout(a.piece_len.saturating_mul(pieces.len() as u64));
                    for &(j, attempts) in &pieces {
                        let backoff = 1u32 << attempts.saturating_sub(1).min(4);
                        a.asked.insert(
                            j,
                            Asked {
                                due: now + answer * backoff,
                                to: to.clone(),
                                attempts,
                                holder_gone: false,
                            },
                        );
                    }
                    wants
                        .entry((to, *id))
                        .or_default()
                        .extend(pieces.iter().map(|(j, _)| *j));
                }
            }
            a.next_due = a
                .asked
                .iter()
                .filter(|(j, x)| {
                    !a.have.get(**j as usize).copied().unwrap_or(true) && x.attempts < max_attempts
                })
                .map(|(_, x)| x.due)
                .min();
        }
        wants
            .into_iter()
            .map(|((to, id), pieces)| {
                self.counters.pieces_wanted += pieces.len() as u64;
                Action::WantPieces { to, id, pieces }
            })
            .collect()
    }

    /// `from` wants these pieces: each one held here (in the stored whole, or
    /// in an assembly in progress) goes to it as a piece of its own, without a
    /// forwarding list.
    pub fn on_want_pieces(
        &mut self,
        from: &NodeId,
        wants: &[(MessageId, Vec<u32>)],
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        for (id, pieces) in wants {
            let Some(a) = self.assemblies.items.get(id) else {
                self.counters.wants_unserved += pieces.len() as u64;
                continue;
            };
            let whole = self.store.get(id).map(|s| s.payload.clone());
            let info = PieceInfo {
                message: *id,
                index: 0,
                count: a.count,
                piece_len: a.piece_len,
                total_len: a.total_len,
                crc32: a.crc32,
                fanout: a.fanout,
                subtree: Vec::new(),
            };
            let mut pieces = pieces.clone();
            pieces.sort_unstable();
            pieces.dedup();
            for j in pieces {
                let r = info.range(j);
                let (Ok(start), Ok(end)) = (usize::try_from(r.start), usize::try_from(r.end))
                else {
                    continue;
                };
                let data = match &whole {
                    Some(w) if j < a.count && end <= w.len() => Some(w.slice(start..end)),
                    _ if a.have.get(j as usize).copied().unwrap_or(false) => {
                        a.buf.get(start..end).map(bytes::Bytes::copy_from_slice)
                    }
                    _ => None,
                };
                let Some(data) = data else {
                    self.counters.wants_unserved += 1;
                    continue;
                };
                self.counters.pieces_served += 1;
                actions.push(Action::SendPiece {
                    to: from.clone(),
                    piece: piece_message(&a.meta, &info, j, Vec::new(), data, None),
                });
            }
        }
        actions
    }

    /// `node` is gone: the pieces wanted from it, and those missing of the
    /// trees it was this node's parent in, are wanted from the holders of the
    /// whole at the next tick.
    pub(super) fn forget_piece_holder(&mut self, node: &NodeId, now: Instant) {
        for a in self.assemblies.items.values_mut() {
            if a.finished {
                continue;
            }
            let orphaned: Vec<bool> = a
                .trees
                .iter()
                .map(|side| side.parent.as_ref() == Some(node))
                .collect();
            if !orphaned.contains(&true) && !a.asked.values().any(|x| x.to == *node) {
                continue;
            }
            for side in &mut a.trees {
                if side.parent.as_ref() == Some(node) {
                    side.parent = None;
                }
            }
            for asked in a.asked.values_mut() {
                if asked.to == *node {
                    asked.holder_gone = true;
                }
            }
            for j in 0..a.count {
                if !a.have.get(j as usize).copied().unwrap_or(true)
                    && orphaned[a.tree_of(j)]
                    && !a.asked.contains_key(&j)
                {
                    a.asked.insert(
                        j,
                        Asked {
                            due: now,
                            to: node.clone(),
                            attempts: 0,
                            holder_gone: true,
                        },
                    );
                }
            }
            a.next_due = Some(now);
        }
    }
}
