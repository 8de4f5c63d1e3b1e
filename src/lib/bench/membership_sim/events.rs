//! What each simulated event does on arrival at a node: the agent's handlers
//! (ping, indirect ping, gossip, push-pull) and its loops (verification,
//! urgent pushes, anti-entropy, joining) over the node's pure core.

use std::time::Duration;

use rand::Rng as _;

use super::{
    Sim,
    net::{Ev, Exchange, MAX_VERIFYING, PingFor, source},
};
use crate::core::membership::{
    candidates::Source,
    exchange::PushPullSession,
    messages::PushPullReply,
    swim::{Action, Input},
};

impl Sim {
    pub(super) fn handle(&mut self, i: usize, ev: Ev) {
        let now = self.now();
        match ev {
            Ev::Timer(_, t) => self.feed(i, Input::Timer(t)),
            Ev::Verify(_, later) => self.verify(i, later),
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
                let want_record = matches!(why, PingFor::Check(_));
                let reply = self.nodes[i].m.answer_ping(
                    &from_id,
                    updates,
                    want_record,
                    Some(source(&addr)),
                    now,
                );
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
                PingFor::Probe(probe) | PingFor::Check(probe) => {
                    if !updates.is_empty() {
                        let target = self.nodes[from].m.local().id.clone();
                        self.nodes[i].m.apply_answer(&target, updates, now);
                    }
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
                session,
                request,
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
                        .answer_push_pull(&from_id, request, Some(source(&addr)), now);
                self.count(reply.records.len(), reply.digests.len());
                if self.lost() {
                    self.at(
                        timeout,
                        Ev::PushPullReply {
                            to: from,
                            peer: i,
                            why,
                            session,
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
                            session,
                            reply: Some(reply),
                        },
                    );
                }
            }
            Ev::PushPullReply {
                peer,
                why,
                session,
                reply,
                ..
            } => self.exchanged(i, peer, why, session, reply),
        }
    }

    fn exchanged(
        &mut self,
        i: usize,
        peer: usize,
        why: Exchange,
        mut session: PushPullSession,
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
        let addr = self.nodes[peer].m.local().address.clone();
        self.nodes[i].m.apply_synced(
            std::mem::take(&mut reply.records),
            Some(Source::called(&addr, 1)),
            now,
        );
        if let Some(next) = self.nodes[i].m.push_pull_next(&mut session, &reply) {
            self.push_pull(i, Some(peer), why, (session, next));
        }
    }

    /// A verification pass (as the agent's verify loop: one pass at a time,
    /// woken by new candidates and freed slots, else once a round).
    fn verify(&mut self, i: usize, later: bool) {
        let now = self.now();
        if later {
            self.nodes[i].verify_queued.1 = false;
        } else {
            self.nodes[i].verify_queued.0 = false;
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
        if !self.nodes[i].verify_queued.1 && self.nodes[i].m.unverified_count() > 0 {
            let round = self.cfg.membership.gossip_interval;
            self.nodes[i].verify_queued.1 = true;
            self.at(round, Ev::Verify(i, true));
        }
    }

    fn spread(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.spread_scheduled = false;
        let records = crate::core::membership::queue::coalesce(std::mem::take(&mut n.urgent));
        if records.is_empty() {
            return;
        }
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
