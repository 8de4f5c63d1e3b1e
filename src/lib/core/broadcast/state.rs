//! One node's broadcast state, pure: what it has seen and holds, what it is
//! pulling from whom, and (as origin) who has confirmed delivery. Every input
//! returns the actions to take; the runtime carries them out.
//!
//! The origin pushes the payload to every live member (each gets one copy, the
//! ideal). Every node that receives it announces it, metadata only, to `relay`
//! peers; a node that hears of a message before its copy arrives waits the graft
//! delay, then pulls it from an announcer. So a message whose origin dies
//! mid-send still reaches everyone, and payloads cross links about once.

mod assembly;
mod neighbours;
mod origin;
mod outbox;
mod repair;
mod swarm;

use std::{collections::BTreeMap, time::Instant};

use bytes::Bytes;
use rand::{Rng, seq::IndexedRandom as _};

pub use self::{
    neighbours::{GONE_MARGIN, MAX_CONTROL_ENTRIES, MAX_GONE, MIN_DIGEST_WINDOW},
    outbox::{
        MAX_PENDING_RECEIPTS_PER_ORIGIN, MAX_RECEIPTS_PER_MESSAGE, MAX_RETRIES_WAITING, SendOutcome,
    },
    swarm::{PieceOutcome, PieceVerdict},
};
pub use super::action::{Action, Announce, Control, Counters, OriginateError};
use super::{
    config::{BroadcastConfig, Relay},
    store::{PayloadStore, Stored},
};
use crate::{
    ack_tracker::AckTracker,
    dedup::DedupCache,
    ids::{MessageId, NodeId},
    message::{InboundMessage, OutboundMessage},
};

#[derive(Debug)]
struct Pull {
    size: u64,
    holders: Vec<NodeId>,
    /// Index in `holders` of the next (or last) one asked.
    asked: usize,
    /// When to ask (again).
    due: Instant,
    /// Wants sent so far.
    attempts: u32,
}

/// The broadcast state of one node.
#[derive(Debug)]
pub struct BroadcastState {
    local: NodeId,
    config: BroadcastConfig,
    seen: DedupCache<MessageId>,
    store: PayloadStore,
    pulls: BTreeMap<MessageId, Pull>,
    origin: AckTracker<()>,
    assemblies: assembly::Assemblies,
    outbox: outbox::Outbox,
    neighbours: neighbours::Neighbours,
    counters: Counters,
}

impl BroadcastState {
    /// State for node `local`.
    pub fn new(local: NodeId, config: BroadcastConfig) -> Self {
        Self {
            seen: DedupCache::new(config.seen_capacity, config.seen_ttl),
            store: PayloadStore::new(config.store_bytes, config.store_ttl),
            origin: AckTracker::new(config.max_tracked),
            local,
            pulls: BTreeMap::new(),
            assemblies: assembly::Assemblies::default(),
            outbox: outbox::Outbox::default(),
            neighbours: neighbours::Neighbours::default(),
            counters: Counters::default(),
            config,
        }
    }

    /// The settings.
    pub fn config(&self) -> &BroadcastConfig {
        &self.config
    }

    /// Counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Remembers ids delivered before a restart, each `age` before `now`,
    /// oldest first: they are refused as duplicates until their TTL ends.
    pub fn restore_seen(
        &mut self,
        ids: impl IntoIterator<Item = (MessageId, std::time::Duration)>,
        now: Instant,
    ) {
        for (id, age) in ids {
            self.seen.insert(id, now.checked_sub(age).unwrap_or(now));
        }
    }

    /// Whether `id` was delivered here within the seen TTL.
    pub fn is_seen(&self, id: &MessageId, now: Instant) -> bool {
        self.seen.contains(id, now)
    }

    /// Sizes of the bounded tables: (seen ids, stored payloads, stored bytes,
    /// pulls, tracked broadcasts).
    pub fn sizes(&self) -> (usize, usize, u64, usize, usize) {
        (
            self.seen.len(),
            self.store.len(),
            self.store.bytes(),
            self.pulls.len(),
            self.origin.len(),
        )
    }

