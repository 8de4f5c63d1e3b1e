//! Exactly once across a restart: a node that delivered a broadcast, restarts
//! with the same data dir and is handed the broadcast again within `--seen-ttl`
//! (a sender's retry, a pull or a swarm piece in flight across the restart)
//! refuses it as a duplicate. Without a data dir it would deliver it again.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::{path::Path, sync::Arc, time::Duration};

use bytes::Bytes;
use common::sim::Sim;
use gsp::{
    core::{
        ids::NodeId,
        membership::config::MembershipConfig,
        message::{InboundMessage, OutboundMessage},
    },
    runtime::{
        broadcast::{BroadcastEngine, EngineConfig},
        membership::MembershipAgent,
    },
    transport::{
        broadcast::memory::MemoryBroadcast,
        data_plane::sink::{DiscardSink, Verdict},
    },
};

fn engine(sim: &Sim, i: usize, agent: MembershipAgent, dir: Option<&Path>) -> BroadcastEngine {
    let node = &sim.nodes[i];
    BroadcastEngine::start(
        EngineConfig {
            rng_seed: Some(7),
            seen_dir: dir.map(Path::to_path_buf),
            ..EngineConfig::default()
        },
        agent,
        Arc::new(MemoryBroadcast::new(
            sim.net.clone(),
            node.id.clone(),
            &node.addr,
        )),
        Arc::new(DiscardSink),
    )
}

/// A broadcast from `origin` as its first hop carries it.
fn relayed(origin: &NodeId) -> InboundMessage {
    let mut m = OutboundMessage::new(origin.clone(), "t", Bytes::from_static(b"once"), 0);
    m.meta.hops = 1;
    m.meta.ttl = 8;
    InboundMessage {
        meta: m.meta,
        sender: origin.clone(),
        payload: m.payload,
        crc32: m.crc32,
    }
}

async fn restart_and_redeliver(dir: Option<&Path>) -> (Verdict, Verdict, usize) {
    let mut sim = Sim::new(3, 2, MembershipConfig::for_test());
    sim.start_all();
    assert!(sim.until(60, Sim::converged).await.is_some());
    let origin = sim.nodes[0].id.clone();
    let agent = sim.nodes[1].agent.clone().unwrap();
    let msg = relayed(&origin);

    let first = engine(&sim, 1, agent.clone(), dir);
    let verdict = first.sink().deliver(msg.clone());
    first.stop().await;

    let second = engine(&sim, 1, agent, dir);
    let mut sub = second.subscribe(None).unwrap();
    let again = second.sink().deliver(msg);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut delivered = 0;
    while sub.messages.try_recv().is_ok() {
        delivered += 1;
    }
    second.stop().await;
    (verdict, again, delivered)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_restarted_node_refuses_what_it_delivered_before_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (first, again, delivered) = restart_and_redeliver(Some(dir.path())).await;
    assert_eq!(first, Verdict::Delivered);
    assert_eq!(
        again,
        Verdict::Duplicate,
        "delivered again after the restart"
    );
    assert_eq!(delivered, 0);
    assert!(dir.path().join("seen.log").exists());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn without_a_data_dir_the_restart_forgets() {
    let (first, again, delivered) = restart_and_redeliver(None).await;
    assert_eq!(first, Verdict::Delivered);
    assert_eq!(again, Verdict::Delivered);
    assert_eq!(delivered, 1);
}
