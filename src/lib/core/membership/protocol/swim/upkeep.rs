//! What runs beside the probe rounds, as timers, inputs and actions of the
//! same cycle: pushing urgent changes, the periodic push-pull, reconnecting
//! to dead members, verifying nodes heard of second-hand, and joining through
//! seeds with backoff. A node's runtime and the membership simulator each
//! carry out the actions with one executor, so the policy a simulation
//! exercises is the policy a node runs.
//!
//! - **Spread.** State changes (joins, suspicions and their confirmations,
//!   deaths, leaves, refutations) go to `fanout` peers as soon as they are
//!   learnt instead of at the next round. Changes arriving within a short
//!   window (a twentieth of a round, 1-20 ms) go out together, and batches
//!   leave at most twice a round: during a storm (a mass join, a partition
//!   healing) every node learns changes all the time, and a batch per window
//!   would multiply the cluster's message rate, where two a round keep it
//!   within what round gossip sends. A change after a quiet spell leaves
//!   after one window. At most `max_queued_updates` wait; the oldest go
//!   first (the round's piggybacking still carries them).
//! - **Anti-entropy.** A push-pull with one random member every
//!   `anti_entropy_interval` (first at a random point within one more
//!   interval), when `periodic_anti_entropy` is on.
//! - **Reconnect.** Every `reconnect_interval`, one random dead member, and a
//!   seed at whose address no up member is known, are tried with a
//!   push-pull. When one answers, or a member comes back alive on its own, a
//!   partition may have healed: up to [`RETRY_DEAD_AT_ONCE`] dead members are
//!   tried at once, at most once a round however many come back.
//! - **Verification.** Nodes heard of second-hand are probed at their
//!   record's address, at most [`MAX_VERIFYING`] at a time, so a flood of
//!   made-up records costs a bounded probe rate; those waiting for a retry
//!   are looked at again a round later.
//! - **Joins.** Each seed is tried at once, then after a wait doubling from
//!   one round (at least 100 ms) up to `join_backoff_max`, each wait drawn
//!   between half and one and a half times the backoff so nodes restarted
//!   together do not retry in lockstep, until one exchange completes. A peer
//!   remembered from an earlier run is tried [`REJOIN_ATTEMPTS`] times the
//!   same way, and no more once this node knows another member.

use std::time::{Duration, Instant};

use rand::{Rng, seq::IndexedRandom as _};

use super::{Action, Exchange, Timer};
use crate::{
    ids::NodeId,
    membership::{Membership, queue::coalesce, record::SharedRecord},
    now::Now,
};

/// Verification probes of unknown nodes in flight at once; more wait their turn.
pub const MAX_VERIFYING: usize = 16;
/// Dead members tried at once after a sign that a partition healed.
pub const RETRY_DEAD_AT_ONCE: usize = 16;
/// Most addresses kept as seeds (including earlier-run peers); more are
/// ignored (iarnet's peer-list exchange adds the caller's list).
pub const MAX_SEEDS: usize = 256;
/// Attempts on a peer remembered from an earlier run.
pub const REJOIN_ATTEMPTS: u32 = 4;
/// Least time a verification probe waits for its answer.
const MIN_VERIFY_TIMEOUT: Duration = Duration::from_secs(1);

/// The state of what runs beside the rounds.
#[derive(Debug, Default)]
pub(in crate::membership) struct Upkeep {
    /// Urgent changes waiting for the next batch.
    pending: Vec<SharedRecord>,
    /// When the next batch leaves, while one is due.
    spread_at: Option<Instant>,
    /// A batch may not leave before this (two a round at most).
    next_batch: Option<Instant>,
    verifying: usize,
    verify_timer: bool,
    heal: Heal,
    seeds: Vec<Seed>,
    /// Seeds added that have not been tried yet.
    seeds_new: bool,
    /// The cycle started: timers run and new seeds are tried.
    started: bool,
}

/// Following up signs that a partition healed.
#[derive(Debug, Default)]
struct Heal {
    /// A member came back, or a dead one answered: try the dead now.
    wanted: bool,
    /// Waiting for the round since the last retry to pass.
    timer: bool,
    last: Option<Instant>,
}

