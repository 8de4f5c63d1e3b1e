//! Membership at 1,000 to 10,000 nodes, simulated without tokio: a
//! discrete-event loop drives every node's pure core (the SWIM cycle of
//! [`crate::core::membership::swim`], the push-pull steps and answers of
//! [`crate::core::membership::exchange`]) over a network with a one-way
//! latency, jitter and loss, under a simulated clock and seeded RNGs. The
//! same run gives the same figures.
//!
//! The cycle's actions (its rounds and its upkeep: joining through a seed
//! with backoff, verification probes, urgent pushes, anti-entropy,
//! reconnecting to dead members) are carried out as a node's runtime does,
//! over simulated calls: the policy is the core's, in both. Not modelled:
//! the per-host call rates, DNS seeds, signatures (with
//! `membership.records_signed` every record counts as checked, as under
//! mutual TLS), and message sizes (bytes are estimated from one record's and
//! one digest's encoded size).
//!
//! Scenario: every node starts at once and joins through node 0; the run
//! counts rounds until every node lists every node alive, measures idle
//! traffic, then crashes `crash` nodes and counts rounds until every live node
//! has them dead. Then `partition` running nodes are cut off from the rest
//! until the rest lists them all down, and the run counts rounds from the
//! heal until every running node lists every running node alive again (the
//! reconnects' work: nobody probes or gossips with members it lists dead).

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    time::{Duration, Instant},
};

use rand::{Rng as _, SeedableRng as _, rngs::StdRng};

use crate::core::{
    ids::NodeId,
    membership::{Membership, config::MembershipConfig, record::MemberRecord},
    now::Now,
};

mod events;
mod net;
mod report;
use net::{Ev, SimNode};
pub use report::MembershipSimReport;

/// Settings of one simulation.
#[derive(Debug, Clone)]
pub struct MembershipSimConfig {
    /// Nodes.
    pub nodes: usize,
    /// One-way latency (each message also waits up to as much again, at random).
    pub latency: Duration,
    /// Chance that a call or push is lost, 0 to 1.
    pub loss: f64,
    /// Nodes crashed once the cluster has converged.
    pub crash: usize,
    /// Running nodes cut off from the rest after the crashes were detected,
    /// until the rest lists them down; then the partition heals.
    pub partition: usize,
    /// Rounds each phase may take before the run gives up on it.
    pub max_rounds: u32,
    /// Rounds over which idle traffic is measured.
    pub idle_rounds: u32,
    /// Seed of every RNG.
    pub seed: u64,
    /// Protocol settings (`max_members` is raised to fit the cluster).
    pub membership: MembershipConfig,
}

impl Default for MembershipSimConfig {
    fn default() -> Self {
        Self {
            nodes: 1000,
            latency: Duration::from_millis(1),
            loss: 0.0,
            crash: 10,
            partition: 0,
            max_rounds: 200,
            idle_rounds: 20,
            seed: 1,
            membership: MembershipConfig::with_interval(Duration::from_millis(200)),
        }
    }
}

/// The simulated cluster.
pub(crate) struct Sim {
    pub(crate) cfg: MembershipSimConfig,
    pub(crate) nodes: Vec<SimNode>,
    pub(crate) by_addr: HashMap<String, usize>,
    /// Events due, soonest first (one heap: a side table of events by id
    /// held twice the memory at the peak of a 10,000-node join).
    queue: BinaryHeap<Due>,
    seq: u64,
    pub(crate) clock: Duration,
    t0: Instant,
    pub(crate) rng: StdRng,
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
    pub(crate) record_bytes: u64,
    pub(crate) digest_bytes: u64,
    pub(crate) false_positives: u64,
    pub(crate) false_suspicions: u64,
    processed: u64,
    /// Per node, its side of the partition while one is in force (empty:
    /// none).
    pub(crate) cut: Vec<bool>,
}

