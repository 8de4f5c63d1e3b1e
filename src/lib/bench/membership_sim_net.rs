//! The simulated nodes and network of [`super::Sim`]: what each message does
//! on arrival, mirroring the agent's handlers and loops over the pure core.

use std::time::Duration;

use prost::Message as _;
use rand::Rng as _;

use super::Sim;
use crate::{
    core::membership::{
        Membership, ProbeTarget,
        candidates::Source,
        events::EventKind,
        exchange::Request,
        messages::{Phase, PushPullReply},
        record::MemberRecord,
        swim::{Action, Input, ProbeId, Timer},
    },
    transport::membership::convert::{digest_to_pb, record_to_pb},
};

/// Verification probes in flight per node (as `runtime::membership::verify`).
const MAX_VERIFYING: usize = 16;
/// Fixed per-message overhead counted for headers and ids.
const CALL_OVERHEAD: u64 = 64;

/// One simulated node.
pub(crate) struct SimNode {
    pub(crate) m: Membership,
    pub(crate) rng: rand::rngs::StdRng,
    /// Running (a crashed node neither sends nor answers).
    pub(crate) up: bool,
    pub(crate) verifying: usize,
    /// When the next verification pass is due, if one is scheduled.
    pub(crate) verify_at: Option<Duration>,
    pub(crate) spread_scheduled: bool,
    pub(crate) urgent: Vec<MemberRecord>,
    pub(crate) join_backoff: Duration,
}

/// Why a ping was sent.
#[derive(Debug, Clone)]
pub(crate) enum PingFor {
    Probe(ProbeId),
    Verify(crate::core::ids::NodeId),
    Helper { asker: usize, probe: ProbeId },
}

/// Why a push-pull was started.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Exchange {
    Join,
    AntiEntropy,
    Ask(ProbeId),
}

/// A scheduled event.
pub(crate) enum Ev {
    Timer(usize, Timer),
    Verify(usize),
    Spread(usize),
    AntiEntropy(usize),
    Join(usize),
    Ping {
        to: usize,
        from: usize,
        why: PingFor,
        updates: Vec<MemberRecord>,
        timeout: Duration,
    },
    /// `ok: false` is a failed call (lost, or the target is down), at its timeout.
    Ack {
        to: usize,
        from: usize,
        why: PingFor,
        ok: bool,
        updates: Vec<MemberRecord>,
    },
    PingReq {
        to: usize,
        from: usize,
        probe: ProbeId,
        target: ProbeTarget,
        timeout: Duration,
        updates: Vec<MemberRecord>,
    },
    IndirectReply {
        to: usize,
        probe: ProbeId,
        ack: Option<bool>,
        updates: Vec<MemberRecord>,
    },
    Gossip {
        to: usize,
        from: usize,
        updates: Vec<MemberRecord>,
    },
    PushPull {
        to: usize,
        from: usize,
        why: Exchange,
        request: Request,
        timeout: Duration,
    },
    PushPullReply {
        to: usize,
        peer: usize,
        why: Exchange,
        sent: Phase,
        reply: Option<PushPullReply>,
    },
}

/// Encoded sizes of one record and one digest.
pub(crate) fn wire_sizes(m: &Membership) -> (u64, u64) {
    let r = record_to_pb(m.local(), 0).encoded_len() as u64;
    let d = m
        .digests()
        .first()
        .map_or(24, |d| digest_to_pb(d).encoded_len() as u64);
    (r, d)
}

fn source(addr: &str) -> Source<'_> {
    Source {
        key: addr,
        members: 1,
    }
}

impl Sim {
    /// Starts node `i`: its cycle, and its join through node 0.
    pub(crate) fn start(&mut self, i: usize) {
        let now = self.now();
        let n = &mut self.nodes[i];
        let actions = n.m.start(now, &mut n.rng);
        self.execute(i, actions);
        let ae = self.cfg.membership.anti_entropy_interval;
        let jitter = ae.mul_f64(self.nodes[i].rng.random::<f64>());
        self.at(ae + jitter, Ev::AntiEntropy(i));
        if i != 0 {
            self.at(Duration::ZERO, Ev::Join(i));
        }
    }

    fn count(&mut self, records: usize, digests: usize) {
        self.messages += 1;
        // Sent and received: each byte counts at both ends.
        self.bytes += 2
            * (CALL_OVERHEAD
                + records as u64 * self.record_bytes
                + digests as u64 * self.digest_bytes);
    }

    fn addr_of(&self, t: &ProbeTarget) -> Option<usize> {
        self.by_addr.get(&t.address).copied()
    }

    /// Sends a call from `from` to `to`: delivered after a delay, or, lost or to
    /// a crashed node, failed back to the caller at `timeout`.
    fn call(&mut self, to: Option<usize>, timeout: Duration, ev: Ev, failed: Ev) {
        let reachable = to.is_some_and(|t| self.nodes[t].up) && !self.lost();
        if reachable {
            let d = self.delay();
            self.at(d, ev);
        } else {
            self.at(timeout, failed);
        }
    }

