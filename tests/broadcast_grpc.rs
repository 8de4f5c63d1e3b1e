//! Broadcast over real gRPC on 127.0.0.1:0: several nodes in one process.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::time::Duration;

use bytes::Bytes;
use gsp::{
    core::ack_tracker::Ending,
    runtime::{
        broadcast::{Progress, SendOptions, SendRefused},
        node::NodeHandle,
    },
};

async fn node(name: &str, seeds: Vec<String>) -> NodeHandle {
    common::member_node(name, seeds, "default").await
}

/// `n` nodes that all see each other alive.
async fn cluster(n: usize) -> Vec<NodeHandle> {
    let seed = node("n0", vec![]).await;
    let addr = seed.advertise().to_owned();
    let mut nodes = vec![seed];
    for i in 1..n {
        nodes.push(node(&format!("n{i}"), vec![addr.clone()]).await);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let up = nodes
            .iter()
            .all(|x| x.membership().with_state(|s| s.up_count()) == n);
        if up {
            return nodes;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} nodes did not converge"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_16_mib_broadcast_arrives_intact_on_all_five_nodes() {
    let nodes = cluster(5).await;
    let mut subs: Vec<_> = nodes
        .iter()
        .map(|n| n.broadcast().subscribe(None).unwrap())
        .collect();
    let payload: Bytes = (0..16u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
        .collect::<Vec<u8>>()
        .into();
    let crc = crc32fast::hash(&payload);
    let mut handle = nodes[2]
        .broadcast()
        .send(
            payload.clone(),
            &SendOptions {
                topic: "big".into(),
                timeout: Duration::from_secs(60),
                ..SendOptions::default()
            },
        )
        .unwrap();
    assert_eq!(handle.expected.len(), 5);
    let mut acked = 0;
    let done = loop {
        match handle.progress.recv().await.unwrap() {
            Progress::Acked { .. } => acked += 1,
            Progress::Done(c) => break c,
        }
    };
    assert_eq!(done.ending, Ending::Converged, "missing {:?}", done.missing);
    assert_eq!(acked, 5);
    for (i, sub) in subs.iter_mut().enumerate() {
        let d = tokio::time::timeout(Duration::from_secs(5), sub.messages.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.id, handle.id, "node {i}");
        assert_eq!(d.topic, "big");
        assert_eq!(d.payload.len(), payload.len(), "node {i}");
        assert_eq!(
            crc32fast::hash(&d.payload),
            crc,
            "node {i}: payload differs"
        );
        assert!(sub.messages.try_recv().is_err(), "node {i} delivered twice");
    }
    // Each of the four other nodes received the payload about once.
    let sent: u64 = nodes
        .iter()
        .map(|n| gsp::runtime::broadcast::stats::get(&n.broadcast().stats().payload_bytes_sent))
        .sum();
    let ratio = sent as f64 / (payload.len() as f64 * 4.0);
    assert!(ratio < 1.5, "payload copy ratio {ratio}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_reserved_sends_are_refused_before_anything_is_sent() {
    let nodes = cluster(2).await;
    let e = nodes[0].broadcast();
    let max = e.config().max_payload;
    let big = Bytes::from(vec![0u8; usize::try_from(max).unwrap() + 1]);
    let err = e.send(big, &SendOptions::default()).unwrap_err();
    assert!(matches!(err, SendRefused::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("--max-payload"), "{err}");
    let err = e
        .send(
            Bytes::from_static(b"x"),
            &SendOptions {
                topic: "_gsp.receipt".into(),
                ..SendOptions::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, SendRefused::ReservedTopic(_)), "{err}");
    assert_eq!(
        gsp::runtime::broadcast::stats::get(&e.stats().payload_sends),
        0
    );
    e.disable("maintenance");
    let err = e
        .send(Bytes::from_static(b"x"), &SendOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("maintenance"), "{err}");
}
