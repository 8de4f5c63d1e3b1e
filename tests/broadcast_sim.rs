//! Broadcast engines on the in-memory network, with real membership agents:
//! deterministic (seeded RNGs, paused clock, one thread) and fast.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::{collections::HashMap, sync::Arc, time::Duration};

use bytes::Bytes;
use common::sim::Sim;
use gsp::{
    core::{
        ack_tracker::{Completion, Ending},
        broadcast::config::BroadcastConfig,
        ids::MessageId,
        membership::config::MembershipConfig,
    },
    runtime::broadcast::{BroadcastEngine, EngineConfig, Progress, SendOptions, Subscription},
    transport::{broadcast::memory::MemoryBroadcast, data_plane::sink::DiscardSink},
};

struct Cluster {
    sim: Sim,
    engines: Vec<Option<BroadcastEngine>>,
    subs: Vec<Option<Subscription>>,
    /// Deliveries per node: message id -> count.
    got: Vec<HashMap<MessageId, u32>>,
}

impl Cluster {
    async fn new(seed: u64, n: usize, broadcast: BroadcastConfig) -> Self {
        let mut sim = Sim::new(seed, n, MembershipConfig::for_test());
        sim.net.set_delay(Duration::from_millis(2));
        sim.start_all();
        assert!(
            sim.until(60, Sim::converged).await.is_some(),
            "no convergence"
        );
        let mut engines = Vec::new();
        let mut subs = Vec::new();
        for (i, node) in sim.nodes.iter().enumerate() {
            let agent = node.agent.clone().unwrap();
            let engine = BroadcastEngine::start(
                EngineConfig {
                    broadcast: broadcast.clone(),
                    rng_seed: Some(seed * 100 + i as u64),
                    ..EngineConfig::default()
                },
                agent,
                Arc::new(MemoryBroadcast::new(
                    sim.net.clone(),
                    node.id.clone(),
                    &node.addr,
                )),
                Arc::new(DiscardSink),
            );
            sim.net.register_sink(&node.addr, engine.sink());
            subs.push(Some(engine.subscribe(None).unwrap()));
            engines.push(Some(engine));
        }
        Self {
            got: vec![HashMap::new(); n],
            sim,
            engines,
            subs,
        }
    }

    fn collect(&mut self) {
        for (i, sub) in self.subs.iter_mut().enumerate() {
            if let Some(sub) = sub {
                while let Ok(d) = sub.messages.try_recv() {
                    *self.got[i].entry(d.id).or_default() += 1;
                }
            }
        }
    }

    async fn crash(&mut self, i: usize) {
        self.sim.crash(i).await;
        if let Some(e) = self.engines[i].take() {
            e.stop().await;
        }
        self.subs[i] = None;
    }

    async fn run(&mut self, d: Duration) {
        let end = tokio::time::Instant::now() + d;
        while tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(10)).await;
            self.collect();
        }
    }

    fn send(
        &self,
        from: usize,
        size: usize,
        timeout: Duration,
    ) -> gsp::runtime::broadcast::SendHandle {
        self.engines[from]
            .as_ref()
            .unwrap()
            .send(
                Bytes::from(vec![7u8; size]),
                &SendOptions {
                    timeout,
                    ..SendOptions::default()
                },
            )
            .unwrap()
    }
}

