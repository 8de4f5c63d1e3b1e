//! The SWIM cycle as a state machine (foca's model): the runtime feeds it
//! [`Input`]s (a timer fired, a call came back) with the current time and an
//! RNG, and it answers with [`Action`]s (send this, wake me then). Timers are
//! values; nothing here waits, spawns or reads a clock, so a simulation drives
//! the very same logic as a node, under any clock it likes.
//!
//! One round: expired suspicions get a last probe, one member is probed, and
//! pending updates and suspicions are pushed. A probe is a direct ping; when
//! that fails or times out, `indirect_probes` helpers ping the target for this
//! node while it pings once more itself, until the round's window closes. The
//! last probe of an expired suspect that stays silent asks two peers for their
//! record of it (a refutation may have missed this node) before it is dead.
//! A check of a member that a peer claims down runs the same course, asking
//! the member for its own record (see `protocol/checks.rs`).

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use rand::Rng;

use super::{Membership, ProbeTarget};
use crate::now::Now;

mod io;
mod probes;
pub mod upkeep;
pub use io::{Action, Exchange, Input, ProbeId, Timer};

/// Shortest time the indirect probes and the second direct attempt get. TCP
/// resends a lost segment after 200 ms at the earliest (Linux's minimum RTO)
/// and again 400 ms later; a path given less than that fails on one lost
/// packet, and at 20% loss members were suspected twice a second per node.
pub const MIN_INDIRECT_WINDOW: Duration = Duration::from_millis(650);

/// Probes in flight at once, at most (the round's probe plus last checks of
/// expired suspects). An expired suspect beyond it waits for the next round
/// with its suspicion expired (it is checked then).
pub const MAX_PROBES_IN_FLIGHT: usize = 64;

/// Rounds after the last join or state change during which each round also
/// runs a push-pull.
pub const CHURN_ROUNDS: u32 = 5;

/// Peers asked for their record of an expired suspect that stayed silent.
const LAST_CHECK_ASKS: usize = 2;

/// Why a probe runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    /// The round's probe.
    Regular,
    /// The last probe of a suspect whose suspicion expired.
    LastCheck,
    /// A check of an alive member that a peer's record claims down, drained
    /// or moved: the member's own word decides (see `protocol/checks.rs`).
    Check,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Direct,
    Indirect {
        helpers: usize,
        nacks: usize,
        outstanding: usize,
    },
    /// A silent last check asking peers for their record.
    Asking {
        outstanding: usize,
    },
}

#[derive(Debug, Clone)]
struct Probe {
    target: ProbeTarget,
    purpose: Purpose,
    phase: Phase,
    started: Instant,
    round: Duration,
}

/// The cycle's own state: probes in flight and the round schedule.
#[derive(Debug, Default)]
pub struct Cycle {
    probes: BTreeMap<ProbeId, Probe>,
    next_id: ProbeId,
    next_round: Option<Instant>,
    last_sync: Option<Instant>,
    /// Churn push-pulls in the current anti-entropy interval, and when it began.
    syncs: (u32, Option<Instant>),
    /// The churn outlasted this interval's push-pulls: one more is owed once
    /// members stop changing.
    close_owed: bool,
    /// What runs beside the rounds (see [`upkeep`]).
    pub(in crate::membership) upkeep: upkeep::Upkeep,
}

impl Cycle {
    /// Probes in flight.
    pub fn in_flight(&self) -> usize {
        self.probes.len()
    }
}

impl Membership {
    /// Starts the cycle: the first round at a random point within one round,
    /// so nodes started together do not probe in lockstep; the upkeep's
    /// timers (see [`upkeep`]); the seeds held tried at once.
    pub fn start<R: Rng>(&mut self, now: Now, rng: &mut R) -> Vec<Action> {
        let jitter = self.config.gossip_interval.mul_f64(rng.random::<f64>());
        let at = now.instant + jitter;
        self.cycle.next_round = Some(at);
        let mut out = vec![Action::SetTimer {
            at,
            timer: Timer::Round,
        }];
        self.start_upkeep(now, rng, &mut out);
        out
    }

