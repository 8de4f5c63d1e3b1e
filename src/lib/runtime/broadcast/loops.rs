//! The engine's loops: timers (pull retries, origin deadlines, expiry), digests
//! (so a peer that missed messages pulls them), and membership (who is up,
//! where; members that die or leave are no longer waited for).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use rand::seq::IndexedRandom as _;
use tokio::sync::broadcast::error::RecvError;
use tracing::debug;

use super::{BroadcastEngine, Inner, exec, stats};
use crate::{
    core::{
        broadcast::state::Control,
        ids::NodeId,
        membership::{events::EventKind, record::Maintenance},
    },
    runtime::membership::MembershipAgent,
};

/// Digests cover messages received this long ago at least.
const MIN_DIGEST_WINDOW: Duration = Duration::from_secs(10);

/// Members remembered as gone (to catch them up if they return), at most.
const MAX_GONE: usize = 4096;
/// Digests to a returning member start this long before it went away.
const GONE_MARGIN: Duration = Duration::from_secs(10);

/// The up members (alive or suspect, not disabled) other than this node, and their addresses;
/// and when members that went down did so (bounded by [`MAX_GONE`] and the
/// payload store's TTL).
#[derive(Default)]
pub(super) struct PeerCache {
    peers: Mutex<HashMap<NodeId, String>>,
    disabled: Mutex<Vec<NodeId>>,
    gone: Mutex<HashMap<NodeId, std::time::Instant>>,
    /// When each member's current incarnation was first seen up here. Nothing
    /// received before that is ever offered to it: broadcasts are not replayed
    /// to a newcomer, nor to a node that restarted (and so forgot what it
    /// delivered). Kept while the member is up or remembered as gone.
    joined: Mutex<HashMap<NodeId, (u64, std::time::Instant)>>,
}

impl PeerCache {
    /// Rereads the membership table; returns the members no longer up.
    pub(super) fn refresh(&self, agent: &MembershipAgent) -> Vec<NodeId> {
        let local = agent.local_id().clone();
        // A disabled member refuses payloads: it is neither sent nor expected.
        let (fresh, mut disabled): (HashMap<NodeId, String>, Vec<NodeId>) = agent.with_state(|s| {
            let up = || s.records().filter(|r| r.state.is_up() && r.id != local);
            (
                up().filter(|r| r.maintenance != Maintenance::Disabled)
                    .map(|r| (r.id.clone(), r.address.clone()))
                    .collect(),
                up().filter(|r| r.maintenance == Maintenance::Disabled)
                    .map(|r| r.id.clone())
                    .collect(),
            )
        });
        disabled.sort();
        *self.disabled.lock().unwrap_or_else(PoisonError::into_inner) = disabled;
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let gone: Vec<NodeId> = peers
            .keys()
            .filter(|id| !fresh.contains_key(*id))
            .cloned()
            .collect();
        *peers = fresh;
        drop(peers);
        self.note_incarnations(agent, &local, &gone);
        gone
    }

    /// Rereads one member's record (after an event about it): O(1) where
    /// [`Self::refresh`] is O(members), which made a join of N nodes cost
    /// O(N^2) per node. Returns whether it is no longer an up peer.
    pub(super) fn refresh_one(&self, agent: &MembershipAgent, id: &NodeId) -> bool {
        if id == agent.local_id() {
            return false;
        }
        let record = agent.with_state(|s| {
            s.get(id).filter(|r| r.state.is_up()).map(|r| {
                (
                    r.maintenance == Maintenance::Disabled,
                    r.address.clone(),
                    r.version.incarnation,
                )
            })
        });
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let mut disabled = self.disabled.lock().unwrap_or_else(PoisonError::into_inner);
        let was_peer = peers.contains_key(id);
        disabled.retain(|d| d != id);
        match &record {
            Some((false, address, _)) => {
                peers.insert(id.clone(), address.clone());
            }
            Some((true, _, _)) => {
                peers.remove(id);
                disabled.push(id.clone());
                disabled.sort();
            }
            None => {
                peers.remove(id);
            }
        }
        let went_down = was_peer && !peers.contains_key(id);
        drop((peers, disabled));
        let mut joined = self.joined.lock().unwrap_or_else(PoisonError::into_inner);
        match record {
            Some((_, _, inc)) if joined.get(id).is_none_or(|(known, _)| *known != inc) => {
                let now = tokio::time::Instant::now().into_std();
                joined.insert(id.clone(), (inc, now));
                self.gone
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(id);
            }
            // Kept while it is remembered as gone (to catch it up if it returns).
            None if !went_down
                && !self
                    .gone
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .contains_key(id) =>
            {
                joined.remove(id);
            }
            Some(_) | None => {}
        }
        went_down
    }