#[derive(Debug)]
struct Seed {
    address: String,
    /// A peer from an earlier run rather than a seed.
    rejoin: bool,
    attempts: u32,
    backoff: Duration,
    /// The wait after the attempt in flight, if it fails.
    retry_in: Duration,
    state: SeedState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SeedState {
    New,
    Trying,
    Waiting,
    Done,
}

impl Upkeep {
    /// A member came back alive: the dead may be reachable again.
    pub(in crate::membership) fn note_heal(&mut self) {
        self.heal.wanted = true;
    }
}

impl Membership {
    /// Adds addresses to join through: seeds (tried until one exchange
    /// completes) or, with `rejoin`, peers known in an earlier run (tried a
    /// few times while no other member is known). This node's own address,
    /// addresses already held and those beyond [`MAX_SEEDS`] are ignored.
    /// Returns the addresses added; they are tried from the next input on.
    pub fn add_seeds(
        &mut self,
        addrs: impl IntoIterator<Item = String>,
        rejoin: bool,
    ) -> Vec<String> {
        let own = self.local.address.clone();
        let u = &mut self.cycle.upkeep;
        let first = self.config.gossip_interval.max(Duration::from_millis(100));
        let mut added = Vec::new();
        for a in addrs {
            if a.is_empty()
                || a == own
                || u.seeds.len() >= MAX_SEEDS
                || u.seeds.iter().any(|s| s.address == a)
            {
                continue;
            }
            u.seeds.push(Seed {
                address: a.clone(),
                rejoin,
                attempts: 0,
                backoff: first,
                retry_in: first,
                state: SeedState::New,
            });
            added.push(a);
        }
        if !added.is_empty() {
            u.seeds_new = true;
        }
        added
    }

    /// Whether something waits for [`super::Input::Changed`]: claims due for
    /// a check, urgent changes, unknown nodes to verify with a slot free, a
    /// heal to follow up, or new seeds. The runtime asks after every change
    /// of the state and feeds the input when this says so.
    pub fn needs_upkeep(&self, now: Now) -> bool {
        let u = &self.cycle.upkeep;
        !self.urgent.is_empty()
            || self.has_claims_due(now)
            || (u.verifying < MAX_VERIFYING && self.has_unverified(now))
            || (u.started && ((u.heal.wanted && !u.heal.timer) || u.seeds_new))
    }

    /// Verification probes in flight.
    #[cfg(test)]
    pub(crate) fn verifying(&self) -> usize {
        self.cycle.upkeep.verifying
    }

    /// First timers of the upkeep, at the cycle's start.
    pub(super) fn start_upkeep<R: Rng>(&mut self, now: Now, rng: &mut R, out: &mut Vec<Action>) {
        self.cycle.upkeep.started = true;
        if self.config.periodic_anti_entropy {
            let period = self.config.anti_entropy_interval;
            out.push(Action::SetTimer {
                at: now.instant + period + period.mul_f64(rng.random::<f64>()),
                timer: Timer::AntiEntropy,
            });
        }
        out.push(Action::SetTimer {
            at: now.instant + self.config.reconnect_interval,
            timer: Timer::Reconnect,
        });
        self.upkeep(now, rng, out);
    }

