//! Nodes heard of only second-hand. A record about a node this one does not know
//! is not listed on one peer's word: it waits here until the node itself answers
//! a probe at the record's address, or until a second member host vouches for it
//! (introduces it too), so a record one liar made up never counts as alive, never
//! reaches `gsp peers` or queries, and never loads the failure detector.
//!
//! Vouching is what keeps a mass join from costing N^2 probes: a node hears of
//! each new member from several peers within a round or two (gossip and
//! push-pull), while verification probes run 16 at a time.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    time::{Duration, Instant},
};

use super::{ProbeTarget, record::SharedRecord};
use crate::ids::NodeId;

/// Who introduced unknown nodes (a caller's certificate identity or address)
/// and how many members it stands for (an address hosting several members, as
/// in a lab on one machine, may introduce that many times as many).
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The caller's key.
    pub key: &'a str,
    /// Members listed at it (at least 1 counts).
    pub members: usize,
    /// A peer this node called (a push-pull reply): it may vouch, but what it
    /// lists is not charged to it (a seed answers a joiner with its whole table).
    pub called: bool,
}

impl<'a> Source<'a> {
    /// A caller that pushed records to this node: charged and may vouch.
    pub fn caller(key: &'a str, members: usize) -> Self {
        Self {
            key,
            members,
            called: false,
        }
    }

    /// A peer this node called, answering (see [`Self::called`]).
    pub fn called(key: &'a str, members: usize) -> Self {
        Self {
            key,
            members,
            called: true,
        }
    }
}

/// What offering a record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// Queued for verification (new, or a newer record of a waiting node).
    Queued,
    /// Not newer than the record already waiting.
    Stale,
    /// The set is full; the record was dropped (counted by the caller).
    Full,
    /// Its source already has as many nodes waiting as one source may; the
    /// record was dropped (counted by the caller).
    SourceFull,
    /// A second member host introduced a waiting node: it may be listed
    /// without a probe (the caller takes it with [`Candidates::take`]).
    Vouched,
    /// A second member host introduced a waiting node, but the introducer or
    /// the voucher has had its share of vouched listings in this window: the
    /// node stays waiting and must answer a probe (counted by the caller).
    VouchLimited,
}

/// Who introduced a waiting node.
#[derive(Debug, Clone)]
struct Introducer {
    /// The caller's certificate identity or address, or the peer a push-pull
    /// reply came from.
    key: Box<str>,
    /// Counted against its share (a caller, not a called peer).
    charged: bool,
    /// It hosts listed members, so another such source can vouch.
    member: bool,
    /// Members listed at it when it introduced the node.
    members: usize,
}

#[derive(Debug, Clone)]
struct Candidate {
    record: SharedRecord,
    /// Who introduced it: the caller's certificate identity or address, or
    /// the peer a push-pull reply came from.
    introducer: Option<Introducer>,
    since: Instant,
    /// A verification probe is in flight.
    probing: bool,
    /// Probes it did not answer so far.
    misses: u32,
    /// Not probed again before this, after a miss.
    retry_at: Instant,
    /// Learnt in a push-pull: not news to spread once admitted.
    quiet: bool,
}

/// Most a source's share is multiplied by the members listed at it: a lab of
/// many nodes on one machine joins at several times one host's pace, but no
/// host takes more than this many shares of the waiting set (and members at a
/// host are one per host:port, each a socket that answers as itself; see
/// [`super::Membership::admit`]).
pub const MAX_SOURCE_WEIGHT: usize = 4;

/// Verification probes a waiting node may miss before it is forgotten: a
/// real node busy or briefly unreachable during a mass join gets another
/// chance; a made-up one is gone after a few probes.
pub const MAX_MISSES: u32 = 3;

/// A bounded set of nodes waiting to be verified.
#[derive(Debug)]
pub struct Candidates {
    entries: BTreeMap<NodeId, Candidate>,
    /// Nodes not being probed, by when they may be (first come, first
    /// probed): finding the next costs O(log n), where a scan of the set on
    /// every event cost O(n) during a mass join.
    ready: BTreeSet<(Instant, NodeId)>,
    /// Nodes waiting per source.
    per_source: HashMap<String, usize>,
    /// Vouched listings charged per source in the current window: a vouched
    /// listing frees its introducer's waiting slot, so without this two
    /// colluding member hosts could list made-up nodes without end, one
    /// share at a time. Cleared when the window ends; bounded by the sources
    /// that vouched or introduced in one window.
    vouched: HashMap<Box<str>, usize>,
    /// When the current vouching window ends.
    vouch_window_end: Option<Instant>,
    capacity: usize,
    per_source_cap: usize,
    ttl: Duration,
}

impl Candidates {
    /// At most `capacity` waiting nodes, `per_source_cap` of them introduced
    /// by one source, each forgotten `ttl` after it was first offered if its
    /// verification never concluded.
    pub fn new(capacity: usize, per_source_cap: usize, ttl: Duration) -> Self {
        Self {
            entries: BTreeMap::new(),
            ready: BTreeSet::new(),
            per_source: HashMap::new(),
            vouched: HashMap::new(),
            vouch_window_end: None,
            capacity,
            per_source_cap,
            ttl,
        }
    }

    /// Offers a record of an unknown node, introduced by `source` (`None`:
    /// not charged to anyone).
    pub fn offer(
        &mut self,
        record: impl Into<SharedRecord>,
        source: Option<Source<'_>>,
        now: Instant,
    ) -> Offered {
        self.offer_as(record.into(), source, now, false)
    }