    /// Remembers that `ids` went down at `now`, forgetting entries older than
    /// `keep` (and the oldest beyond [`MAX_GONE`]).
    fn went_down(&self, ids: &[NodeId], now: std::time::Instant, keep: Duration) {
        let mut gone = self.gone.lock().unwrap_or_else(PoisonError::into_inner);
        gone.retain(|_, at| now.saturating_duration_since(*at) < keep);
        for id in ids {
            if gone.len() >= MAX_GONE
                && let Some(oldest) = gone
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(k, _)| k.clone())
            {
                gone.remove(&oldest);
            }
            gone.insert(id.clone(), now);
        }
    }

    /// Records when each up member's incarnation was first seen; a new
    /// incarnation (a restart) starts over and is not caught up on what its
    /// previous one missed.
    fn note_incarnations(&self, agent: &MembershipAgent, local: &NodeId, just_gone: &[NodeId]) {
        let now = tokio::time::Instant::now().into_std();
        let up: Vec<(NodeId, u64)> = agent.with_state(|s| {
            s.records()
                .filter(|r| r.state.is_up() && r.id != *local)
                .map(|r| (r.id.clone(), r.version.incarnation))
                .collect()
        });
        let mut joined = self.joined.lock().unwrap_or_else(PoisonError::into_inner);
        let mut gone = self.gone.lock().unwrap_or_else(PoisonError::into_inner);
        for (id, inc) in &up {
            if joined.get(id).is_none_or(|(known, _)| known != inc) {
                joined.insert(id.clone(), (*inc, now));
                gone.remove(id);
            }
        }
        let keep: std::collections::HashSet<&NodeId> =
            up.iter().map(|(id, _)| id).chain(just_gone).collect();
        joined.retain(|id, _| gone.contains_key(id) || keep.contains(id));
    }

    /// Since when `id` (its current incarnation) has been known up here.
    fn joined_at(&self, id: &NodeId) -> Option<std::time::Instant> {
        self.joined
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .map(|(_, at)| *at)
    }

    /// When `id` went down, if it did recently; forgets it.
    fn came_back(&self, id: &NodeId) -> Option<std::time::Instant> {
        self.gone
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
    }

    /// Ids of the up peers that are disabled, sorted.
    pub(super) fn disabled(&self) -> Vec<NodeId> {
        self.disabled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Ids of the up peers, sorted.
    pub(super) fn ids(&self) -> Vec<NodeId> {
        let peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let mut ids: Vec<NodeId> = peers.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The address of up peer `id`.
    pub(super) fn address(&self, id: &NodeId) -> Option<String> {
        self.peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// Whether `id` is an up peer.
    pub(super) fn is_up(&self, id: &NodeId) -> bool {
        self.peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(id)
    }
}

pub(super) fn spawn(engine: &BroadcastEngine) {
    let inner = &engine.inner;
    let events = inner.agent.subscribe();
    refresh(inner);
    inner.tasks.spawn(super::timer::run(Arc::clone(inner)));
    inner.tasks.spawn(digests(Arc::clone(inner)));
    inner.tasks.spawn(membership(Arc::clone(inner), events));
}

fn refresh(inner: &Arc<Inner>) {
    let gone = inner.peers.refresh(&inner.agent);
    members_gone(inner, &gone);
}

/// Rereads the record of `id` only.
fn refresh_one(inner: &Arc<Inner>, id: &NodeId) {
    if inner.peers.refresh_one(&inner.agent, id) {
        members_gone(inner, std::slice::from_ref(id));
    }
}

/// Stops waiting for, and pulling from, members no longer up.
fn members_gone(inner: &Arc<Inner>, gone: &[NodeId]) {
    if gone.is_empty() {
        return;
    }
    let now = tokio::time::Instant::now().into_std();
    inner
        .peers
        .went_down(gone, now, inner.config.broadcast.store_ttl);
    let actions = inner.with_state(|s| {
        gone.iter()
            .flat_map(|id| s.on_member_gone(id, now))
            .collect()
    });
    for id in gone {
        inner.transport.forget(id);
    }
    exec::run(inner, actions);
}

async fn digests(inner: Arc<Inner>) {
    let interval = inner.config.broadcast.digest_interval;
    let window = MIN_DIGEST_WINDOW.max(interval * 5);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = inner.shutdown.cancelled() => return,
        }
        let target = {
            let ids = inner.peers.ids();
            let mut rng = inner.rng.lock().unwrap_or_else(PoisonError::into_inner);
            ids.choose(&mut *rng).cloned()
        };
        if let Some(to) = target {
            send_digest(&inner, &to, window);
        }
    }
}