    /// Broadcasts being assembled from pieces, and the bytes they hold.
    pub fn assemblies(&self) -> (usize, u64) {
        self.assemblies.load()
    }

    /// A payload arrived (or was created here). Returns whether it was new, and
    /// what to do: deliver, confirm to the origin, relay.
    pub fn on_payload<R: Rng>(
        &mut self,
        msg: InboundMessage,
        peers: &[NodeId],
        now: Instant,
        rng: &mut R,
    ) -> (bool, Vec<Action>) {
        let id = msg.meta.id;
        if !self.seen.insert(id, now) {
            self.counters.duplicates += 1;
            return (false, Vec::new());
        }
        self.counters.delivered += 1;
        self.assemblies.finish(&id);
        let pulled_from = self.pulls.remove(&id).map(|p| p.holders);
        let origin = msg.meta.origin.clone();
        let sender = msg.sender.clone();
        let size = msg.payload.len() as u64;
        let mut actions = Vec::new();
        // The relayed copy carries one hop more and one hop less to go.
        let relay = msg.meta.ttl > 0;
        let mut meta = msg.meta.clone();
        meta.hops = meta.hops.saturating_add(1);
        meta.ttl = meta.ttl.saturating_sub(1);
        self.store.insert(
            Stored {
                meta,
                payload: msg.payload.clone(),
                crc32: msg.crc32,
            },
            now,
        );
        if origin == self.local {
            actions.extend(self.receipt(id, &self.local.clone(), now));
        } else if sender != origin {
            // From the origin itself, the hop ACK is the receipt (see
            // `on_direct_ack`); from a relay, the origin must be told.
            actions.extend(self.queue_receipt(&origin, id));
        }
        actions.push(Action::Deliver(msg));
        if relay {
            let skip = |p: &NodeId| {
                *p == self.local
                    || *p == sender
                    || *p == origin
                    || pulled_from.as_ref().is_some_and(|h| h.contains(p))
            };
            let candidates: Vec<&NodeId> = peers.iter().filter(|p| !skip(p)).collect();
            let targets: Vec<NodeId> = match self.config.relay {
                Relay::All => candidates.into_iter().cloned().collect(),
                Relay::Fanout(k) => candidates
                    .choose_multiple(rng, k)
                    .map(|p| (*p).clone())
                    .collect(),
            };
            let entry = Announce { id, origin, size };
            for to in targets {
                self.queue_announce(to, entry.clone());
            }
        }
        (true, actions)
    }

    /// `from` holds these messages: pull the ones not seen yet, at once when
    /// `from` is their origin, else after the graft delay (the origin's copy is
    /// probably on its way). A payload large enough to travel as a swarm is
    /// never pulled at once: its pieces are on their way down the trees, and a
    /// whole copy from the origin would double the origin's upload; it is
    /// pulled only when no piece came for `swarm_stall` (see [`Self::tick`]).
    pub fn on_announce(
        &mut self,
        from: &NodeId,
        entries: Vec<Announce>,
        now: Instant,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        for e in entries {
            if self.seen.contains(&e.id, now) {
                continue;
            }
            if let Some(p) = self.pulls.get_mut(&e.id) {
                if !p.holders.contains(from) {
                    p.holders.push(from.clone());
                }
                continue;
            }
            if self.pulls.len() >= self.config.max_pulls {
                self.counters.pulls_refused += 1;
                continue;
            }
            let swarm_sized = e.size >= self.config.swarm_min_bytes;
            let at_once = *from == e.origin && !swarm_sized;
            let wait = if swarm_sized {
                self.config.graft_delay.max(self.config.swarm_stall)
            } else {
                self.config.graft_delay
            };
            let mut pull = Pull {
                size: e.size,
                holders: vec![from.clone()],
                asked: 0,
                due: now + wait,
                attempts: 0,
            };
            if at_once {
                pull.attempts = 1;
                pull.due = now + self.config.pull_timeout(e.size);
                actions.push(Action::Want {
                    to: from.clone(),
                    id: e.id,
                });
            }
            self.pulls.insert(e.id, pull);
        }
        actions
    }