/// Runs one simulation.
pub fn run(cfg: &MembershipSimConfig) -> MembershipSimReport {
    let mut sim = Sim::new(cfg.clone());
    let round = cfg.membership.gossip_interval;
    for i in 0..cfg.nodes {
        sim.start(i);
    }
    let join_rounds = sim.rounds_until(("join", cfg.max_rounds), round, Sim::converged);
    // Idle means after the join's own traffic (retransmissions, the push-pulls
    // of the churn rounds) has died down: every update queue empty.
    let settle_rounds = join_rounds.and_then(|_| {
        sim.rounds_until(("settle", cfg.max_rounds), round, |s| {
            s.nodes.iter().all(|n| !n.m.has_pending_updates())
        })
    });
    let (m0, b0) = (sim.messages, sim.bytes);
    sim.advance(round * cfg.idle_rounds);
    let per = (cfg.nodes as f64 * f64::from(cfg.idle_rounds.max(1))).max(1.0);
    let idle_messages = (sim.messages - m0) as f64 / per;
    let idle_bytes = (sim.bytes - b0) as f64 / per;
    let crashed: Vec<usize> = if join_rounds.is_some() && cfg.crash > 0 {
        (1..=cfg.crash.min(cfg.nodes.saturating_sub(2)))
            .map(|k| k * (cfg.nodes - 1) / (cfg.crash + 1) + 1)
            .collect()
    } else {
        Vec::new()
    };
    for &i in &crashed {
        sim.nodes[i].up = false;
    }
    let detection_rounds = if crashed.is_empty() {
        None
    } else {
        sim.rounds_until(("detect", cfg.max_rounds), round, |s| s.all_dead(&crashed))
    };
    let (false_positives, false_suspicions) = (sim.false_positives, sim.false_suspicions);
    let (split_rounds, heal_rounds) = if cfg.partition > 0 && join_rounds.is_some() {
        sim.partition(cfg.partition, round)
    } else {
        (None, None)
    };
    MembershipSimReport {
        nodes: cfg.nodes,
        join_rounds,
        settle_rounds,
        idle_bytes_per_node_per_round: idle_bytes,
        idle_messages_per_node_per_round: idle_messages,
        crashed: crashed.len(),
        detection_rounds,
        false_positives,
        false_suspicions,
        partitioned: if split_rounds.is_some() {
            cfg.partition
        } else {
            0
        },
        split_rounds,
        heal_rounds,
        admitted_by_probe: sim
            .nodes
            .iter()
            .map(|n| n.m.counters().candidates_verified)
            .sum(),
        admitted_by_vouch: sim
            .nodes
            .iter()
            .map(|n| n.m.counters().candidates_vouched)
            .sum(),
        admitted_signed: sim
            .nodes
            .iter()
            .map(|n| n.m.counters().admitted_signed)
            .sum(),
        messages: sim.messages,
        events: sim.processed,
        simulated_secs: sim.clock.as_secs_f64(),
    }
}

impl Sim {
    fn new(mut cfg: MembershipSimConfig) -> Self {
        cfg.membership.max_members = cfg.membership.max_members.max(cfg.nodes + 16);
        cfg.membership.max_candidates = cfg.membership.max_candidates.max(cfg.nodes);
        let t0 = Instant::now();
        let mut by_addr = HashMap::new();
        let nodes: Vec<SimNode> = (0..cfg.nodes)
            .map(|i| {
                let addr = format!("10.{}.{}.{}:7946", i / 65_536, i / 256 % 256, i % 256);
                by_addr.insert(addr.clone(), i);
                // Ids that differ from the first bytes, as real (UUID) ids do.
                let mix = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let id = NodeId::parse(&format!("{mix:016x}-sim-{i}"))
                    .unwrap_or_else(|_| NodeId::random());
                let record = MemberRecord::new(id, format!("n{i}"), addr, "default".into(), 1);
                let now = Now {
                    instant: t0,
                    unix_ns: BASE_UNIX_NS,
                };
                SimNode {
                    m: Membership::new(cfg.membership.clone(), record, now),
                    rng: StdRng::seed_from_u64(
                        cfg.seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
                    ),
                    up: true,
                }
            })
            .collect();
        let (record_bytes, digest_bytes) = net::wire_sizes(&nodes[0].m);
        Self {
            rng: StdRng::seed_from_u64(cfg.seed),
            cfg,
            nodes,
            by_addr,
            queue: BinaryHeap::new(),
            seq: 0,
            clock: Duration::ZERO,
            t0,
            messages: 0,
            bytes: 0,
            record_bytes,
            digest_bytes,
            false_positives: 0,
            false_suspicions: 0,
            processed: 0,
            cut: Vec::new(),
        }
    }

    /// The current time, as the cores take it.
    pub(crate) fn now(&self) -> Now {
        Now {
            instant: self.t0 + self.clock,
            unix_ns: BASE_UNIX_NS + i64::try_from(self.clock.as_nanos()).unwrap_or(0),
        }
    }

    /// Schedules `ev` after `delay`.
    pub(crate) fn at(&mut self, delay: Duration, ev: Ev) {
        self.seq += 1;
        self.queue.push(Due {
            at: self.clock + delay,
            seq: self.seq,
            ev: Box::new(ev),
        });
    }

    /// Schedules `ev` at the simulated instant `when` (now if already past).
    pub(crate) fn at_instant(&mut self, when: Instant, ev: Ev) {
        let delay = when.saturating_duration_since(self.t0 + self.clock);
        self.at(delay, ev);
    }

    /// A one-way network delay.
    pub(crate) fn delay(&mut self) -> Duration {
        let l = self.cfg.latency;
        l + l.mul_f64(self.rng.random::<f64>())
    }

