//! What each simulated event does at a node ([`super::Sim`]): arrivals,
//! failures, ACKs and control traffic fed to the node's broadcast state; the
//! link model timing each transfer; and the node's actions turned into events.

use std::time::Duration;

use super::{Event, Sim};
use crate::core::{
    broadcast::state::{Action, PieceVerdict, SendOutcome},
    message::{InboundMessage, OutboundMessage},
};

impl Sim {
    pub(super) fn handle(&mut self, e: Event) {
        let now = self.at(self.now);
        match e {
            Event::Arrive {
                to,
                from,
                msg,
                attempt,
            } => self.arrive((from, to), msg, attempt),
            Event::Failed {
                from,
                to,
                msg,
                attempt,
            } => {
                let a = if msg.meta.piece.is_some() {
                    self.nodes[from].state.on_piece_failed(&msg)
                } else {
                    // Retried by the state until the node is known gone.
                    let to = self.ids[to].clone();
                    let st = &mut self.nodes[from].state;
                    st.on_send_failed(&to, msg.meta.id, (attempt, true), now);
                    Vec::new()
                };
                self.run_actions(from, a);
            }
            Event::DirectAck { origin, to, id } => {
                let to = self.ids[to].clone();
                let a = self.nodes[origin].state.on_direct_ack(id, &to, now);
                self.run_actions(origin, a);
            }
            Event::Announce { to, from, entries } => {
                let from = self.ids[from].clone();
                let a = self.nodes[to].state.on_announce(&from, entries, now);
                self.run_actions(to, a);
            }
            Event::Want { to, from, id } => {
                let from_id = self.ids[from].clone();
                let a = self.nodes[to].state.on_want(&from_id, &[id]);
                self.run_actions(to, a);
            }
            Event::WantPieces {
                to,
                from,
                id,
                pieces,
            } => {
                let from_id = self.ids[from].clone();
                let a = self.nodes[to]
                    .state
                    .on_want_pieces(&from_id, &[(id, pieces)]);
                self.run_actions(to, a);
            }
            Event::Kill { node } => self.kill(node),
            Event::Gone { node } => {
                let gone = self.ids[node].clone();
                for i in 0..self.nodes.len() {
                    if self.nodes[i].alive {
                        let a = self.nodes[i].state.on_member_gone(&gone, now);
                        self.run_actions(i, a);
                    }
                }
            }
            Event::Receipts { origin, from, ids } => {
                let node = [self.ids[from].clone()];
                for id in ids {
                    let a = self.nodes[origin].state.on_receipt(id, &node, now);
                    self.run_actions(origin, a);
                }
            }
            Event::ReceiptsSent {
                from,
                origin,
                delivered,
            } => {
                let outcome = if delivered {
                    SendOutcome::Delivered
                } else {
                    SendOutcome::Failed { retryable: true }
                };
                let origin = self.ids[origin].clone();
                let a = self.nodes[from]
                    .state
                    .on_receipts_sent(&origin, outcome, now);
                self.run_actions(from, a);
            }
            Event::Tick => {}
        }
    }

    /// `node` dies: what it was receiving fails at its senders now (their
    /// connections to it break), and what it was sending never arrives. The
    /// uplink time those transfers took stays spent (a FIFO uplink cannot
    /// give it back): a pessimistic model of a real link, whose share goes to
    /// the other connections at once.
    fn kill(&mut self, node: usize) {
        self.nodes[node].alive = false;
        let doomed: Vec<u64> = self
            .events
            .iter()
            .filter(|(_, e)| matches!(e, Event::Arrive { to, .. } if *to == node))
            .map(|(seq, _)| *seq)
            .collect();
        for seq in doomed {
            if let Some(Event::Arrive {
                from, msg, attempt, ..
            }) = self.events.remove(&seq)
            {
                let to = node;
                self.push(
                    self.now,
                    Event::Failed {
                        from,
                        to,
                        msg,
                        attempt,
                    },
                );
            }
        }
    }

