//! A liar on the membership plane, over real gRPC on 127.0.0.1:0: forged deaths
//! at absurd and plausible versions, a forged record of the victim itself, and
//! thousands of made-up members in one message. Each was an attack that worked
//! (issue 10); each is now a regression test of what users see.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::time::Duration;

use gsp::{
    core::membership::record::{MAX_COUNTER, MemberRecord, MemberState},
    runtime::node::NodeHandle,
    transport::{
        membership::convert::record_to_pb,
        pb::discovery::{self as dpb, discovery_service_client::DiscoveryServiceClient},
    },
};

async fn cluster(n: usize) -> Vec<NodeHandle> {
    let seed = common::member_node("n0", vec![], "default").await;
    let mut nodes = vec![];
    for i in 1..n {
        let addr = seed.advertise().to_owned();
        nodes.push(common::member_node(&format!("n{i}"), vec![addr], "default").await);
    }
    nodes.insert(0, seed);
    let converged = common::eventually(Duration::from_secs(20), || {
        nodes.iter().all(|x| alive_count(x) == n)
    })
    .await;
    assert!(converged, "the cluster did not converge");
    nodes
}

fn alive_count(n: &NodeHandle) -> usize {
    n.membership().with_state(|s| {
        s.records()
            .filter(|r| r.state == MemberState::Alive)
            .count()
    })
}

fn record_of(at: &NodeHandle, name: &str) -> Option<MemberRecord> {
    at.membership()
        .with_state(|s| s.records().find(|r| r.name == name).cloned())
}

/// Sends `records` to the node at `addr` as an unauthenticated stranger would:
/// one iarnet GossipNodeInfo from a made-up sender.
async fn inject(addr: &str, records: Vec<dpb::PeerNodeInfo>) {
    let mut c = DiscoveryServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
        .max_encoding_message_size(16 << 20);
    c.gossip_node_info(dpb::NodeInfoGossipMessage {
        sender_node_id: "liar".into(),
        sender_address: "127.0.0.1:9".into(),
        sender_domain_id: "default".into(),
        nodes: records,
        message_id: "forged".into(),
        ttl: 5,
        max_hops: 5,
        ..Default::default()
    })
    .await
    .expect("the forged message is well-formed and accepted");
}

/// A victim declared dead by a forger stays (or comes back) alive on every node
/// within a few rounds, and stays so.
async fn victim_survives(nodes: &[NodeHandle], victim: &str) {
    // Let the forgery spread, then require the truth everywhere.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let healed = common::eventually(Duration::from_secs(5), || {
        nodes
            .iter()
            .all(|n| record_of(n, victim).is_some_and(|r| r.state == MemberState::Alive))
    })
    .await;
    assert!(healed, "{victim} was not alive again on every node");
    tokio::time::sleep(Duration::from_secs(1)).await;
    for n in nodes {
        let r = record_of(n, victim).unwrap();
        assert_eq!(r.state, MemberState::Alive, "{victim} on {}", n.advertise());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_death_at_an_absurd_version_does_not_evict_the_victim() {
    let nodes = cluster(3).await;
    let victim = record_of(&nodes[0], "n2").unwrap();
    let mut forged = victim.clone();
    forged.state = MemberState::Dead;
    forged.version.counter = MAX_COUNTER;
    inject(nodes[0].advertise(), vec![record_to_pb(&forged, 1)]).await;
    inject(nodes[1].advertise(), vec![record_to_pb(&forged, 1)]).await;
    victim_survives(&nodes, "n2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_death_at_a_plausible_version_is_refuted() {
    let nodes = cluster(3).await;
    let victim = record_of(&nodes[0], "n2").unwrap();
    let mut forged = victim.clone();
    forged.state = MemberState::Dead;
    forged.version.counter += 1;
    inject(nodes[0].advertise(), vec![record_to_pb(&forged, 1)]).await;
    victim_survives(&nodes, "n2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_record_of_the_victim_itself_is_refuted_past_the_counter_cap() {
    let nodes = cluster(3).await;
    let victim = record_of(&nodes[0], "n2").unwrap();
    let mut forged = victim.clone();
    forged.version.counter = MAX_COUNTER;
    forged.address = "127.0.0.1:9".into();
    inject(nodes[0].advertise(), vec![record_to_pb(&forged, 1)]).await;
    victim_survives(&nodes, "n2").await;
    let restored = common::eventually(Duration::from_secs(5), || {
        nodes
            .iter()
            .all(|n| record_of(n, "n2").unwrap().address == victim.address)
    })
    .await;
    assert!(restored, "the victim's address was not restored everywhere");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_thousand_made_up_members_are_never_listed_and_a_crash_is_still_seen() {
    let mut nodes = cluster(3).await;
    let template = record_of(&nodes[0], "n1").unwrap();
    let fakes: Vec<dpb::PeerNodeInfo> = (0..4000)
        .map(|i| {
            let mut r = template.clone();
            r.id = gsp::core::ids::NodeId::parse(&format!("fake-{i}")).unwrap();
            r.name = format!("fake-{i}");
            // Addresses where nothing answers, on this machine only.
            r.address = format!("127.0.0.1:{}", 1 + i % 5);
            record_to_pb(&r, 1)
        })
        .collect();
    inject(nodes[0].advertise(), fakes).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for n in &nodes {
        assert_eq!(
            n.membership().with_state(|s| s.len()),
            3,
            "made-up members were listed"
        );
        assert_eq!(n.membership().with_state(|s| s.local_health()), 0);
    }
    let counters = nodes[0].membership().with_state(|s| s.counters().clone());
    let per_source = nodes[0]
        .membership()
        .with_state(|s| s.config().max_candidates_per_source);
    assert!(
        counters.candidates_dropped >= 4000 - per_source as u64,
        "one source may have only {per_source} unknown nodes waiting: {counters:?}"
    );
    // A real node joining now is still admitted everywhere.
    let late = common::member_node("late", vec![nodes[0].advertise().to_owned()], "default").await;
    let admitted = common::eventually(Duration::from_secs(10), || {
        nodes
            .iter()
            .all(|n| record_of(n, "late").is_some_and(|r| r.state == MemberState::Alive))
    })
    .await;
    assert!(
        admitted,
        "a real joiner was crowded out by the made-up members"
    );
    drop(late);
    // A real crash (no leave announced) is still detected by the survivors.
    drop(nodes.pop());
    let seen = common::eventually(Duration::from_secs(10), || {
        nodes
            .iter()
            .all(|n| record_of(n, "n2").is_some_and(|r| r.state == MemberState::Dead))
    })
    .await;
    assert!(seen, "the crash was not detected");
}
