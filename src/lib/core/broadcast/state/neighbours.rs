//! What this node tells its neighbours on its own schedule, as actions of
//! the state that the runtime and the swarm simulator carry out alike:
//!
//! - **Announcements**, batched: what a relay announces waits for the next
//!   [`BroadcastState::tick`] and leaves as one control frame per peer, so a
//!   node relaying a stream of small messages sends a frame per peer per
//!   tick, not one per message. At most [`MAX_CONTROL_ENTRIES`] wait per
//!   peer; more are dropped (counted): the peer's digests and other
//!   announcers cover them.
//! - **Digests**: every `digest_interval`, one random up peer is told which
//!   messages arrived here in the last five intervals (at least
//!   [`MIN_DIGEST_WINDOW`]), so a node that missed one pulls it.
//! - **Catching up**: a member back from a partition or a leave missed what
//!   was broadcast meanwhile; it is told everything held since
//!   [`GONE_MARGIN`] before it went away (all that is held when it was only
//!   suspected), but nothing from before this incarnation of it was first
//!   seen here: broadcasts are not replayed to a newcomer, nor to a node that
//!   restarted (and so forgot what it delivered).

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use rand::{Rng, seq::IndexedRandom as _};

use super::{Action, Announce, BroadcastState};
use crate::ids::NodeId;

/// Entries one control frame carries at most (announcements, wants and
/// pieces wanted together); the wire refuses larger frames.
pub const MAX_CONTROL_ENTRIES: usize = 4096;
/// Members remembered as gone (to catch them up if they return), at most;
/// the one gone longest is forgotten first.
pub const MAX_GONE: usize = 4096;
/// Digests cover messages received this long ago at least.
pub const MIN_DIGEST_WINDOW: Duration = Duration::from_secs(10);
/// Digests to a returning member start this long before it went away.
pub const GONE_MARGIN: Duration = Duration::from_secs(10);

/// Neighbours as this state sees them.
#[derive(Debug, Default)]
pub(super) struct Neighbours {
    /// Announcements waiting for the next tick, by peer.
    announces: BTreeMap<NodeId, Vec<Announce>>,
    /// Up members: their incarnation, and since when it is known up here.
    /// Kept while the member is up or remembered as gone.
    joined: BTreeMap<NodeId, (u64, Instant)>,
    /// Members that went down recently, and when.
    gone: BTreeMap<NodeId, Instant>,
    next_digest: Option<Instant>,
}

impl Neighbours {
    /// Whether announcements wait for the tick.
    pub(super) fn waiting(&self) -> bool {
        !self.announces.is_empty()
    }
}

impl BroadcastState {
    /// Queues an announcement for `to` until the next tick.
    pub(super) fn queue_announce(&mut self, to: NodeId, entry: Announce) {
        let q = self.neighbours.announces.entry(to).or_default();
        if q.len() >= MAX_CONTROL_ENTRIES {
            self.counters.announces_dropped += 1;
        } else {
            q.push(entry);
        }
    }

    /// Member `id` is up, in incarnation `incarnation`: a new one (a restart)
    /// starts over and is not caught up on what its previous one missed.
    pub fn on_member_up(&mut self, id: &NodeId, incarnation: u64, now: Instant) {
        let n = &mut self.neighbours;
        if n.joined
            .get(id)
            .is_none_or(|(known, _)| *known != incarnation)
        {
            n.joined.insert(id.clone(), (incarnation, now));
            n.gone.remove(id);
        }
    }

    /// Forgets members that are neither in `up` nor remembered as gone.
    pub fn retain_members(&mut self, up: &[NodeId]) {
        let n = &mut self.neighbours;
        let up: std::collections::BTreeSet<&NodeId> = up.iter().collect();
        n.joined
            .retain(|id, _| up.contains(id) || n.gone.contains_key(id));
    }

    /// Remembers that `id` went down at `now`, forgetting entries older than
    /// the store's TTL (and the oldest beyond [`MAX_GONE`]).
    pub(super) fn went_down(&mut self, id: &NodeId, now: Instant) {
        let keep = self.config.store_ttl;
        let n = &mut self.neighbours;
        n.gone
            .retain(|_, at| now.saturating_duration_since(*at) < keep);
        if n.gone.len() >= MAX_GONE
            && let Some(oldest) = n
                .gone
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(k, _)| k.clone())
        {
            n.gone.remove(&oldest);
        }
        n.gone.insert(id.clone(), now);
    }

    /// Member `id` joined or came back alive: if it went away recently (or
    /// was only suspected, `alive_again`), the digest of what it missed.
    pub fn on_member_back(&mut self, id: &NodeId, alive_again: bool, now: Instant) -> Vec<Action> {
        let store_ttl = self.config.store_ttl;
        let window = match self.neighbours.gone.remove(id) {
            Some(at) => now.saturating_duration_since(at) + GONE_MARGIN,
            None if alive_again => store_ttl,
            None => return Vec::new(),
        };
        self.digest_to(id, window.min(store_ttl), now)
            .into_iter()
            .collect()
    }

    /// The periodic digest, when due, to one of `peers` (the up members
    /// that take broadcasts) at random.
    pub fn digest_tick<R: Rng>(
        &mut self,
        peers: &[NodeId],
        now: Instant,
        rng: &mut R,
    ) -> Vec<Action> {
        let interval = self.config.digest_interval;
        let due = *self.neighbours.next_digest.get_or_insert(now + interval);
        if now < due {
            return Vec::new();
        }
        self.neighbours.next_digest = Some(now + interval);
        let window = MIN_DIGEST_WINDOW.max(interval * 5);
        peers
            .choose(rng)
            .cloned()
            .and_then(|to| self.digest_to(&to, window, now))
            .into_iter()
            .collect()
    }

    /// The announcements waiting for the tick, one action per peer.
    pub(super) fn flush_announces(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.neighbours.announces)
            .into_iter()
            .map(|(to, entries)| Action::Announce { to, entries })
            .collect()
    }

    /// Tells `to` which messages received within `window` this node holds,
    /// and never one received before `to` (this incarnation of it) was known
    /// here.
    fn digest_to(&self, to: &NodeId, window: Duration, now: Instant) -> Option<Action> {
        let (_, joined) = self.neighbours.joined.get(to)?;
        let since = now.checked_sub(window).unwrap_or(now).max(*joined);
        let entries = self.digest(since);
        (!entries.is_empty()).then(|| Action::Announce {
            to: to.clone(),
            entries,
        })
    }
}

#[cfg(test)]
mod tests;