/// Drains a handle's progress until its final account.
async fn done(h: &mut gsp::runtime::broadcast::SendHandle) -> Completion<()> {
    loop {
        if let Progress::Done(c) = h.progress.recv().await.unwrap() {
            return c;
        }
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_relay_killed_mid_broadcast_does_not_stop_the_others() {
    let n = 10;
    let mut c = Cluster::new(11, n, BroadcastConfig::default()).await;
    // The origin cannot reach nodes 4..9 directly: they depend on relays 1..3.
    for k in 4..n {
        c.sim
            .net
            .block(&c.sim.nodes[0].addr, &c.sim.nodes[k].addr, true);
    }
    let mut h = c.send(0, 256 << 10, Duration::from_secs(30));
    // Kill relay 1 as soon as it has the message.
    loop {
        tokio::time::sleep(Duration::from_millis(1)).await;
        c.collect();
        if c.got[1].contains_key(&h.id) {
            break;
        }
    }
    c.crash(1).await;
    let end = done(&mut h).await;
    c.collect();
    for k in (0..n).filter(|k| *k != 1) {
        assert_eq!(c.got[k].get(&h.id), Some(&1), "node {k}");
    }
    assert_eq!(end.ending, Ending::Converged, "missing {:?}", end.missing);
    let one = &c.sim.nodes[1].id;
    assert!(
        end.departed.contains(one) || end.receipts.iter().any(|r| &r.node == one),
        "the killed relay is neither acked nor departed"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_partitioned_node_gets_what_it_missed_after_the_partition_heals() {
    let n = 8;
    let mut c = Cluster::new(12, n, BroadcastConfig::default()).await;
    let cut = c.sim.nodes[7].addr.clone();
    c.sim.net.isolate(&cut, true);
    let mut ids = Vec::new();
    for k in 0..5 {
        let mut h = c.send(k % 3, 1000 + k * 5000, Duration::from_secs(2));
        let end = done(&mut h).await;
        // Node 7 is waited for and reported missing, or (once declared dead)
        // reported departed, or (dead before the send) not expected at all.
        let seven = &c.sim.nodes[7].id;
        let reported = (end.ending == Ending::TimedOut && end.missing.contains(seven))
            || end.departed.contains(seven)
            || !h.expected.contains(seven);
        assert!(
            reported,
            "node 7 unaccounted for: {:?} missing {:?} departed {:?}",
            end.ending, end.missing, end.departed
        );
        ids.push(h.id);
    }
    // Long enough that periodic digests (the last 10 s) no longer cover them.
    c.run(Duration::from_secs(15)).await;
    assert!(ids.iter().all(|id| !c.got[7].contains_key(id)));
    c.sim.net.isolate(&cut, false);
    c.run(Duration::from_secs(30)).await;
    for id in &ids {
        for k in 0..n {
            assert_eq!(c.got[k].get(id), Some(&1), "node {k} message {id}");
        }
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn past_the_seen_ttl_a_partitioned_node_is_reported_missing_and_not_caught_up() {
    let n = 6;
    let config = BroadcastConfig {
        seen_ttl: Duration::from_secs(3),
        store_ttl: Duration::from_secs(3),
        ..BroadcastConfig::default()
    };
    let mut c = Cluster::new(13, n, config).await;
    let cut = c.sim.nodes[5].addr.clone();
    c.sim.net.isolate(&cut, true);
    let mut h = c.send(0, 4000, Duration::from_secs(1));
    let end = done(&mut h).await;
    assert_eq!(end.ending, Ending::TimedOut);
    assert_eq!(end.missing, vec![c.sim.nodes[5].id.clone()]);
    c.run(Duration::from_secs(10)).await;
    c.sim.net.isolate(&cut, false);
    c.run(Duration::from_secs(30)).await;
    assert!(!c.got[5].contains_key(&h.id), "delivered past the seen TTL");
    for k in 0..5 {
        assert_eq!(c.got[k].get(&h.id), Some(&1), "node {k}");
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn tables_stay_bounded_under_a_flood() {
    let n = 4;
    let config = BroadcastConfig {
        seen_capacity: 500,
        store_bytes: 256 << 10,
        max_tracked: 100,
        ..BroadcastConfig::default()
    };
    let mut c = Cluster::new(14, n, config).await;
    let e = c.engines[0].clone().unwrap();
    let mut refused = 0;
    for _ in 0..2000 {
        match e.send(Bytes::from(vec![1u8; 1024]), &SendOptions::default()) {
            Ok(_) => {}
            Err(_) => refused += 1,
        }
        if refused == 0 {
            tokio::task::yield_now().await;
        }
    }
    assert!(refused > 0, "the origin table should have filled up");
    c.run(Duration::from_secs(15)).await;
    for (k, engine) in c.engines.iter().enumerate() {
        let (seen, _, stored_bytes, pulls, tracked) = engine.as_ref().unwrap().table_sizes();
        assert!(seen <= 500, "node {k}: {seen} ids remembered");
        assert!(
            stored_bytes <= 256 << 10,
            "node {k}: {stored_bytes} bytes stored"
        );
        assert!(pulls <= 8192, "node {k}: {pulls} pulls");
        assert!(tracked <= 100, "node {k}: {tracked} tracked");
    }
}

fn timer_runs(c: &Cluster, i: usize) -> u64 {
    c.engines[i]
        .as_ref()
        .unwrap()
        .stats()
        .timer_runs
        .load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_idle_engine_ticks_once_a_second_and_a_send_wakes_it() {
    let n = 4;
    let mut c = Cluster::new(21, n, BroadcastConfig::default()).await;
    c.run(Duration::from_secs(2)).await;
    let before: Vec<u64> = (0..n).map(|i| timer_runs(&c, i)).collect();
    c.run(Duration::from_secs(10)).await;
    for (i, b) in before.iter().enumerate() {
        let runs = timer_runs(&c, i) - b;
        // 500 at the 20 ms tick; about 10 at the quiet one.
        assert!(
            (8..=13).contains(&runs),
            "node {i}: {runs} timer runs in 10 idle seconds"
        );
    }
    // Work wakes it: a broadcast whose origin tracks receipts converges
    // with its deadline still honoured, and every node delivers it once.
    let mut h = c.send(0, 1 << 10, Duration::from_secs(5));
    let done = done(&mut h).await;
    assert_eq!(done.ending, Ending::Converged);
    c.run(Duration::from_millis(100)).await;
    for i in 1..n {
        assert_eq!(c.got[i].get(&h.id), Some(&1), "node {i}");
    }
}
