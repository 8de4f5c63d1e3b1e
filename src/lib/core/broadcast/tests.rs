//! A deterministic simulation of the pure broadcast state: N nodes exchanging
//! actions through a lossy queue; a lost send is reported back to its sender
//! (whose state retries it), and the harness plays the runtime's periodic
//! digests.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use bytes::Bytes;
use rand::{Rng as _, SeedableRng as _, rngs::StdRng};

use super::{
    config::BroadcastConfig,
    state::{Action, Announce, BroadcastState, SendOutcome},
};
use crate::{
    ack_tracker::Ending,
    ids::{MessageId, NodeId},
    message::InboundMessage,
};

enum Msg {
    Payload(InboundMessage, u32),
    Announce(Vec<Announce>),
    Want(MessageId),
    Receipts(Vec<MessageId>, NodeId),
}

struct Sim {
    t0: Instant,
    now: Duration,
    nodes: Vec<BroadcastState>,
    ids: Vec<NodeId>,
    queue: BTreeMap<(Duration, u64), (usize, usize, Msg)>,
    seq: u64,
    rng: StdRng,
    loss: f64,
    delivered: HashMap<(usize, MessageId), u32>,
    done: HashMap<MessageId, Ending>,
    payload_sends: u64,
    dead: Vec<usize>,
    /// Ticks left out because the node was quiet (the runtime's rule).
    quiet_skips: u64,
}

const LATENCY: Duration = Duration::from_millis(2);

impl Sim {
    fn new(n: usize, loss: f64, seed: u64) -> Self {
        let ids: Vec<NodeId> = (0..n)
            .map(|i| NodeId::parse(&format!("b{i:02}")).unwrap())
            .collect();
        Self {
            t0: Instant::now(),
            now: Duration::ZERO,
            nodes: ids
                .iter()
                .map(|id| {
                    let config = BroadcastConfig {
                        send_retries: 5,
                        retry_backoff: Duration::from_millis(50),
                        ..BroadcastConfig::default()
                    };
                    BroadcastState::new(id.clone(), config)
                })
                .collect(),
            ids,
            queue: BTreeMap::new(),
            seq: 0,
            rng: StdRng::seed_from_u64(seed),
            loss,
            delivered: HashMap::new(),
            done: HashMap::new(),
            payload_sends: 0,
            dead: Vec::new(),
            quiet_skips: 0,
        }
    }

    fn at(&self) -> Instant {
        self.t0 + self.now
    }

    fn index(&self, id: &NodeId) -> usize {
        self.ids.iter().position(|x| x == id).unwrap()
    }

    fn post(&mut self, from: usize, to: usize, msg: Msg) {
        self.seq += 1;
        self.queue
            .insert((self.now + LATENCY, self.seq), (from, to, msg));
    }

