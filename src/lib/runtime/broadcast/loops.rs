//! The engine's view of the membership (who is up, where; members that die
//! or leave are no longer waited for, members that come back are caught up
//! by the state), and the spawning of its tasks: the timer loop
//! (`timer.rs`) and the membership loop below.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::sync::broadcast::error::RecvError;
use tracing::debug;

use super::{BroadcastEngine, Inner, exec};
use crate::{
    core::{
        ids::NodeId,
        membership::{events::EventKind, record::Maintenance},
    },
    runtime::membership::MembershipAgent,
};

/// The up members (alive or suspect, not disabled) other than this node, and
/// their addresses.
#[derive(Default)]
pub(super) struct PeerCache {
    peers: Mutex<HashMap<NodeId, String>>,
    disabled: Mutex<Vec<NodeId>>,
}

impl PeerCache {
    /// Rereads the membership table; returns the members up (with their
    /// incarnations, disabled ones included) and those no longer up.
    pub(super) fn refresh(&self, agent: &MembershipAgent) -> (Vec<(NodeId, u64)>, Vec<NodeId>) {
        type Up = (HashMap<NodeId, String>, Vec<NodeId>, Vec<(NodeId, u64)>);
        let local = agent.local_id().clone();
        // A disabled member refuses payloads: it is neither sent nor expected.
        let (fresh, mut disabled, up): Up = agent.with_state(|s| {
            let up = || s.records().filter(|r| r.state.is_up() && r.id != local);
            (
                up().filter(|r| r.maintenance != Maintenance::Disabled)
                    .map(|r| (r.id.clone(), r.address.clone()))
                    .collect(),
                up().filter(|r| r.maintenance == Maintenance::Disabled)
                    .map(|r| r.id.clone())
                    .collect(),
                up().map(|r| (r.id.clone(), r.version.incarnation))
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
        (up, gone)
    }

    /// Rereads one member's record (after an event about it): O(1) where
    /// [`Self::refresh`] is O(members), which made a join of N nodes cost
    /// O(N^2) per node. Returns its incarnation if it is up, and whether it
    /// is no longer an up peer.
    pub(super) fn refresh_one(&self, agent: &MembershipAgent, id: &NodeId) -> (Option<u64>, bool) {
        if id == agent.local_id() {
            return (None, false);
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
        (record.map(|(_, _, inc)| inc), went_down)
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
    inner.tasks.spawn(membership(Arc::clone(inner), events));
}

fn refresh(inner: &Arc<Inner>) {
    let (up, gone) = inner.peers.refresh(&inner.agent);
    let now = tokio::time::Instant::now().into_std();
    inner.with_state(|s| {
        for (id, inc) in &up {
            s.on_member_up(id, *inc, now);
        }
        let ids: Vec<NodeId> = up.into_iter().map(|(id, _)| id).collect();
        s.retain_members(&ids);
    });
    members_gone(inner, &gone);
}

/// Rereads the record of `id` only.
fn refresh_one(inner: &Arc<Inner>, id: &NodeId) {
    let (up, went_down) = inner.peers.refresh_one(&inner.agent, id);
    if let Some(inc) = up {
        let now = tokio::time::Instant::now().into_std();
        inner.with_state(|s| s.on_member_up(id, inc, now));
    }
    if went_down {
        members_gone(inner, std::slice::from_ref(id));
    }
}

/// Stops waiting for, and pulling from, members no longer up.
fn members_gone(inner: &Arc<Inner>, gone: &[NodeId]) {
    if gone.is_empty() {
        return;
    }
    let now = tokio::time::Instant::now().into_std();
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

/// A member that joined or came back: the state catches it up on what it
/// missed (see `core/broadcast/state/neighbours.rs`).
fn catch_up(inner: &Arc<Inner>, id: &NodeId, kind: EventKind) {
    if !matches!(kind, EventKind::AliveAgain | EventKind::Joined) || !inner.peers.is_up(id) {
        return;
    }
    let now = tokio::time::Instant::now().into_std();
    let actions = inner.with_state(|s| s.on_member_back(id, kind == EventKind::AliveAgain, now));
    if !actions.is_empty() {
        debug!(peer = %id, "member back; sending a digest of what it missed");
    }
    exec::run(inner, actions);
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
