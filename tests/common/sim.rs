//! A simulated cluster: membership agents on the in-memory network, under a
//! paused tokio clock on a current-thread runtime, so runs are deterministic.

use std::{collections::HashMap, sync::Arc, time::Duration};

use gsp::{
    core::{
        ids::NodeId,
        membership::{
            config::MembershipConfig,
            events::{EventKind, MembershipEvent},
            record::{MemberRecord, MemberState},
        },
    },
    runtime::membership::{AgentConfig, MembershipAgent},
    transport::membership::memory::MemoryNetwork,
};
use tokio::sync::broadcast::error::TryRecvError;

/// One simulated node.
pub struct SimNode {
    pub id: NodeId,
    pub addr: String,
    pub domain: String,
    pub agent: Option<MembershipAgent>,
    events: Option<tokio::sync::broadcast::Receiver<MembershipEvent>>,
    pub seen: Vec<MembershipEvent>,
}

/// A cluster on a [`MemoryNetwork`].
pub struct Sim {
    pub net: MemoryNetwork,
    pub nodes: Vec<SimNode>,
    pub config: MembershipConfig,
    seed: u64,
}

pub fn addr(i: usize) -> String {
    format!("10.0.{}.{}:50005", i / 250, i % 250 + 1)
}

impl Sim {
    /// `n` nodes (not started) with `config`, RNGs derived from `seed`.
    pub fn new(seed: u64, n: usize, config: MembershipConfig) -> Self {
        let nodes = (0..n)
            .map(|i| SimNode {
                id: NodeId::parse(&format!("node-{i:03}")).unwrap(),
                addr: addr(i),
                domain: "default".into(),
                agent: None,
                events: None,
                seen: Vec::new(),
            })
            .collect();
        Self {
            net: MemoryNetwork::new(seed),
            nodes,
            config,
            seed,
        }
    }

    pub fn interval(&self) -> Duration {
        self.config.gossip_interval
    }

    /// Starts node `i` with `incarnation`, joining through `seeds`.
    pub fn start(&mut self, i: usize, incarnation: u64, seeds: &[usize]) {
        let n = &mut self.nodes[i];
        let record = MemberRecord::new(
            n.id.clone(),
            format!("n{i}"),
            n.addr.clone(),
            n.domain.clone(),
            incarnation,
        );
        let config = AgentConfig {
            membership: gsp::core::membership::config::MembershipConfig {
                join_backoff_max: Duration::from_secs(5),
                ..self.config.clone()
            },
            seeds: seeds.iter().map(|s| addr(*s)).collect(),
            rejoin: Vec::new(),
            run_loops: true,
            rng_seed: Some(
                self.seed
                    .wrapping_mul(1000)
                    .wrapping_add(i as u64)
                    .wrapping_add(incarnation),
            ),
            record_auth: None,
        };
        let agent = MembershipAgent::start(config, record, Arc::new(self.net.transport(&n.addr)));
        self.net.register(&n.addr, Arc::new(agent.clone()));
        n.events = Some(agent.subscribe());
        n.agent = Some(agent);
    }

    /// Starts every node, all joining through node 0.
    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i, 1, if i == 0 { &[] } else { &[0] });
        }
    }

    /// Crashes node `i`: it stops answering and stops its loops, without a word.
    pub async fn crash(&mut self, i: usize) {
        self.net.crash(&self.nodes[i].addr);
        if let Some(a) = self.nodes[i].agent.take() {
            a.stop().await;
        }
        self.nodes[i].events = None;
    }

    /// Lets `rounds` gossip intervals pass, collecting events.
    pub async fn run(&mut self, rounds: u32) {
        for _ in 0..rounds {
            tokio::time::sleep(self.interval()).await;
            self.drain();
        }
    }

    fn drain(&mut self) {
        for n in &mut self.nodes {
            if let Some(rx) = n.events.as_mut() {
                loop {
                    match rx.try_recv() {
                        Ok(e) => n.seen.push(e),
                        Err(TryRecvError::Lagged(k)) => panic!("event receiver lagged by {k}"),
                        Err(_) => break,
                    }
                }
            }
        }
    }

    /// Node `i`'s view: state of every member it lists.
    pub fn view(&self, i: usize) -> HashMap<NodeId, MemberState> {
        self.nodes[i]
            .agent
            .as_ref()
            .map(|a| {
                a.with_state(|s| {
                    s.all_records()
                        .into_iter()
                        .map(|r| (r.id.clone(), r.state))
                        .collect()
                })
            })
            .unwrap_or_default()
    }

    /// Indices of running nodes.
    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].agent.is_some())
            .collect()
    }

    /// Runs until `pred` holds, checking each round; returns the rounds it took,
    /// or `None` after `max_rounds`.
    pub async fn until(
        &mut self,
        max_rounds: u32,
        mut pred: impl FnMut(&Sim) -> bool,
    ) -> Option<u32> {
        for r in 0..=max_rounds {
            if pred(self) {
                return Some(r);
            }
            self.run(1).await;
        }
        None
    }

    /// Whether every running node sees every running node alive (and nothing else up).
    pub fn converged(&self) -> bool {
        let running = self.running();
        running.iter().all(|&i| {
            let v = self.view(i);
            running
                .iter()
                .all(|&j| v.get(&self.nodes[j].id) == Some(&MemberState::Alive))
                && v.values().filter(|s| s.is_up()).count() == running.len()
        })
    }

    /// Whether every running node lists node `k` in `state` (or not at all when `None`).
    pub fn all_see(&self, k: usize, state: Option<MemberState>) -> bool {
        let id = &self.nodes[k].id;
        self.running()
            .iter()
            .filter(|&&i| i != k)
            .all(|&i| self.view(i).get(id).copied() == state)
    }

    /// Events of `kind` about node `about`, seen by any node.
    pub fn events_about(&self, about: usize, kind: EventKind) -> usize {
        let id = &self.nodes[about].id;
        self.nodes
            .iter()
            .flat_map(|n| n.seen.iter())
            .filter(|e| &e.id == id && e.kind == kind)
            .count()
    }

    /// Every event of `kind`, seen by any node.
    pub fn events_of(&self, kind: EventKind) -> Vec<&MembershipEvent> {
        self.nodes
            .iter()
            .flat_map(|n| n.seen.iter())
            .filter(|e| e.kind == kind)
            .collect()
    }
}
