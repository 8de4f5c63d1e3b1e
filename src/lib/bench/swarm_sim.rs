//! A deterministic discrete-event simulation of one broadcast over N nodes,
//! driving each node's pure [`BroadcastState`] with a link model: every node
//! has an uplink and a downlink of `rate` bytes per second (FIFO: a transfer
//! starts when the sender's uplink is free and ends no sooner than the
//! receiver's downlink allows) and a one-way latency. Control traffic (receipts,
//! announcements, wants) takes the latency only. Nodes may be dead from the
//! start or killed mid-broadcast (`kills`: what a killed node was receiving
//! fails at its senders at once; what it was sending never arrives; the
//! others learn it is gone `detect_after` later). Time is simulated, so a
//! thousand nodes moving 64 MiB each run in seconds, the same way every time
//! for a seed. Used by `gsp bench sim` and the swarm tests.

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    time::{Duration, Instant},
};

use bytes::Bytes;
use rand::{SeedableRng as _, rngs::StdRng};

use crate::core::{
    broadcast::{
        config::BroadcastConfig,
        state::{Action, Announce, BroadcastState},
    },
    ids::{MessageId, NodeId},
    message::OutboundMessage,
};

mod events;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Nodes, the origin included.
    pub nodes: usize,
    /// Broadcast payload length.
    pub payload_bytes: u64,
    /// Each node's uplink and downlink, bytes per second.
    pub rate: f64,
    /// One-way latency between any two nodes.
    pub latency: Duration,
    /// Nodes (by index, never 0: the origin) dead from the start, though still
    /// listed as members when the broadcast starts.
    pub dead: Vec<usize>,
    /// How long a send to a dead node takes to fail.
    pub fail_after: Duration,
    /// Nodes (by index, never 0) killed at a time into the broadcast: what
    /// they had not passed on is lost; sends to them fail from then on.
    pub kills: Vec<(usize, Duration)>,
    /// How long after a kill the other nodes learn the node is gone (the
    /// failure detector's time).
    pub detect_after: Duration,
    /// Seed of the origin's tree layout.
    pub seed: u64,
    /// Protocol settings of every node.
    pub broadcast: BroadcastConfig,
    /// Simulated time after which the run stops.
    pub limit: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            nodes: 1000,
            payload_bytes: 64 << 20,
            rate: 1.25e9,
            latency: Duration::from_micros(200),
            dead: Vec::new(),
            fail_after: Duration::from_millis(100),
            kills: Vec::new(),
            detect_after: Duration::from_secs(2),
            seed: 1,
            broadcast: BroadcastConfig {
                // Nodes keep nothing for peers: N copies of the payload would
                // not fit in the simulating process.
                store_bytes: 0,
                ..BroadcastConfig::default()
            },
            limit: Duration::from_secs(600),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub struct SimReport {
    /// Live nodes, the origin included.
    pub live: usize,
    /// Live nodes that delivered the payload intact.
    pub delivered: usize,
    /// Deliveries beyond the first on any node (must be 0).
    pub extra_deliveries: u64,
    /// Deliveries whose payload differed from what was sent (must be 0).
    pub corrupt_deliveries: u64,
    /// When the last live node delivered, from the start.
    pub completion: Duration,
    /// One node's download of the payload at `rate`: the floor.
    pub floor: Duration,
    /// Payload bytes the origin put on its uplink.
    pub origin_bytes: u64,
    /// The most payload bytes any one node put on its uplink.
    pub max_node_bytes: u64,
    /// Payload bytes received by all nodes over (live nodes - 1) copies.
    pub copy_ratio: f64,
    /// Pieces the origin sent (1 when the payload went whole, by direct push).
    pub pieces: u64,
    /// Whether the origin saw every live node's receipt.
    pub converged: bool,
    /// Events processed.
    pub events: u64,
}