    /// One of the upkeep's timers fired.
    pub(super) fn upkeep_timer<R: Rng>(
        &mut self,
        timer: Timer,
        now: Now,
        rng: &mut R,
        out: &mut Vec<Action>,
    ) {
        match timer {
            Timer::Spread => self.spread(now, rng, out),
            Timer::AntiEntropy => {
                out.push(Action::SetTimer {
                    at: now.instant + self.config.anti_entropy_interval,
                    timer: Timer::AntiEntropy,
                });
                if let Some(to) = self.gossip_targets(rng).into_iter().next() {
                    out.push(Action::Sync { to });
                }
            }
            Timer::Reconnect => {
                out.push(Action::SetTimer {
                    at: now.instant + self.config.reconnect_interval,
                    timer: Timer::Reconnect,
                });
                if let Some(t) = self.random_dead(rng) {
                    out.push(Action::Exchange {
                        to: t.address,
                        why: Exchange::Reconnect,
                    });
                }
                if let Some(to) = self.absent_seed(rng) {
                    out.push(Action::Exchange {
                        to,
                        why: Exchange::AbsentSeed,
                    });
                }
            }
            Timer::Verify => self.cycle.upkeep.verify_timer = false,
            Timer::Heal => self.cycle.upkeep.heal.timer = false,
            Timer::Join(k) => {
                let waiting = self
                    .cycle
                    .upkeep
                    .seeds
                    .get(k as usize)
                    .is_some_and(|s| s.state == SeedState::Waiting);
                if waiting {
                    self.attempt(k as usize, rng, out);
                }
            }
            Timer::Round | Timer::DirectTimeout(_) | Timer::ProbeEnd(_) | Timer::AskEnd(_) => {}
        }
    }

    /// A push-pull of the upkeep ended.
    pub(super) fn exchanged(&mut self, why: Exchange, ok: bool, now: Now, out: &mut Vec<Action>) {
        match why {
            Exchange::Join { seed, .. } | Exchange::Rejoin { seed, .. } => {
                let u = &mut self.cycle.upkeep;
                let max = self.config.join_backoff_max;
                let Some(s) = u.seeds.get_mut(seed as usize) else {
                    return;
                };
                if s.state != SeedState::Trying {
                    return;
                }
                if ok || (s.rejoin && s.attempts >= REJOIN_ATTEMPTS) {
                    s.state = SeedState::Done;
                    return;
                }
                s.state = SeedState::Waiting;
                s.backoff = (s.backoff * 2).min(max);
                out.push(Action::SetTimer {
                    at: now.instant + s.retry_in,
                    timer: Timer::Join(seed),
                });
            }
            Exchange::Reconnect | Exchange::AbsentSeed if ok => {
                self.cycle.upkeep.heal.wanted = true;
            }
            Exchange::Reconnect | Exchange::AbsentSeed | Exchange::Retry => {}
        }
    }

    /// A verification probe ended.
    pub(super) fn verified(&mut self, id: &NodeId, answered: bool, now: Now) {
        let u = &mut self.cycle.upkeep;
        u.verifying = u.verifying.saturating_sub(1);
        if answered {
            self.candidate_answered(id, now);
        } else {
            self.candidate_silent(id, now);
        }
    }

    /// What is due after any input: urgent changes batched, a heal followed
    /// up, verifications started, new seeds tried.
    pub(super) fn upkeep<R: Rng>(&mut self, now: Now, rng: &mut R, out: &mut Vec<Action>) {
        self.queue_urgent(now, out);
        if !self.cycle.upkeep.started {
            return;
        }
        self.follow_heal(now, rng, out);
        self.start_verifications(now, out);
        if std::mem::take(&mut self.cycle.upkeep.seeds_new) {
            for k in 0..self.cycle.upkeep.seeds.len() {
                if self.cycle.upkeep.seeds[k].state == SeedState::New {
                    self.attempt(k, rng, out);
                }
            }
        }
    }

    /// Moves the core's urgent changes to the batch and sets its timer.
    fn queue_urgent(&mut self, now: Now, out: &mut Vec<Action>) {
        let urgent = self.take_urgent();
        let cap = self.config.max_queued_updates;
        let (window, _) = self.spread_pace();
        let u = &mut self.cycle.upkeep;
        u.pending.extend(urgent);
        if u.pending.len() > cap {
            let excess = u.pending.len() - cap;
            u.pending.drain(..excess);
        }
        if u.started && !u.pending.is_empty() && u.spread_at.is_none() {
            let at = (now.instant + window).max(u.next_batch.unwrap_or(now.instant));
            u.spread_at = Some(at);
            out.push(Action::SetTimer {
                at,
                timer: Timer::Spread,
            });
        }
    }

