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
    core::{broadcast::state::Control, ids::NodeId, membership::events::EventKind},
    runtime::membership::MembershipAgent,
};

/// Digests cover messages received this long ago at least.
const MIN_DIGEST_WINDOW: Duration = Duration::from_secs(10);

/// The up members (alive or suspect) other than this node, and their addresses.
#[derive(Default)]
pub(super) struct PeerCache {
    peers: Mutex<HashMap<NodeId, String>>,
}

impl PeerCache {
    /// Rereads the membership table; returns the members no longer up.
    pub(super) fn refresh(&self, agent: &MembershipAgent) -> Vec<NodeId> {
        let local = agent.local_id().clone();
        let fresh: HashMap<NodeId, String> = agent.with_state(|s| {
            s.records()
                .filter(|r| r.state.is_up() && r.id != local)
                .map(|r| (r.id.clone(), r.address.clone()))
                .collect()
        });
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let gone = peers
            .keys()
            .filter(|id| !fresh.contains_key(*id))
            .cloned()
            .collect();
        *peers = fresh;
        gone
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
    inner.tasks.spawn(timers(Arc::clone(inner)));
    inner.tasks.spawn(digests(Arc::clone(inner)));
    inner.tasks.spawn(membership(Arc::clone(inner), events));
}

fn refresh(inner: &Arc<Inner>) {
    let gone = inner.peers.refresh(&inner.agent);
    if gone.is_empty() {
        return;
    }
    let now = tokio::time::Instant::now().into_std();
    let actions = inner.with_state(|s| {
        gone.iter()
            .flat_map(|id| s.on_member_gone(id, now))
            .collect()
    });
    for id in &gone {
        inner.transport.forget(id);
    }
    exec::run(inner, actions);
}

async fn timers(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(inner.config.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = inner.shutdown.cancelled() => return,
        }
        let now = tokio::time::Instant::now().into_std();
        let actions = inner.with_state(|s| s.tick(now));
        exec::run(&inner, actions);
    }
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

/// Tells `to` which messages received within `window` this node holds.
fn send_digest(inner: &Arc<Inner>, to: &NodeId, window: Duration) {
    let now = tokio::time::Instant::now().into_std();
    let since = now.checked_sub(window).unwrap_or(now);
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
            want: Vec::new(),
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
                refresh(&inner);
                // A member back from a partition (or a restart) missed what was
                // broadcast meanwhile: tell it everything still held.
                if e.kind == EventKind::AliveAgain {
                    debug!(peer = %e.id, "member alive again; sending a full digest");
                    send_digest(&inner, &e.id, inner.config.broadcast.store_ttl);
                }
            }
            Err(RecvError::Lagged(_)) => refresh(&inner),
            Err(RecvError::Closed) => return,
        }
    }
}
