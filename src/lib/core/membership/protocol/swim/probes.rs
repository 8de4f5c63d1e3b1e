//! One probe's course through the SWIM cycle: the direct ping, the indirect
//! window with its helpers, the last check's questions to peers, and the
//! verdict.

use std::time::Duration;

use rand::Rng;

use super::{
    Action, LAST_CHECK_ASKS, MAX_PROBES_IN_FLIGHT, MIN_INDIRECT_WINDOW, Phase, Probe, ProbeId,
    Purpose, Timer,
};
use crate::{
    membership::{Membership, ProbeTarget},
    now::Now,
};

impl Membership {
    /// Starts a probe; returns false when [`MAX_PROBES_IN_FLIGHT`] are
    /// running already (it is not started).
    pub(in crate::membership::protocol) fn start_probe(
        &mut self,
        target: ProbeTarget,
        purpose: Purpose,
        round: Duration,
        now: Now,
        out: &mut Vec<Action>,
    ) -> bool {
        if self.cycle.probes.len() >= MAX_PROBES_IN_FLIGHT {
            if purpose == Purpose::LastCheck {
                // Checked at a later round: its suspicion stays expired.
                self.expired_suspect_answered(&target.id, now);
            }
            return false;
        }
        self.cycle.next_id += 1;
        let id = self.cycle.next_id;
        let timeout = self.probe_timeout();
        let updates = self.piggyback(Some(&target.id));
        out.push(Action::Ping {
            probe: id,
            target: target.clone(),
            timeout,
            updates,
            want_record: purpose == Purpose::Check,
        });
        out.push(Action::SetTimer {
            at: now.instant + timeout,
            timer: Timer::DirectTimeout(id),
        });
        self.cycle.probes.insert(
            id,
            Probe {
                target,
                purpose,
                phase: Phase::Direct,
                started: now.instant,
                round,
            },
        );
        true
    }

    pub(super) fn go_indirect<R: Rng>(
        &mut self,
        p: ProbeId,
        now: Now,
        rng: &mut R,
        out: &mut Vec<Action>,
    ) {
        let Some(probe) = self.cycle.probes.get(&p) else {
            return;
        };
        let (target, started, round) = (probe.target.clone(), probe.started, probe.round);
        let want_record = probe.purpose == Purpose::Check;
        let window = round
            .saturating_sub(now.instant.saturating_duration_since(started))
            .max(self.probe_timeout())
            .max(MIN_INDIRECT_WINDOW);
        let helpers = self.helpers(&target.id, self.config.indirect_probes, rng);
        for helper in &helpers {
            let updates = self.piggyback(Some(&helper.id));
            out.push(Action::PingReq {
                probe: p,
                helper: helper.clone(),
                target: target.clone(),
                helper_timeout: window.mul_f64(0.8),
                timeout: window,
                updates,
            });
        }
        // A second direct attempt alongside the helpers (memberlist's fallback probe).
        let updates = self.piggyback(Some(&target.id));
        out.push(Action::Ping {
            probe: p,
            target,
            timeout: window,
            updates,
            want_record,
        });
        out.push(Action::SetTimer {
            at: now.instant + window,
            timer: Timer::ProbeEnd(p),
        });
        if let Some(probe) = self.cycle.probes.get_mut(&p) {
            probe.phase = Phase::Indirect {
                helpers: helpers.len(),
                nacks: 0,
                outstanding: helpers.len() + 1,
            };
        }
    }

    /// One of the indirect window's attempts ended without an ack (`nack`:
    /// a helper answered that it could not reach the target).
    pub(super) fn one_silent<R: Rng>(
        &mut self,
        p: ProbeId,
        nack: bool,
        now: Now,
        rng: &mut R,
        out: &mut Vec<Action>,
    ) {
        let Some(probe) = self.cycle.probes.get_mut(&p) else {
            return;
        };
        if let Phase::Indirect {
            nacks, outstanding, ..
        } = &mut probe.phase
        {
            *nacks += usize::from(nack);
            *outstanding = outstanding.saturating_sub(1);
            if *outstanding == 0 {
                self.silent(p, now, rng, out);
            }
        }
    }

    /// Nobody reached the target within its window.
    pub(super) fn silent<R: Rng>(
        &mut self,
        p: ProbeId,
        now: Now,
        rng: &mut R,
        out: &mut Vec<Action>,
    ) {
        let Some(probe) = self.cycle.probes.get(&p) else {
            return;
        };
        if probe.purpose != Purpose::LastCheck {
            let missed = match probe.phase {
                Phase::Indirect { helpers, nacks, .. } => helpers > 0 && nacks < helpers,
                _ => false,
            };
            let (id, purpose) = (probe.target.id.clone(), probe.purpose);
            self.cycle.probes.remove(&p);
            self.counters.probe_failures += 1;
            if purpose == Purpose::Check {
                if missed {
                    self.health = (self.health + 1).min(self.config.max_local_health);
                }
                self.claim_unanswered(&id, now);
            } else {
                self.probe_failed(&id, missed, now);
            }
            return;
        }
        let (about, round) = (probe.target.id.clone(), probe.round);
        let peers = self.helpers(&about, LAST_CHECK_ASKS, rng);
        if peers.is_empty() {
            self.settle(p, false, now);
            return;
        }
        for peer in &peers {
            out.push(Action::AskRecord {
                probe: p,
                peer: peer.clone(),
                about: about.clone(),
                timeout: round,
            });
        }
        out.push(Action::SetTimer {
            at: now.instant + round,
            timer: Timer::AskEnd(p),
        });
        if let Some(probe) = self.cycle.probes.get_mut(&p) {
            probe.phase = Phase::Asking {
                outstanding: peers.len(),
            };
        }
    }

    /// The probe is over: the target answered, or it is silent for good.
    pub(super) fn settle(&mut self, p: ProbeId, answered: bool, now: Now) {
        let Some(probe) = self.cycle.probes.remove(&p) else {
            return;
        };
        let id = &probe.target.id;
        match (probe.purpose, answered) {
            (Purpose::Regular, true) => self.probe_succeeded(id, now),
            (Purpose::Regular, false) => self.probe_failed(id, false, now),
            (Purpose::LastCheck, true) => self.expired_suspect_answered(id, now),
            (Purpose::LastCheck, false) => self.expired_suspect_silent(id, now),
            (Purpose::Check, true) => self.claim_answered(id, now),
            (Purpose::Check, false) => self.claim_unanswered(id, now),
        }
    }
}
