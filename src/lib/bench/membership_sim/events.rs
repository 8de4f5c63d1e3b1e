//! What each simulated event does on arrival at a node: a timer fed to its
//! cycle, the agent's handlers (ping, indirect ping, gossip, push-pull) over
//! its pure core, and the ends of its own calls reported back.

use super::{
    Sim,
    net::{Ev, Exchange, PingFor, source},
};
use crate::core::membership::{
    candidates::Source, exchange::PushPullSession, messages::PushPullReply, swim::Input,
};

impl Sim {
    pub(super) fn handle(&mut self, i: usize, ev: Ev) {
        let now = self.now();
        match ev {
            Ev::Timer(_, t) => self.feed(i, Input::Timer(t)),
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
                    self.feed(i, Input::Verified { id, answered: ok });
                    if ok {
                        self.merge(i, updates, Some(from));
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
                Exchange::Upkeep(why) => self.feed(i, Input::Exchanged { why, ok: false }),
                Exchange::Ask(probe) => self.feed(i, Input::Asked { probe }),
                Exchange::Sync => {}
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
        } else if let Exchange::Upkeep(why) = why {
            self.feed(i, Input::Exchanged { why, ok: true });
        }
    }
}