    fn run_actions(&mut self, node: usize, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Deliver(m) => *self.delivered.entry((node, m.meta.id)).or_default() += 1,
                Action::Send { to, id, attempt } => {
                    let to = self.index(&to);
                    self.send_payload(node, to, id, attempt);
                }
                Action::SendPiece { .. } | Action::WantPieces { .. } => {
                    unreachable!("payloads here are below the swarm threshold")
                }
                Action::Announce { to, entries } => {
                    let to = self.index(&to);
                    self.post(node, to, Msg::Announce(entries));
                }
                Action::Want { to, id } => {
                    let to = self.index(&to);
                    self.post(node, to, Msg::Want(id));
                }
                Action::Receipts { origin, ids, .. } => {
                    let to = self.index(&origin);
                    let me = self.ids[node].clone();
                    self.post(node, to, Msg::Receipts(ids, me));
                }
                Action::Acked { .. } => {}
                Action::Done(c) => {
                    self.done.insert(c.id, c.ending);
                }
            }
        }
    }

    fn send_payload(&mut self, from: usize, to: usize, id: MessageId, attempt: u32) {
        let Some(out) = self.nodes[from].outbound(&id) else {
            return;
        };
        self.payload_sends += 1;
        let msg = InboundMessage {
            meta: out.meta,
            sender: self.ids[from].clone(),
            payload: out.payload,
            crc32: out.crc32,
        };
        self.post(from, to, Msg::Payload(msg, attempt));
    }

    fn step(&mut self, until: Duration) {
        while let Some((&(t, s), _)) = self.queue.first_key_value() {
            if t > until {
                break;
            }
            let (from, to, msg) = self.queue.remove(&(t, s)).unwrap();
            self.now = t;
            if self.dead.contains(&from) || self.dead.contains(&to) {
                continue;
            }
            let lost = self.rng.random_bool(self.loss);
            let now = self.at();
            let peers: Vec<NodeId> = self.ids.clone();
            match msg {
                Msg::Payload(m, attempt) => {
                    if lost {
                        // The hop ACK never comes: the sender's state retries.
                        let to_id = self.ids[to].clone();
                        self.nodes[from].on_send_failed(&to_id, m.meta.id, (attempt, true), now);
                        continue;
                    }
                    let direct = m.meta.origin == self.ids[from];
                    let id = m.meta.id;
                    let mut rng = StdRng::seed_from_u64(s);
                    let (_, actions) = self.nodes[to].on_payload(m, &peers, now, &mut rng);
                    self.run_actions(to, actions);
                    if direct {
                        // The hop ACK from the origin's own copy is the receipt.
                        let to_id = self.ids[to].clone();
                        let actions = self.nodes[from].on_direct_ack(id, &to_id, now);
                        self.run_actions(from, actions);
                    }
                }
                Msg::Receipts(_, _) if lost => {
                    // Receipts travel like payloads: acknowledged per hop, resent.
                    let origin = self.ids[to].clone();
                    let failed = SendOutcome::Failed { retryable: true };
                    let actions = self.nodes[from].on_receipts_sent(&origin, failed, now);
                    self.run_actions(from, actions);
                }
                _ if lost => {}
                Msg::Announce(entries) => {
                    let from_id = self.ids[from].clone();
                    let actions = self.nodes[to].on_announce(&from_id, entries, now);
                    self.run_actions(to, actions);
                }
                Msg::Want(id) => {
                    let from_id = self.ids[from].clone();
                    let actions = self.nodes[to].on_want(&from_id, &[id]);
                    self.run_actions(to, actions);
                }
                Msg::Receipts(ids, node) => {
                    for id in ids {
                        let actions =
                            self.nodes[to].on_receipt(id, std::slice::from_ref(&node), now);
                        self.run_actions(to, actions);
                    }
                    let origin = self.ids[to].clone();
                    let sent = SendOutcome::Delivered;
                    let actions = self.nodes[from].on_receipts_sent(&origin, sent, now);
                    self.run_actions(from, actions);
                }
            }
        }
        self.now = until;
    }

    /// Advances `total` in 10 ms ticks, with a digest from each node to a random
    /// peer every 2 s. A quiet node is ticked once a second only, as the
    /// runtime does (a node made busy by a message is ticked from then on).
    fn run(&mut self, total: Duration) {
        let end = self.now + total;
        while self.now < end {
            let next = self.now + Duration::from_millis(10);
            self.step(next);
            let now = self.at();
            let quiet_tick = self.now.as_millis().is_multiple_of(1000);
            for i in 0..self.nodes.len() {
                if !quiet_tick && self.nodes[i].quiet() {
                    self.quiet_skips += 1;
                    continue;
                }
                let actions = self.nodes[i].tick(now);
                self.run_actions(i, actions);
            }
            if self.now.as_millis().is_multiple_of(2000) {
                for i in 0..self.nodes.len() {
                    let peer =
                        (i + 1 + self.rng.random_range(0..self.nodes.len() - 1)) % self.nodes.len();
                    let digest = self.nodes[i].digest(self.t0);
                    if !digest.is_empty() {
                        self.post(i, peer, Msg::Announce(digest));
                    }
                }
            }
        }
    }

    fn broadcast(&mut self, from: usize, size: usize) -> MessageId {
        let payload = Bytes::from(vec![u8::try_from(from).unwrap(); size]);
        let msg = self.nodes[from].message("t", payload, 16, 0);
        let id = msg.meta.id;
        let now = self.at();
        let ids = self.ids.clone();
        let mut rng = StdRng::seed_from_u64(self.seq);
        let actions = self.nodes[from]
            .originate(msg, &ids, now, now + Duration::from_secs(30), &mut rng)
            .unwrap();
        self.run_actions(from, actions);
        id
    }
}

