//! The simulated nodes and network of [`super::Sim`]: the executor of the
//! cycle's actions (as the agent's `exec.rs`, over simulated calls) and the
//! calls' delivery.

use std::time::Duration;

use prost::Message as _;

use super::Sim;
use crate::{
    core::membership::{
        Membership, ProbeTarget,
        candidates::Source,
        events::EventKind,
        exchange::{PushPullSession, Request},
        messages::PushPullReply,
        record::SharedRecord,
        swim::{self, Action, Input, ProbeId, Timer},
    },
    transport::membership::convert::{digest_to_pb, record_to_pb},
};

/// Fixed per-message overhead counted for headers and ids.
const CALL_OVERHEAD: u64 = 64;

/// One simulated node.
pub(crate) struct SimNode {
    pub(crate) m: Membership,
    pub(crate) rng: rand::rngs::StdRng,
    /// Running (a crashed node neither sends nor answers).
    pub(crate) up: bool,
}

/// Why a ping was sent.
#[derive(Debug, Clone)]
pub(crate) enum PingFor {
    Probe(ProbeId),
    /// A probe that asks for the target's own record (a claim's check).
    Check(ProbeId),
    Verify(crate::core::ids::NodeId),
    Helper {
        asker: usize,
        probe: ProbeId,
    },
}

/// Why a push-pull was started.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Exchange {
    /// The upkeep's (a join, a reconnect): reported back when it ends.
    Upkeep(swim::Exchange),
    /// A sync of the churn rounds or anti-entropy: nothing to report.
    Sync,
    Ask(ProbeId),
}

/// A scheduled event.
pub(crate) enum Ev {
    Timer(usize, Timer),
    Ping {
        to: usize,
        from: usize,
        why: PingFor,
        updates: Vec<SharedRecord>,
        timeout: Duration,
    },
    /// `ok: false` is a failed call (lost, or the target is down), at its timeout.
    Ack {
        to: usize,
        from: usize,
        why: PingFor,
        ok: bool,
        updates: Vec<SharedRecord>,
    },
    PingReq {
        to: usize,
        from: usize,
        probe: ProbeId,
        target: ProbeTarget,
        timeout: Duration,
        updates: Vec<SharedRecord>,
    },
    IndirectReply {
        to: usize,
        probe: ProbeId,
        ack: Option<bool>,
        updates: Vec<SharedRecord>,
    },
    Gossip {
        to: usize,
        from: usize,
        updates: Vec<SharedRecord>,
    },
    PushPull {
        to: usize,
        from: usize,
        why: Exchange,
        session: PushPullSession,
        request: Request,
        timeout: Duration,
    },
    PushPullReply {
        to: usize,
        peer: usize,
        why: Exchange,
        session: PushPullSession,
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

pub(super) fn source(addr: &str) -> Source<'_> {
    Source::caller(addr, 1)
}

impl Sim {
    /// Starts node `i`: its cycle, with node 0 as its seed.
    pub(crate) fn start(&mut self, i: usize) {
        let now = self.now();
        let seed = self.nodes[0].m.local().address.clone();
        let n = &mut self.nodes[i];
        n.m.add_seeds([seed], false);
        let actions = n.m.start(now, &mut n.rng);
        self.execute(i, actions);
    }

    pub(super) fn count(&mut self, records: usize, digests: usize) {
        self.messages += 1;
        // Sent and received: each byte counts at both ends.
        self.bytes += 2
            * (CALL_OVERHEAD
                + records as u64 * self.record_bytes
                + digests as u64 * self.digest_bytes);
    }

    pub(super) fn addr_of(&self, t: &ProbeTarget) -> Option<usize> {
        self.by_addr.get(&t.address).copied()
    }