    /// `from` wants these payloads: send the ones still held.
    pub fn on_want(&mut self, from: &NodeId, ids: &[MessageId]) -> Vec<Action> {
        ids.iter()
            .filter_map(|id| {
                if self.store.get(id).is_some() {
                    Some(Action::Send {
                        to: from.clone(),
                        id: *id,
                        attempt: 0,
                    })
                } else {
                    self.counters.wants_unserved += 1;
                    None
                }
            })
            .collect()
    }

    /// `node` died or left: stop waiting for it, and stop pulling from it.
    pub fn on_member_gone(&mut self, node: &NodeId, now: Instant) -> Vec<Action> {
        for p in self.pulls.values_mut() {
            p.holders.retain(|h| h != node);
        }
        self.forget_piece_holder(node, now);
        self.forget_sends_to(node);
        self.went_down(node, now);
        self.origin
            .forget_receiver(node, now)
            .into_iter()
            .map(Action::Done)
            .collect()
    }

    /// Whether nothing here waits on a short timer: no pull, no assembly
    /// in progress, none of this node's broadcasts waiting for confirmations,
    /// no send waiting for its retry, no announcement waiting for the tick.
    /// Then [`Self::tick`] has only the store's and the seen set's expiry to
    /// do, whose TTLs are minutes: an executor may tick seldom until the
    /// state changes.
    pub fn quiet(&self) -> bool {
        self.pulls.is_empty()
            && self.origin.is_empty()
            && self.assemblies.load().0 == 0
            && !self.outbox.waiting()
            && !self.neighbours.waiting()
    }

    /// Advances timers: pulls that waited too long ask another holder (or give
    /// up after every attempt); tracked broadcasts past their deadline end.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut abandon = Vec::new();
        self.repair_stalled(now);
        let stall = self.config.swarm_stall;
        for (id, p) in &mut self.pulls {
            if now < p.due {
                continue;
            }
            // Pieces are still coming: the whole would cross them.
            if let Some(at) = self.assemblies.stall_at(id, stall)
                && now < at
            {
                p.due = at;
                continue;
            }
            if p.attempts >= self.config.max_pull_attempts || p.holders.is_empty() {
                abandon.push(*id);
                continue;
            }
            if p.attempts > 0 {
                p.asked = (p.asked + 1) % p.holders.len();
            }
            p.due = now + self.config.pull_timeout(p.size);
            p.attempts += 1;
            actions.push(Action::Want {
                to: p.holders[p.asked].clone(),
                id: *id,
            });
        }
        for id in abandon {
            self.pulls.remove(&id);
            self.counters.pulls_abandoned += 1;
        }
        actions.extend(self.repair_pieces(now));
        actions.extend(self.due_sends(now));
        actions.extend(self.origin.expire(now).into_iter().map(Action::Done));
        self.store.expire(now);
        self.seen.expire(now);
        self.assemblies.expire(now);
        actions.extend(self.flush_announces());
        actions
    }

    /// The messages held that were received since `since`, newest last, at most
    /// `digest_max_ids`: what a digest tells a peer.
    pub fn digest(&self, since: Instant) -> Vec<Announce> {
        self.store
            .recent(since, self.config.digest_max_ids)
            .into_iter()
            .map(|(id, s)| Announce {
                id,
                origin: s.meta.origin.clone(),
                size: s.payload.len() as u64,
            })
            .collect()
    }

    /// The outbound form of a stored message, to send on a link.
    pub fn outbound(&self, id: &MessageId) -> Option<OutboundMessage> {
        self.store.get(id).map(|s| OutboundMessage {
            meta: s.meta.clone(),
            payload: s.payload.clone(),
            crc32: s.crc32,
        })
    }

    /// A fresh message from this node.
    pub fn message(
        &self,
        topic: &str,
        payload: Bytes,
        ttl: u32,
        now_unix_ns: i64,
    ) -> OutboundMessage {
        let mut m = OutboundMessage::new(self.local.clone(), topic, payload, now_unix_ns);
        m.meta.ttl = ttl;
        m
    }
}