/// A member back from a partition or a leave missed what was broadcast
/// meanwhile: tell it everything held since shortly before it went away (all
/// that is held when it was only suspected), but nothing from before this
/// incarnation of it was first seen. A member never seen before, or one that
/// restarted, gets nothing: broadcasts are not replayed to newcomers.
fn catch_up(inner: &Arc<Inner>, id: &NodeId, kind: EventKind) {
    if !matches!(kind, EventKind::AliveAgain | EventKind::Joined) {
        return;
    }
    let store_ttl = inner.config.broadcast.store_ttl;
    let window = match inner.peers.came_back(id) {
        Some(at) => {
            let now = tokio::time::Instant::now().into_std();
            now.saturating_duration_since(at) + GONE_MARGIN
        }
        None if kind == EventKind::AliveAgain => store_ttl,
        None => return,
    };
    debug!(peer = %id, ?window, "member back; sending a digest of what it missed");
    send_digest(inner, id, window.min(store_ttl));
}

/// Tells `to` which messages received within `window` this node holds, and
/// never one received before `to` (this incarnation of it) was known here.
fn send_digest(inner: &Arc<Inner>, to: &NodeId, window: Duration) {
    let now = tokio::time::Instant::now().into_std();
    let Some(joined) = inner.peers.joined_at(to) else {
        return;
    };
    let since = now.checked_sub(window).unwrap_or(now).max(joined);
    let announce = inner.with_state(|s| s.digest(since));
    if announce.is_empty() {
        return;
    }
    let Some(addr) = inner.peers.address(to) else {
        return;
    };
    stats::inc(&inner.stats.control_sent);
    inner.transport.control(
        to,
        &addr,
        Control {
            announce,
            ..Control::default()
        },
    );
}

async fn membership(
    inner: Arc<Inner>,
    mut events: tokio::sync::broadcast::Receiver<crate::core::membership::events::MembershipEvent>,
) {
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            () = inner.shutdown.cancelled() => return,
        };
        match event {
            Ok(e) => {
                // Resource updates are most events and change nothing here
                // unless a peer moved (this node is not in the cache).
                let moved = e.id != *inner.agent.local_id()
                    && inner.peers.address(&e.id).as_deref() != Some(e.address.as_str());
                if e.kind != EventKind::Updated || moved {
                    refresh_one(&inner, &e.id);
                }
                catch_up(&inner, &e.id, e.kind);
            }
            Err(RecvError::Lagged(_)) => refresh(&inner),
            Err(RecvError::Closed) => return,
        }
    }
}