    fn ping(
        &mut self,
        from: usize,
        target: &ProbeTarget,
        why: PingFor,
        updates: Vec<MemberRecord>,
        timeout: Duration,
    ) {
        self.count(updates.len(), 0);
        let to = self.addr_of(target);
        let failed = Ev::Ack {
            to: from,
            from: to.unwrap_or(usize::MAX),
            why: why.clone(),
            ok: false,
            updates: Vec::new(),
        };
        let ev = Ev::Ping {
            to: to.unwrap_or(usize::MAX),
            from,
            why,
            updates,
            timeout,
        };
        self.call(to, timeout, ev, failed);
    }

    fn push_pull(&mut self, from: usize, to: Option<usize>, why: Exchange, request: Request) {
        let timeout = self
            .cfg
            .membership
            .gossip_interval
            .max(Duration::from_secs(1))
            * 2;
        self.count(request.records.len(), 0);
        let failed = Ev::PushPullReply {
            to: from,
            peer: to.unwrap_or(usize::MAX),
            why,
            sent: request.phase,
            reply: None,
        };
        let ev = Ev::PushPull {
            to: to.unwrap_or(usize::MAX),
            from,
            why,
            request,
            timeout,
        };
        self.call(to, timeout, ev, failed);
    }

    fn execute(&mut self, i: usize, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::SetTimer { at, timer } => self.at_instant(at, Ev::Timer(i, timer)),
                Action::Ping {
                    probe,
                    target,
                    timeout,
                    updates,
                } => {
                    self.ping(i, &target, PingFor::Probe(probe), updates, timeout);
                }
                Action::PingReq {
                    probe,
                    helper,
                    target,
                    helper_timeout,
                    timeout,
                    updates,
                } => {
                    self.count(updates.len(), 0);
                    let to = self.addr_of(&helper);
                    let failed = Ev::IndirectReply {
                        to: i,
                        probe,
                        ack: None,
                        updates: Vec::new(),
                    };
                    let ev = Ev::PingReq {
                        to: to.unwrap_or(usize::MAX),
                        from: i,
                        probe,
                        target,
                        timeout: helper_timeout,
                        updates,
                    };
                    self.call(to, timeout, ev, failed);
                }
                Action::AskRecord {
                    probe, peer, about, ..
                } => {
                    let request = Request {
                        phase: Phase::Records,
                        records: Vec::new(),
                        table_hash: 0,
                        want: vec![about],
                    };
                    let to = self.addr_of(&peer);
                    self.push_pull(i, to, Exchange::Ask(probe), request);
                }
                Action::Sync { to } => {
                    let peer = self.addr_of(&to);
                    let request = self.nodes[i].m.push_pull_open();
                    self.push_pull(i, peer, Exchange::AntiEntropy, request);
                }
                Action::Gossip { to, updates, .. } => {
                    self.count(updates.len(), 0);
                    let to = self.addr_of(&to);
                    if let Some(t) = to
                        && self.nodes[t].up
                        && !self.lost()
                    {
                        let d = self.delay();
                        self.at(
                            d,
                            Ev::Gossip {
                                to: t,
                                from: i,
                                updates,
                            },
                        );
                    }
                }
            }
        }
    }

    /// Feeds an input to node `i`'s cycle.
    fn feed(&mut self, i: usize, input: Input) {
        let now = self.now();
        let n = &mut self.nodes[i];
        let actions = n.m.handle(input, now, &mut n.rng);
        self.execute(i, actions);
    }

    /// Merges records from a call's reply (no source: the node asked for them).
    fn merge(&mut self, i: usize, records: Vec<MemberRecord>, from: Option<usize>) {
        if records.is_empty() {
            return;
        }
        let now = self.now();
        let addr = from.map(|f| self.nodes[f].m.local().address.clone());
        self.nodes[i]
            .m
            .apply_all_from(records, addr.as_deref().map(source), now);
    }

    /// After node `i` changed: its events counted, urgent changes and
    /// verifications scheduled (as the agent's `with_state` does).
    fn settle(&mut self, i: usize) {
        let now = self.now();
        let events = self.nodes[i].m.take_events();
        for e in events {
            let live = self
                .by_addr
                .get(&e.address)
                .is_some_and(|&k| self.nodes[k].up);
            match e.kind {
                EventKind::Dead if live => self.false_positives += 1,
                EventKind::Suspect if live => self.false_suspicions += 1,
                _ => {}
            }
        }
        let urgent = self.nodes[i].m.take_urgent();
        let n = &mut self.nodes[i];
        if !urgent.is_empty() {
            n.urgent.extend(urgent);
            let cap = self.cfg.membership.max_queued_updates;
            if n.urgent.len() > cap {
                let excess = n.urgent.len() - cap;
                n.urgent.drain(..excess);
            }
            if !n.spread_scheduled {
                n.spread_scheduled = true;
                let window = (self.cfg.membership.gossip_interval / 20)
                    .clamp(Duration::from_millis(1), Duration::from_millis(20));
                self.at(window, Ev::Spread(i));
            }
        }
        let clock = self.clock;
        let n = &mut self.nodes[i];
        if n.verify_at.is_none_or(|t| t > clock)
            && n.verifying < MAX_VERIFYING
            && n.m.has_unverified(now)
        {
            n.verify_at = Some(clock);
            self.at(Duration::ZERO, Ev::Verify(i));
        }
    }

    pub(crate) fn dispatch(&mut self, ev: Ev) {
        let node = match &ev {
            Ev::Timer(i, _) | Ev::Verify(i) | Ev::Spread(i) | Ev::AntiEntropy(i) | Ev::Join(i) => {
                *i
            }
            Ev::Ping { to, .. }
            | Ev::Ack { to, .. }
            | Ev::PingReq { to, .. }
            | Ev::IndirectReply { to, .. }
            | Ev::Gossip { to, .. }
            | Ev::PushPull { to, .. }
            | Ev::PushPullReply { to, .. } => *to,
        };
        if node >= self.nodes.len() || !self.nodes[node].up {
            return;
        }
        self.handle(node, ev);
        self.settle(node);
    }

    fn handle(&mut self, i: usize, ev: Ev) {
        let now = self.now();
        match ev {
            Ev::Timer(_, t) => self.feed(i, Input::Timer(t)),
            Ev::Verify(_) => self.verify(i),
            Ev::Spread(_) => self.spread(i),
            Ev::AntiEntropy(_) => {
                let n = &mut self.nodes[i];
                let target = n.m.gossip_targets(&mut n.rng).into_iter().next();
                if let Some(t) = target {
                    let to = self.addr_of(&t);
                    let request = self.nodes[i].m.push_pull_open();
                    self.push_pull(i, to, Exchange::AntiEntropy, request);
                }
                let ae = self.cfg.membership.anti_entropy_interval;
                self.at(ae, Ev::AntiEntropy(i));
            }
            Ev::Join(_) => {
                let request = self.nodes[i].m.push_pull_open();
                self.push_pull(i, Some(0), Exchange::Join, request);
            }
            Ev::Ping {
                from,
                why,
                updates,
                timeout,
                ..
            } => {
                let (from_id, addr) = {
                    let l = self.nodes[from].m.local();
                    (l.id.clone(), l.address.clone())
                };
                let reply =
                    self.nodes[i]
                        .m
                        .answer_ping(&from_id, updates, Some(source(&addr)), now);
                self.count(reply.len(), 0);
                if self.lost() {
                    // A lost ack: the caller's call times out.
                    self.at(
                        timeout,
                        Ev::Ack {
                            to: from,
                            from: i,
                            why,
                            ok: false,
                            updates: Vec::new(),
                        },
                    );
                } else {
                    let d = self.delay();
                    self.at(
                        d,
                        Ev::Ack {
                            to: from,
                            from: i,
                            why,
                            ok: true,
                            updates: reply,
                        },
                    );
                }
            }
            Ev::Ack {
                from,
                why,
                ok,
                updates,
                ..
            } => match why {
                PingFor::Probe(probe) => {
                    self.merge(i, updates, None);
                    self.feed(i, Input::Ping { probe, acked: ok });
                }
                PingFor::Verify(id) => {
                    self.nodes[i].verifying = self.nodes[i].verifying.saturating_sub(1);
                    if ok {
                        self.nodes[i].m.candidate_answered(&id, now);
                        self.merge(i, updates, Some(from));
                    } else {
                        self.nodes[i].m.candidate_silent(&id, now);
                    }
                }
                PingFor::Helper { asker, probe } => {
                    self.merge(i, updates, None);
                    let asker_id = self.nodes[asker].m.local().id.clone();
                    let back = self.nodes[i].m.piggyback(Some(&asker_id));
                    self.count(back.len(), 0);
                    let d = self.delay();
                    self.at(
                        d,
                        Ev::IndirectReply {
                            to: asker,
                            probe,
                            ack: Some(ok),
                            updates: back,
                        },
                    );
                }
            },
            Ev::PingReq {
                from,
                probe,
                target,
                timeout,
                updates,
                ..
            } => {
                let addr = self.nodes[from].m.local().address.clone();
                self.nodes[i]
                    .m
                    .apply_all_from(updates, Some(source(&addr)), now);
                let known = self.nodes[i]
                    .m
                    .get(&target.id)
                    .is_some_and(|r| r.address == target.address);
                if known {
                    let updates = self.nodes[i].m.piggyback(Some(&target.id));
                    self.ping(
                        i,
                        &target,
                        PingFor::Helper { asker: from, probe },
                        updates,
                        timeout,
                    );
                } else {
                    let d = self.delay();
                    self.at(
                        d,
                        Ev::IndirectReply {
                            to: from,
                            probe,
                            ack: Some(false),
                            updates: Vec::new(),
                        },
                    );
                }
            }
            Ev::IndirectReply {
                probe,
                ack,
                updates,
                ..
            } => {
                self.merge(i, updates, None);
                self.feed(i, Input::Indirect { probe, ack });
            }
            Ev::Gossip { from, updates, .. } => {
                let addr = self.nodes[from].m.local().address.clone();
                self.nodes[i]
                    .m
                    .apply_all_from(updates, Some(source(&addr)), now);
            }
            Ev::PushPull {
                from,
                why,
                request,
                timeout,
                ..
            } => {
                let (from_id, addr) = {
                    let l = self.nodes[from].m.local();
                    (l.id.clone(), l.address.clone())
                };
                let sent = request.phase;
                let reply =
                    self.nodes[i]
                        .m
                        .answer_push_pull(&from_id, request, Some(source(&addr)), now);
                self.count(reply.records.len(), reply.digests.len());
                if self.lost() {
                    self.at(
                        timeout,
                        Ev::PushPullReply {
                            to: from,
                            peer: i,
                            why,
                            sent,
                            reply: None,
                        },
                    );
                } else {
                    let d = self.delay();
                    self.at(
                        d,
                        Ev::PushPullReply {
                            to: from,
                            peer: i,
                            why,
                            sent,
                            reply: Some(reply),
                        },
                    );
                }
            }
            Ev::PushPullReply {
                peer,
                why,
                sent,
                reply,
                ..
            } => self.exchanged(i, peer, why, sent, reply),
        }
    }

    fn exchanged(
        &mut self,
        i: usize,
        peer: usize,
        why: Exchange,
        sent: Phase,
        reply: Option<PushPullReply>,
    ) {
        let Some(mut reply) = reply else {
            match why {
                Exchange::Join => {
                    let n = &mut self.nodes[i];
                    let wait = n.join_backoff / 2 + n.join_backoff.mul_f64(n.rng.random::<f64>());
                    n.join_backoff = (n.join_backoff * 2).min(Duration::from_secs(30));
                    self.at(wait, Ev::Join(i));
                }
                Exchange::Ask(probe) => self.feed(i, Input::Asked { probe }),
                Exchange::AntiEntropy => {}
            }
            return;
        };
        if let Exchange::Ask(probe) = why {
            self.merge(i, std::mem::take(&mut reply.records), None);
            self.feed(i, Input::Asked { probe });
            return;
        }
        let now = self.now();
        self.nodes[i]
            .m
            .apply_synced(std::mem::take(&mut reply.records), None, now);
        if let Some(next) = self.nodes[i].m.push_pull_next(sent, &reply) {
            self.push_pull(i, Some(peer), why, next);
        }
    }

    fn verify(&mut self, i: usize) {
        let now = self.now();
        if self.nodes[i].verify_at.is_some_and(|t| t <= self.clock) {
            self.nodes[i].verify_at = None;
        }
        let free = MAX_VERIFYING.saturating_sub(self.nodes[i].verifying);
        let targets = self.nodes[i].m.take_unverified(free, now);
        let timeout = (self.nodes[i].m.probe_timeout() * 5).max(Duration::from_secs(1));
        for t in targets {
            self.nodes[i].verifying += 1;
            let updates = self.nodes[i].m.piggyback(Some(&t.id));
            self.ping(i, &t, PingFor::Verify(t.id.clone()), updates, timeout);
        }
        // Nodes waiting for a retry: look again a round later (as the agent's
        // loop does when nothing wakes it).
        if self.nodes[i].verify_at.is_none() && self.nodes[i].m.has_unverified(now) {
            let round = self.cfg.membership.gossip_interval;
            self.nodes[i].verify_at = Some(self.clock + round);
            self.at(round, Ev::Verify(i));
        }
    }

    fn spread(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.spread_scheduled = false;
        let mut records = std::mem::take(&mut n.urgent);
        if records.is_empty() {
            return;
        }
        records.reverse();
        let mut seen = std::collections::HashSet::new();
        records.retain(|r| seen.insert((r.id.clone(), r.suspected_by.clone())));
        records.reverse();
        let targets = n.m.gossip_targets(&mut n.rng);
        let timeout = self.cfg.membership.gossip_interval;
        for to in targets {
            self.execute(
                i,
                vec![Action::Gossip {
                    to,
                    updates: records.clone(),
                    timeout,
                }],
            );
        }
    }
}