    /// Feeds one input to the cycle.
    pub fn handle<R: Rng>(&mut self, input: Input, now: Now, rng: &mut R) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Timer(Timer::Round) => self.round(now, rng, &mut out),
            Input::Timer(Timer::DirectTimeout(p)) => {
                if self.phase_of(p) == Some(Phase::Direct) {
                    self.go_indirect(p, now, rng, &mut out);
                }
            }
            Input::Timer(Timer::ProbeEnd(p)) => {
                if matches!(self.phase_of(p), Some(Phase::Indirect { .. })) {
                    self.silent(p, now, rng, &mut out);
                }
            }
            Input::Timer(Timer::AskEnd(p)) => {
                if matches!(self.phase_of(p), Some(Phase::Asking { .. })) {
                    self.settle(p, false, now);
                }
            }
            Input::Ping { probe, acked: true }
            | Input::Indirect {
                probe,
                ack: Some(true),
            } => {
                if matches!(
                    self.phase_of(probe),
                    Some(Phase::Direct | Phase::Indirect { .. })
                ) {
                    self.settle(probe, true, now);
                }
            }
            Input::Ping {
                probe,
                acked: false,
            } => match self.phase_of(probe) {
                Some(Phase::Direct) => self.go_indirect(probe, now, rng, &mut out),
                Some(Phase::Indirect { .. }) => self.one_silent(probe, false, now, rng, &mut out),
                _ => {}
            },
            Input::Indirect { probe, ack } => {
                if matches!(self.phase_of(probe), Some(Phase::Indirect { .. })) {
                    self.one_silent(probe, ack.is_some(), now, rng, &mut out);
                }
            }
            Input::Asked { probe } => {
                if let Some(p) = self.cycle.probes.get_mut(&probe)
                    && let Phase::Asking { outstanding } = &mut p.phase
                {
                    *outstanding = outstanding.saturating_sub(1);
                    if *outstanding == 0 {
                        self.settle(probe, false, now);
                    }
                }
            }
            Input::Timer(
                t @ (Timer::Spread
                | Timer::AntiEntropy
                | Timer::Reconnect
                | Timer::Verify
                | Timer::Heal
                | Timer::Join(_)),
            ) => self.upkeep_timer(t, now, rng, &mut out),
            Input::Exchanged { why, ok } => self.exchanged(why, ok, now, &mut out),
            Input::Verified { id, answered } => self.verified(&id, answered, now),
            Input::Changed => {}
        }
        // Whatever the input, held claims whose check is due start now (a
        // probe slot may just have been freed), and so does the upkeep's
        // due work.
        self.start_checks(now, &mut out);
        self.upkeep(now, rng, &mut out);
        out
    }

    /// Probes in flight, for metrics.
    pub fn probes_in_flight(&self) -> usize {
        self.cycle.in_flight()
    }

    fn phase_of(&self, p: ProbeId) -> Option<Phase> {
        self.cycle.probes.get(&p).map(|p| p.phase)
    }

    fn round<R: Rng>(&mut self, now: Now, rng: &mut R, out: &mut Vec<Action>) {
        let interval = self.probe_interval();
        // Anchored to the schedule, but never catching up on missed rounds.
        let mut next = self.cycle.next_round.unwrap_or(now.instant) + interval;
        if next <= now.instant {
            next = now.instant + interval;
        }
        self.cycle.next_round = Some(next);
        out.push(Action::SetTimer {
            at: next,
            timer: Timer::Round,
        });
        for t in self.tick(now) {
            self.start_probe(t, Purpose::LastCheck, interval, now, out);
        }
        if let Some(t) = self.next_probe(rng) {
            self.start_probe(t, Purpose::Regular, interval, now, out);
        }
        if self.has_pending_updates() {
            for to in self.gossip_targets(rng) {
                let updates = self.piggyback(Some(&to.id));
                if !updates.is_empty() {
                    out.push(Action::Gossip {
                        to,
                        updates,
                        timeout: interval,
                    });
                }
            }
        }
        // Tell every suspect directly, so it can refute within the round.
        for (to, r) in self.suspects() {
            out.push(Action::Gossip {
                to,
                updates: vec![r],
                timeout: interval,
            });
        }
        if self.sync_due(now, interval)
            && let Some(to) = self.gossip_targets(rng).into_iter().next()
        {
            self.cycle.last_sync = Some(now.instant);
            self.cycle.syncs.0 += 1;
            out.push(Action::Sync { to });
        }
    }

    /// Whether this round runs a push-pull: while members join or change state
    /// (within [`CHURN_ROUNDS`] rounds of the last change), once a round.
    /// Gossip carries each change to almost every node within a few rounds,
    /// but leaves a tail (a node that missed a join hears of it only by
    /// chance, or at the periodic push-pull tens of rounds later); a push-pull
    /// with a random member each round closes it in O(log N) rounds. Idle, it
    /// costs nothing: a cluster without changes has only the periodic one. At
    /// most [`CHURN_ROUNDS`] such push-pulls run per anti-entropy interval, so
    /// a member that changes its record every round (a flapping or hostile
    /// node) cannot keep every node exchanging digests every round.
    ///
    /// A churn that outlasts those push-pulls (a mass join of thousands) gets
    /// one more once it is over: the early ones met peers as incomplete as
    /// this node, and a node still missing a member heard of no change to
    /// start another, so it waited for the periodic push-pull (10,000
    /// simulated nodes: idle from round 10, complete only at round 100, when
    /// the last node's first periodic push-pull came due). At most
    /// `CHURN_ROUNDS + 1` per interval.
    fn sync_due(&mut self, now: Now, interval: Duration) -> bool {
        let window = self.config.anti_entropy_interval.max(interval);
        if self
            .cycle
            .syncs
            .1
            .is_none_or(|t| now.instant.saturating_duration_since(t) >= window)
        {
            self.cycle.syncs = (0, Some(now.instant));
        }
        let churning = self
            .last_change
            .is_some_and(|t| now.instant.saturating_duration_since(t) < interval * CHURN_ROUNDS);
        let spaced = self
            .cycle
            .last_sync
            .is_none_or(|t| now.instant.saturating_duration_since(t) >= interval);
        if churning {
            if self.cycle.syncs.0 >= CHURN_ROUNDS {
                self.cycle.close_owed = true;
                return false;
            }
            return spaced;
        }
        if self.cycle.close_owed && self.cycle.syncs.0 <= CHURN_ROUNDS && spaced {
            self.cycle.close_owed = false;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests;