enum Event {
    /// A payload or piece finished arriving at `to`.
    Arrive {
        to: usize,
        from: usize,
        msg: OutboundMessage,
        /// The send's attempt (0 the first; the state retries payloads).
        attempt: u32,
    },
    /// Sending `msg` from `from` to `to` failed.
    Failed {
        from: usize,
        to: usize,
        msg: OutboundMessage,
        attempt: u32,
    },
    /// A hop ACK from `to` reached the origin of a direct send.
    DirectAck {
        origin: usize,
        to: usize,
        id: MessageId,
    },
    /// Control traffic.
    Announce {
        to: usize,
        from: usize,
        entries: Vec<Announce>,
    },
    Want {
        to: usize,
        from: usize,
        id: MessageId,
    },
    WantPieces {
        to: usize,
        from: usize,
        id: MessageId,
        pieces: Vec<u32>,
    },
    /// `node` dies.
    Kill { node: usize },
    /// Every live node learns that `node` is gone.
    Gone { node: usize },
    /// A receipt message from `from` reached `origin`.
    Receipts {
        origin: usize,
        from: usize,
        ids: Vec<MessageId>,
    },
    /// How `from`'s receipt message to `origin` went, back at `from`.
    ReceiptsSent {
        from: usize,
        origin: usize,
        delivered: bool,
    },
    /// Every node's timers.
    Tick,
}

struct Node {
    state: BroadcastState,
    up_free: Duration,
    down_free: Duration,
    sent_bytes: u64,
    received_bytes: u64,
    delivered: u64,
    alive: bool,
}

/// How often every node's timers run: a node's broadcast timer runs at its
/// short tick (20 ms) while anything waits on it.
const TICK: Duration = Duration::from_millis(20);

/// Node `i`'s settings: only the origin keeps the payload to serve pulls (so
/// repairs come from it); N copies would not fit in the simulating process.
fn node_config(cfg: &SimConfig, i: usize) -> BroadcastConfig {
    let mut c = cfg.broadcast.clone();
    if i == 0 {
        c.store_bytes = c.store_bytes.max(2 * cfg.payload_bytes + (1 << 20));
    }
    c
}

/// The simulation.
struct Sim {
    cfg: SimConfig,
    start: Instant,
    nodes: Vec<Node>,
    ids: Vec<NodeId>,
    index: std::collections::HashMap<NodeId, usize>,
    queue: BinaryHeap<Reverse<(Duration, u64)>>,
    events: std::collections::HashMap<u64, Event>,
    seq: u64,
    now: Duration,
    payload: Bytes,
    crc: u32,
    rng: StdRng,
    last_delivery: Duration,
    corrupt: u64,
    converged: bool,
    done: bool,
    pieces: u64,
}

/// Runs one broadcast from node 0 to all nodes.
pub fn run(cfg: &SimConfig) -> SimReport {
    let mut sim = Sim::new(cfg.clone());
    sim.start_broadcast();
    sim.run_events();
    sim.report()
}