    /// Sends a call from `from` to `to`: delivered after a delay, or, lost or to
    /// a crashed node, failed back to the caller at `timeout`.
    pub(super) fn call(
        &mut self,
        (from, to): (usize, Option<usize>),
        timeout: Duration,
        ev: Ev,
        failed: Ev,
    ) {
        let reachable =
            to.is_some_and(|t| self.nodes[t].up && self.joined(from, t)) && !self.lost();
        if reachable {
            let d = self.delay();
            self.at(d, ev);
        } else {
            self.at(timeout, failed);
        }
    }

    pub(super) fn ping(
        &mut self,
        from: usize,
        target: &ProbeTarget,
        why: PingFor,
        updates: Vec<SharedRecord>,
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
        self.call((from, to), timeout, ev, failed);
    }

    /// Whether `a` and `b` are on the same side of the partition, if any.
    pub(super) fn joined(&self, a: usize, b: usize) -> bool {
        self.cut.is_empty() || self.cut.get(a) == self.cut.get(b)
    }

    pub(super) fn push_pull(
        &mut self,
        from: usize,
        to: Option<usize>,
        why: Exchange,
        (session, request): (PushPullSession, Request),
    ) {
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
            session: session.clone(),
            reply: None,
        };
        let ev = Ev::PushPull {
            to: to.unwrap_or(usize::MAX),
            from,
            why,
            session,
            request,
            timeout,
        };
        self.call((from, to), timeout, ev, failed);
    }

    pub(super) fn execute(&mut self, i: usize, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::SetTimer { at, timer } => self.at_instant(at, Ev::Timer(i, timer)),
                Action::Ping {
                    probe,
                    target,
                    timeout,
                    updates,
                    want_record,
                } => {
                    let why = if want_record {
                        PingFor::Check(probe)
                    } else {
                        PingFor::Probe(probe)
                    };
                    self.ping(i, &target, why, updates, timeout);
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
                    self.call((i, to), timeout, ev, failed);
                }
                Action::AskRecord {
                    probe, peer, about, ..
                } => {
                    let request = Request::ask(about);
                    let to = self.addr_of(&peer);
                    let session = PushPullSession::default();
                    self.push_pull(i, to, Exchange::Ask(probe), (session, request));
                }
                Action::Sync { to } => {
                    let peer = self.addr_of(&to);
                    let request = self.nodes[i].m.push_pull_open();
                    self.push_pull(i, peer, Exchange::Sync, request);
                }
                Action::Exchange { to, why } => {
                    let peer = self.by_addr.get(&to).copied();
                    let request = self.nodes[i].m.push_pull_open();
                    self.push_pull(i, peer, Exchange::Upkeep(why), request);
                }
                Action::Verify {
                    target,
                    updates,
                    timeout,
                } => {
                    let why = PingFor::Verify(target.id.clone());
                    self.ping(i, &target, why, updates, timeout);
                }
                Action::Gossip { to, updates, .. } => {
                    self.count(updates.len(), 0);
                    let to = self.addr_of(&to);
                    if let Some(t) = to
                        && self.nodes[t].up
                        && self.joined(i, t)
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
    pub(super) fn feed(&mut self, i: usize, input: Input) {
        let now = self.now();
        let n = &mut self.nodes[i];
        let actions = n.m.handle(input, now, &mut n.rng);
        self.execute(i, actions);
    }

    /// Merges records from a call's reply (no source: the node asked for them).
    pub(super) fn merge(&mut self, i: usize, records: Vec<SharedRecord>, from: Option<usize>) {
        if records.is_empty() {
            return;
        }
        let now = self.now();
        let addr = from.map(|f| self.nodes[f].m.local().address.clone());
        self.nodes[i]
            .m
            .apply_all_from(records, addr.as_deref().map(source), now);
    }

    /// After node `i` changed: its events counted, and the cycle fed
    /// `Input::Changed` when work is due (as the agent's `with_state` does).
    fn settle(&mut self, i: usize) {
        let now = self.now();
        if self.nodes[i].m.needs_upkeep(now) {
            self.feed(i, Input::Changed);
        }
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
    }

    pub(crate) fn dispatch(&mut self, ev: Ev) {
        let node = match &ev {
            Ev::Timer(i, _) => *i,
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
}