#[test]
fn twenty_nodes_deliver_200_broadcasts_exactly_once_under_10_percent_loss() {
    let mut sim = Sim::new(20, 0.10, 42);
    let mut ids = Vec::new();
    for k in 0..200 {
        let size = if k % 4 == 0 { 100 << 10 } else { 1 << 10 };
        ids.push(sim.broadcast(k % 20, size));
        sim.run(Duration::from_millis(20));
    }
    sim.run(Duration::from_secs(20));
    for id in &ids {
        for n in 0..20 {
            assert_eq!(
                sim.delivered.get(&(n, *id)).copied(),
                Some(1),
                "node {n} message {id}"
            );
        }
        assert_eq!(sim.done.get(id), Some(&Ending::Converged), "message {id}");
    }
    // Done everywhere: nothing waits on a short timer any more.
    for (n, node) in sim.nodes.iter().enumerate() {
        assert!(node.quiet(), "node {n} still busy after every delivery");
    }
    assert!(sim.quiet_skips > 0, "quiet nodes were ticked all along");
}

#[test]
fn large_payloads_cross_each_link_about_once() {
    let n = 8;
    let mut sim = Sim::new(n, 0.0, 7);
    for k in 0..50 {
        sim.broadcast(k % n, 512 << 10);
        sim.run(Duration::from_millis(5));
    }
    sim.run(Duration::from_secs(5));
    let ratio = sim.payload_sends as f64 / (50 * (n - 1)) as f64;
    assert!(ratio <= 1.05, "payload copy ratio {ratio}");
}

#[test]
fn a_dead_member_is_reported_departed_not_waited_for() {
    let mut sim = Sim::new(4, 0.0, 1);
    // Node 3 is gone: nothing reaches it, nothing leaves it.
    sim.dead.push(3);
    let id = sim.broadcast(0, 1);
    sim.run(Duration::from_millis(100));
    assert!(
        sim.done.is_empty(),
        "the origin must still be waiting for node 3"
    );
    let gone = sim.ids[3].clone();
    let now = sim.at();
    let done = sim.nodes[0].on_member_gone(&gone, now);
    let Some(Action::Done(c)) = done.into_iter().next() else {
        panic!("the broadcast should complete once the dead member is forgotten")
    };
    assert_eq!(c.id, id);
    assert_eq!(c.departed, vec![gone]);
}

#[test]
fn an_origin_dying_after_two_copies_still_reaches_everyone() {
    let n = 12;
    let mut sim = Sim::new(n, 0.0, 9);
    // Below the swarm threshold: pushed whole by the origin.
    let id = sim.broadcast(0, 200 << 10);
    // The origin got two copies out (to nodes 1 and 2) and died.
    sim.queue
        .retain(|_, (_, to, m)| !matches!(m, Msg::Payload(..)) || *to <= 2);
    sim.step(LATENCY);
    sim.dead.push(0);
    sim.run(Duration::from_secs(5));
    for node in 1..n {
        assert_eq!(
            sim.delivered.get(&(node, id)).copied(),
            Some(1),
            "node {node}"
        );
    }
}