    /// Whether a message is lost.
    pub(crate) fn lost(&mut self) -> bool {
        self.cfg.loss > 0.0 && self.rng.random::<f64>() < self.cfg.loss
    }

    /// Processes events up to `clock + d`.
    fn advance(&mut self, d: Duration) {
        let until = self.clock + d;
        while self.queue.peek().is_some_and(|d| d.at <= until) {
            let Some(due) = self.queue.pop() else {
                break;
            };
            self.clock = due.at;
            self.processed += 1;
            if self.processed.is_multiple_of(PROGRESS_EVERY) {
                let (events, at) = (self.processed, self.clock.as_millis());
                tracing::info!(events, simulated_ms = at, "membership sim: progress");
            }
            self.dispatch(*due.ev);
        }
        self.clock = until;
    }

    /// Rounds (checked once a round) until `pred` holds, at most `max`.
    /// Logs (at info, `GSP_LOG=gsp::bench=info`) every tenth round, so a
    /// long run at 10,000 nodes shows where it is.
    fn rounds_until(
        &mut self,
        (phase, max): (&str, u32),
        round: Duration,
        pred: impl Fn(&Self) -> bool,
    ) -> Option<u32> {
        for r in 0..=max {
            if pred(self) {
                tracing::info!(
                    phase,
                    rounds = r,
                    events = self.processed,
                    "membership sim: done"
                );
                return Some(r);
            }
            if r % 10 == 0 {
                tracing::info!(phase, rounds = r, events = self.processed, "membership sim");
            }
            self.advance(round);
        }
        None
    }

    /// Cuts off the last `n` running nodes until the rest lists them down,
    /// then heals the partition: rounds until the split was seen, and
    /// from the heal until every running node lists every running node
    /// alive.
    fn partition(&mut self, n: usize, round: Duration) -> (Option<u32>, Option<u32>) {
        let max = self.cfg.max_rounds;
        let mut cut = vec![false; self.nodes.len()];
        let running: Vec<usize> = (1..self.nodes.len())
            .filter(|&i| self.nodes[i].up)
            .collect();
        for &i in running
            .iter()
            .rev()
            .take(n.min(running.len().saturating_sub(1)))
        {
            cut[i] = true;
        }
        self.cut = cut;
        let split = self.rounds_until(("split", max), round, Self::split_seen);
        self.cut = Vec::new();
        let heal = split.and_then(|_| self.rounds_until(("heal", max), round, Self::converged));
        (split, heal)
    }

    /// Whether every running node of the rest lists every cut-off node
    /// down (as it would crashed ones).
    fn split_seen(&self) -> bool {
        let cut: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.cut[i] && self.nodes[i].up)
            .collect();
        self.all_dead_on(&cut, |i| !self.cut[i])
    }

    /// Whether every running node lists exactly the running nodes as up, all alive.
    fn converged(&self) -> bool {
        let running = self.nodes.iter().filter(|n| n.up).count();
        let ids: Vec<&NodeId> = self
            .nodes
            .iter()
            .filter(|n| n.up)
            .map(|n| &n.m.local().id)
            .collect();
        // Counts first (cheap), names only once every count is right.
        if !self
            .nodes
            .iter()
            .filter(|n| n.up)
            .all(|n| n.m.up_count() == running)
        {
            return false;
        }
        self.nodes.iter().filter(|n| n.up).all(|n| {
            ids.iter().all(|id| {
                n.m.get(id)
                    .is_some_and(|r| r.state == crate::core::membership::record::MemberState::Alive)
            })
        })
    }

    /// Whether every running node lists every node of `crashed` as dead or not at all.
    fn all_dead(&self, crashed: &[usize]) -> bool {
        self.all_dead_on(crashed, |_| true)
    }

    /// Whether every running node `on` accepts lists every node of `gone`
    /// as dead or not at all.
    fn all_dead_on(&self, gone: &[usize], on: impl Fn(usize) -> bool) -> bool {
        let ids: Vec<NodeId> = gone
            .iter()
            .map(|&i| self.nodes[i].m.local().id.clone())
            .collect();
        self.nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| n.up && on(*i))
            .all(|(_, n)| {
                ids.iter()
                    .all(|id| n.m.get(id).is_none_or(|r| !r.state.is_up()))
            })
    }
}

/// An event and when it is due; ordered so that the heap pops the soonest
/// (then the first scheduled) first.
struct Due {
    at: Duration,
    seq: u64,
    /// Boxed: the heap moves entries on every push and pop.
    ev: Box<Ev>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        Reverse((self.at, self.seq)).cmp(&Reverse((other.at, other.seq)))
    }
}

/// The simulated wall clock starts here (2023-11-14), so versions look real.
const BASE_UNIX_NS: i64 = 1_700_000_000_000_000_000;
/// Events between two progress lines (at 10,000 nodes a round takes minutes).
const PROGRESS_EVERY: u64 = 10_000_000;