    /// The batching window and the least spacing between batches.
    fn spread_pace(&self) -> (Duration, Duration) {
        let interval = self.config.gossip_interval;
        let window = (interval / 20).clamp(Duration::from_millis(1), Duration::from_millis(20));
        (window, (interval / 2).max(window))
    }

    fn spread<R: Rng>(&mut self, now: Now, rng: &mut R, out: &mut Vec<Action>) {
        let (_, spacing) = self.spread_pace();
        let u = &mut self.cycle.upkeep;
        u.spread_at = None;
        u.next_batch = Some(now.instant + spacing);
        let records = coalesce(std::mem::take(&mut u.pending));
        if records.is_empty() {
            return;
        }
        let timeout = self.config.gossip_interval;
        for to in self.gossip_targets(rng) {
            out.push(Action::Gossip {
                to,
                updates: records.clone(),
                timeout,
            });
        }
    }

    fn follow_heal<R: Rng>(&mut self, now: Now, rng: &mut R, out: &mut Vec<Action>) {
        let round = self.config.gossip_interval;
        let h = &mut self.cycle.upkeep.heal;
        if !h.wanted || h.timer {
            return;
        }
        if let Some(last) = h.last
            && now.instant < last + round
        {
            h.timer = true;
            out.push(Action::SetTimer {
                at: last + round,
                timer: Timer::Heal,
            });
            return;
        }
        h.wanted = false;
        h.last = Some(now.instant);
        for t in self.dead_sample(RETRY_DEAD_AT_ONCE, rng) {
            out.push(Action::Exchange {
                to: t.address,
                why: Exchange::Retry,
            });
        }
    }

    fn start_verifications(&mut self, now: Now, out: &mut Vec<Action>) {
        let free = MAX_VERIFYING.saturating_sub(self.cycle.upkeep.verifying);
        if free > 0 && self.has_unverified(now) {
            let timeout = (self.probe_timeout() * 5).max(MIN_VERIFY_TIMEOUT);
            for target in self.take_unverified(free, now) {
                self.cycle.upkeep.verifying += 1;
                let updates = self.piggyback(Some(&target.id));
                out.push(Action::Verify {
                    target,
                    updates,
                    timeout,
                });
            }
        }
        // Nodes waiting for a retry are looked at a round later.
        if !self.cycle.upkeep.verify_timer && self.unverified_count() > 0 {
            self.cycle.upkeep.verify_timer = true;
            out.push(Action::SetTimer {
                at: now.instant + self.config.gossip_interval,
                timer: Timer::Verify,
            });
        }
    }

    /// The next attempt on seed `k`, unless it is an earlier-run peer and
    /// another member is known by now.
    fn attempt<R: Rng>(&mut self, k: usize, rng: &mut R, out: &mut Vec<Action>) {
        let others = self.up_count() > 1;
        let Some(s) = self.cycle.upkeep.seeds.get_mut(k) else {
            return;
        };
        if s.rejoin && others {
            s.state = SeedState::Done;
            return;
        }
        s.attempts = s.attempts.saturating_add(1);
        s.retry_in = s.backoff / 2 + s.backoff.mul_f64(rng.random::<f64>());
        s.state = SeedState::Trying;
        let seed = u32::try_from(k).unwrap_or(u32::MAX);
        let why = if s.rejoin {
            Exchange::Rejoin {
                seed,
                attempt: s.attempts,
            }
        } else {
            Exchange::Join {
                seed,
                attempt: s.attempts,
                retry_in: s.retry_in,
            }
        };
        out.push(Action::Exchange {
            to: s.address.clone(),
            why,
        });
    }

    /// A random seed at whose address no up member is known.
    fn absent_seed<R: Rng>(&self, rng: &mut R) -> Option<String> {
        let up: std::collections::HashSet<&str> = self
            .records()
            .filter(|r| r.state.is_up())
            .map(|r| r.address.as_str())
            .collect();
        let absent: Vec<&Seed> = self
            .cycle
            .upkeep
            .seeds
            .iter()
            .filter(|s| !s.rejoin && !up.contains(s.address.as_str()))
            .collect();
        absent.choose(rng).map(|s| s.address.clone())
    }
}

#[cfg(test)]
mod tests;