    fn arrive(&mut self, (from, to): (usize, usize), msg: OutboundMessage, attempt: u32) {
        if !self.nodes[from].alive {
            // The sender died before the bytes were out: nothing arrives.
            return;
        }
        if !self.nodes[to].alive {
            // Killed while this was on its way: the sender's send fails.
            self.push(
                self.now,
                Event::Failed {
                    from,
                    to,
                    msg,
                    attempt,
                },
            );
            return;
        }
        let now = self.at(self.now);
        let len = msg.payload.len() as u64;
        self.nodes[to].received_bytes += len;
        let inbound = InboundMessage {
            meta: msg.meta,
            sender: self.ids[from].clone(),
            payload: msg.payload,
            crc32: msg.crc32,
        };
        if inbound.meta.piece.is_some() {
            let piece = OutboundMessage {
                meta: inbound.meta.clone(),
                payload: inbound.payload.clone(),
                crc32: inbound.crc32,
            };
            let out = self.nodes[to].state.on_piece(&inbound, u64::MAX, now);
            if matches!(out.verdict, PieceVerdict::Rejected(_)) {
                let t = self.now + self.cfg.latency;
                let failed = Event::Failed {
                    from,
                    to,
                    msg: piece,
                    attempt,
                };
                self.push(t, failed);
            }
            self.run_actions(to, out.actions);
            if let Some(whole) = out.complete {
                self.whole(to, whole);
            }
        } else {
            let id = inbound.meta.id;
            let direct = inbound.meta.origin == inbound.sender;
            self.whole(to, inbound);
            if direct {
                let t = self.now + self.cfg.latency;
                self.push(
                    t,
                    Event::DirectAck {
                        origin: from,
                        to,
                        id,
                    },
                );
            }
        }
    }

    fn whole(&mut self, at: usize, msg: InboundMessage) {
        let now = self.at(self.now);
        let ids = self.ids.clone();
        let (_, a) = self.nodes[at]
            .state
            .on_payload(msg, &ids, now, &mut self.rng);
        self.run_actions(at, a);
    }

    /// When a transfer of `len` bytes from `from` to `to` starting now ends.
    fn transfer(&mut self, from: usize, to: usize, len: u64) -> Duration {
        let tx = Duration::from_secs_f64(len as f64 / self.cfg.rate);
        let up_done = self.now.max(self.nodes[from].up_free) + tx;
        self.nodes[from].up_free = up_done;
        self.nodes[from].sent_bytes += len;
        let down_done = (up_done + self.cfg.latency).max(self.nodes[to].down_free + tx);
        self.nodes[to].down_free = down_done;
        down_done
    }

    fn send(&mut self, (from, to): (usize, usize), msg: OutboundMessage, attempt: u32) {
        if !self.nodes[to].alive {
            let t = self.now + self.cfg.fail_after;
            let failed = Event::Failed {
                from,
                to,
                msg,
                attempt,
            };
            self.push(t, failed);
            return;
        }
        let t = self.transfer(from, to, msg.payload.len() as u64);
        let arrive = Event::Arrive {
            to,
            from,
            msg,
            attempt,
        };
        self.push(t, arrive);
    }

    pub(super) fn run_actions(&mut self, at: usize, actions: Vec<Action>) {
        let lat = self.now + self.cfg.latency;
        for a in actions {
            match a {
                Action::Deliver(m) => {
                    self.nodes[at].delivered += 1;
                    if m.payload.len() != self.payload.len()
                        || crc32fast::hash(&m.payload) != self.crc
                    {
                        self.corrupt += 1;
                    }
                    self.last_delivery = self.last_delivery.max(self.now);
                }
                Action::Send { to, id, attempt } => {
                    let Some(msg) = self.nodes[at].state.outbound(&id) else {
                        continue;
                    };
                    let to = self.index[&to];
                    self.send((at, to), msg, attempt);
                }
                Action::SendPiece { to, piece } => {
                    let to = self.index[&to];
                    self.send((at, to), piece, 0);
                }
                Action::Announce { to, entries } => {
                    let to = self.index[&to];
                    if self.nodes[to].alive {
                        self.push(
                            lat,
                            Event::Announce {
                                to,
                                from: at,
                                entries,
                            },
                        );
                    }
                }
                Action::Want { to, id } => {
                    let to = self.index[&to];
                    if self.nodes[to].alive {
                        self.push(lat, Event::Want { to, from: at, id });
                    }
                }
                Action::WantPieces { to, id, pieces } => {
                    let to = self.index[&to];
                    if self.nodes[to].alive {
                        self.push(
                            lat,
                            Event::WantPieces {
                                to,
                                from: at,
                                id,
                                pieces,
                            },
                        );
                    }
                }
                Action::Receipts { origin, ids, .. } => {
                    // Control traffic: the latency only; the hop ACK takes
                    // as long again, and a dead origin fails the send.
                    let origin = self.index[&origin];
                    if self.nodes[origin].alive {
                        let from = at;
                        self.push(lat, Event::Receipts { origin, from, ids });
                        let back = lat + self.cfg.latency;
                        let sent = Event::ReceiptsSent {
                            from,
                            origin,
                            delivered: true,
                        };
                        self.push(back, sent);
                    } else {
                        let t = self.now + self.cfg.fail_after;
                        let sent = Event::ReceiptsSent {
                            from: at,
                            origin,
                            delivered: false,
                        };
                        self.push(t, sent);
                    }
                }
                Action::Acked { .. } => {}
                Action::Done(c) => {
                    self.converged = c.missing.is_empty()
                        && c.receipts.len() == self.nodes.iter().filter(|n| n.alive).count();
                    self.done = true;
                }
            }
        }
    }
}