impl Sim {
    fn new(cfg: SimConfig) -> Self {
        let start = Instant::now();
        // "sim-N" is always a valid id; a random one stands in if not.
        let ids: Vec<NodeId> = (0..cfg.nodes)
            .map(|i| NodeId::parse(&format!("sim-{i:05}")).unwrap_or_else(|_| NodeId::random()))
            .collect();
        let nodes = ids
            .iter()
            .enumerate()
            .map(|(i, id)| Node {
                state: BroadcastState::new(id.clone(), node_config(&cfg, i)),
                up_free: Duration::ZERO,
                down_free: Duration::ZERO,
                sent_bytes: 0,
                received_bytes: 0,
                delivered: 0,
                alive: !cfg.dead.contains(&i) || i == 0,
            })
            .collect();
        let payload: Bytes = (0..cfg.payload_bytes)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
            .collect::<Vec<u8>>()
            .into();
        let crc = crc32fast::hash(&payload);
        Self {
            index: ids
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, id)| (id, i))
                .collect(),
            rng: StdRng::seed_from_u64(cfg.seed),
            cfg,
            start,
            nodes,
            ids,
            queue: BinaryHeap::new(),
            events: std::collections::HashMap::new(),
            seq: 0,
            now: Duration::ZERO,
            payload,
            crc,
            last_delivery: Duration::ZERO,
            corrupt: 0,
            converged: false,
            done: false,
            pieces: 0,
        }
    }

    fn at(&self, t: Duration) -> Instant {
        self.start + t
    }

    fn push(&mut self, t: Duration, e: Event) {
        self.seq += 1;
        self.queue.push(Reverse((t, self.seq)));
        self.events.insert(self.seq, e);
    }

    fn start_broadcast(&mut self) {
        let now = self.at(Duration::ZERO);
        // Every node knows every other up from the start (for digests).
        let ids = self.ids.clone();
        for (i, n) in self.nodes.iter_mut().enumerate() {
            for (k, id) in ids.iter().enumerate() {
                if k != i {
                    n.state.on_member_up(id, 1, now);
                }
            }
        }
        let msg = self.nodes[0]
            .state
            .message("sim", self.payload.clone(), 16, 0);
        let ids = self.ids.clone();
        let deadline = now + self.cfg.limit;
        let actions = self.nodes[0]
            .state
            .originate(msg, &ids, now, deadline, &mut self.rng)
            .unwrap_or_default();
        self.pieces = actions
            .iter()
            .filter(|a| matches!(a, Action::SendPiece { .. }))
            .count() as u64;
        self.run_actions(0, actions);
        self.push(TICK, Event::Tick);
        for &(node, at) in &self.cfg.kills.clone() {
            if node != 0 && node < self.nodes.len() {
                self.push(at, Event::Kill { node });
                self.push(at + self.cfg.detect_after, Event::Gone { node });
            }
        }
    }

    fn run_events(&mut self) {
        let tick = TICK;
        while let Some(Reverse((t, seq))) = self.queue.pop() {
            if t > self.cfg.limit || self.done {
                break;
            }
            self.now = t;
            let Some(e) = self.events.remove(&seq) else {
                continue;
            };
            match e {
                Event::Tick => {
                    let now = self.at(t);
                    // The live nodes (a node's own id among them, when
                    // drawn, sends nothing: it is not a member it knows).
                    let peers: Vec<NodeId> = (0..self.nodes.len())
                        .filter(|&k| self.nodes[k].alive)
                        .map(|k| self.ids[k].clone())
                        .collect();
                    for i in 0..self.nodes.len() {
                        if self.nodes[i].alive {
                            let st = &mut self.nodes[i].state;
                            let mut a = st.tick(now);
                            a.extend(st.digest_tick(&peers, now, &mut self.rng));
                            self.run_actions(i, a);
                        }
                    }
                    self.push(t + tick, Event::Tick);
                }
                e => self.handle(e),
            }
        }
    }

    fn report(&self) -> SimReport {
        let live: Vec<&Node> = self.nodes.iter().filter(|n| n.alive).collect();
        let received: u64 = self.nodes.iter().map(|n| n.received_bytes).sum();
        let ideal = (live.len().saturating_sub(1) as u64 * self.cfg.payload_bytes).max(1);
        SimReport {
            live: live.len(),
            delivered: live.iter().filter(|n| n.delivered >= 1).count(),
            extra_deliveries: live.iter().map(|n| n.delivered.saturating_sub(1)).sum(),
            corrupt_deliveries: self.corrupt,
            completion: self.last_delivery,
            floor: Duration::from_secs_f64(self.cfg.payload_bytes as f64 / self.cfg.rate),
            origin_bytes: self.nodes[0].sent_bytes,
            max_node_bytes: self.nodes.iter().map(|n| n.sent_bytes).max().unwrap_or(0),
            copy_ratio: received as f64 / ideal as f64,
            pieces: self.pieces.max(1),
            converged: self.converged,
            events: self.seq,
        }
    }
}