    /// [`Self::offer`], saying whether the record came in a push-pull
    /// (`quiet`: the node is not news to spread once admitted).
    ///
    /// A waiting node offered again by a source other than the one that
    /// introduced it, both hosting listed members, is [`Offered::Vouched`].
    /// Sources that host no listed member (strangers, and callers known only
    /// by the id they claim) never vouch, so a liar needs two member hosts.
    ///
    /// Vouched listings are charged, per TTL window, to the introducer when
    /// it was charged for the node and to the voucher when it is a caller;
    /// each may have its per-source share of them per window
    /// ([`Offered::VouchLimited`] beyond). Peers this node called are not
    /// charged: how often they answer is this node's own schedule.
    pub fn offer_as(
        &mut self,
        record: SharedRecord,
        source: Option<Source<'_>>,
        now: Instant,
        quiet: bool,
    ) -> Offered {
        if let Some(c) = self.entries.get_mut(&record.id) {
            let newer = record.supersedes(&c.record);
            if newer {
                c.record = record;
                c.quiet &= quiet;
            }
            if let Some(src) = source
                && src.members > 0
                && let Some(intro) = c
                    .introducer
                    .as_ref()
                    .filter(|i| i.member && *i.key != *src.key)
            {
                let intro = intro.clone();
                return self.vouch(&intro, src, now);
            }
            return if newer {
                Offered::Queued
            } else {
                Offered::Stale
            };
        }
        if self.entries.len() >= self.capacity {
            return Offered::Full;
        }
        if let Some(src) = source.filter(|s| !s.called) {
            let cap = self
                .per_source_cap
                .saturating_mul(src.members.clamp(1, MAX_SOURCE_WEIGHT));
            let n = self.per_source.entry(src.key.to_owned()).or_default();
            if *n >= cap {
                return Offered::SourceFull;
            }
            *n += 1;
        }
        self.ready.insert((now, record.id.clone()));
        self.entries.insert(
            record.id.clone(),
            Candidate {
                record,
                introducer: source.map(|s| Introducer {
                    key: s.key.into(),
                    charged: !s.called,
                    member: s.members > 0,
                    members: s.members,
                }),
                since: now,
                probing: false,
                misses: 0,
                retry_at: now,
                quiet,
            },
        );
        Offered::Queued
    }

    /// Grants a vouch if neither charged party has used its share of
    /// vouched listings in the current window, and charges them.
    fn vouch(&mut self, intro: &Introducer, voucher: Source<'_>, now: Instant) -> Offered {
        if self.vouch_window_end.is_none_or(|end| now >= end) {
            self.vouched.clear();
            self.vouch_window_end = Some(now + self.ttl);
        }
        let mut charged: Vec<(&str, usize)> = Vec::with_capacity(2);
        if intro.charged {
            charged.push((&intro.key, intro.members));
        }
        if !voucher.called {
            charged.push((voucher.key, voucher.members));
        }
        let share = |members: usize| {
            self.per_source_cap
                .saturating_mul(members.clamp(1, MAX_SOURCE_WEIGHT))
        };
        if charged
            .iter()
            .any(|(key, members)| self.vouched.get(*key).copied().unwrap_or(0) >= share(*members))
        {
            return Offered::VouchLimited;
        }
        for (key, _) in charged {
            *self.vouched.entry(key.into()).or_default() += 1;
        }
        Offered::Vouched
    }

    fn release(&mut self, c: &Candidate) {
        if let Some(src) = c.introducer.as_ref().filter(|i| i.charged)
            && let Some(n) = self.per_source.get_mut(&*src.key)
        {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&*src.key);
            }
        }
    }

    /// Up to `max` waiting nodes not yet being probed, longest waiting
    /// first; they are marked as being probed until [`Self::remove`] or
    /// [`Self::missed`] is called for them.
    pub fn take_unprobed(&mut self, max: usize, now: Instant) -> Vec<ProbeTarget> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some((at, id)) = self.ready.first().cloned() else {
                break;
            };
            if at > now {
                break;
            }
            self.ready.pop_first();
            if let Some(c) = self.entries.get_mut(&id) {
                c.probing = true;
                out.push(ProbeTarget {
                    id,
                    address: c.record.address.clone(),
                });
            }
        }
        out
    }

    /// Whether some waiting node is not being probed yet.
    pub fn has_unprobed(&self, now: Instant) -> bool {
        self.ready.first().is_some_and(|(at, _)| *at <= now)
    }

    /// `id` did not answer its probe: it may be probed again from `retry_at`,
    /// until it has missed [`MAX_MISSES`]; returns whether it was forgotten.
    pub fn missed(&mut self, id: &NodeId, retry_at: Instant) -> bool {
        let Some(c) = self.entries.get_mut(id) else {
            return false;
        };
        if !c.probing {
            self.ready.remove(&(c.retry_at, id.clone()));
        }
        c.probing = false;
        c.misses += 1;
        c.retry_at = retry_at;
        if c.misses < MAX_MISSES {
            self.ready.insert((retry_at, id.clone()));
            return false;
        }
        self.remove(id);
        true
    }

    /// Takes `id` out of the set, with its newest record.
    pub fn remove(&mut self, id: &NodeId) -> Option<SharedRecord> {
        self.take(id).map(|(r, _)| r)
    }

    /// Removes a waiting node: its record, and whether it came in a push-pull.
    pub fn take(&mut self, id: &NodeId) -> Option<(SharedRecord, bool)> {
        let c = self.entries.remove(id)?;
        if !c.probing {
            self.ready.remove(&(c.retry_at, id.clone()));
        }
        self.release(&c);
        Some((c.record, c.quiet))
    }

    /// Forgets nodes waiting longer than the TTL; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let ttl = self.ttl;
        let expired: Vec<NodeId> = self
            .entries
            .iter()
            .filter(|(_, c)| now.saturating_duration_since(c.since) >= ttl)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.remove(id);
        }
        expired.len()
    }

    /// Nodes waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests;
