//! Delivery between well-behaved nodes: every size exactly once, oversized
//! payloads refused at the sender, unreachable and vanishing peers, and
//! shutdown draining open links.

use std::{sync::atomic::Ordering, time::Duration};

use gsp::{
    core::{ids::NodeId, message::OutboundMessage},
    transport::{
        config::DataPlaneConfig,
        error::{SendError, TransportError},
    },
};

use super::payload;
use crate::common::{TestNode, start_node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_full_mesh_deliver_every_size_exactly_once() {
    let mut nodes: Vec<TestNode> = Vec::new();
    for _ in 0..3 {
        nodes.push(start_node(DataPlaneConfig::default(), "default").await);
    }
    let sizes = [0usize, 1, 512 << 10, 20 << 20];
    let mut expected = Vec::new(); // (receiver index, message id, crc of what was sent, len)
    for (i, from) in nodes.iter().enumerate() {
        for (j, to) in nodes.iter().enumerate() {
            if i == j {
                continue;
            }
            let link = from.node.connect(to.node.advertise()).await.unwrap();
            assert_eq!(link.peer(), to.node.node_id());
            for (k, &size) in sizes.iter().enumerate() {
                let data = payload(size, (i * 7 + j * 3 + k) as u8);
                let crc = crc32fast::hash(&data);
                let msg = OutboundMessage::new(from.node.node_id().clone(), "t", data, 0);
                let ack = link.send(&msg).await.unwrap();
                let delivered = ack.await.unwrap();
                assert_eq!(&delivered.peer, to.node.node_id());
                expected.push((j, msg.meta.id, crc, size, from.node.node_id().clone()));
            }
        }
    }
    for (j, id, crc, size, sender) in expected {
        let got = nodes[j].sink.messages.lock().unwrap();
        let copies: Vec<_> = got.iter().filter(|m| m.meta.id == id).collect();
        assert_eq!(
            copies.len(),
            1,
            "message {id} of {size} bytes delivered {} times",
            copies.len()
        );
        assert_eq!(copies[0].payload.len(), size);
        assert_eq!(
            crc32fast::hash(&copies[0].payload),
            crc,
            "payload of {size} bytes corrupted"
        );
        assert_eq!(copies[0].sender, sender);
    }
    for n in &nodes {
        let s = n.node.stats();
        assert_eq!(s.messages_received.load(Ordering::Relaxed), 8);
        assert_eq!(s.protocol_errors.load(Ordering::Relaxed), 0);
    }
}

#[tokio::test]
async fn oversized_payload_fails_clearly_at_the_sender_and_the_link_keeps_working() {
    let a = start_node(DataPlaneConfig::default(), "default").await;
    let small = DataPlaneConfig {
        max_payload_bytes: 1 << 20,
        ..DataPlaneConfig::default()
    };
    let b = start_node(small, "default").await;
    let link = a.node.connect(b.node.advertise()).await.unwrap();

    let big = OutboundMessage::new(a.node.node_id().clone(), "", payload(2 << 20, 1), 0);
    let err = link.send(&big).await.unwrap_err();
    assert!(
        matches!(&err, SendError::TooLarge { len, max, whose } if *len == 2 << 20 && *max == 1 << 20 && whose.contains(b.node.node_id().as_str())),
        "{err}"
    );
    // Over this node's own limit too.
    let huge = OutboundMessage::new(a.node.node_id().clone(), "", payload(65 << 20, 1), 0);
    let err = link.send(&huge).await.unwrap_err();
    assert!(err.to_string().contains("this node's limit"), "{err}");

    let ok = OutboundMessage::new(a.node.node_id().clone(), "", payload(1000, 2), 0);
    link.send(&ok).await.unwrap().await.unwrap();
    assert_eq!(b.sink.messages.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn unreachable_peer_is_a_clear_error() {
    let a = start_node(DataPlaneConfig::default(), "default").await;
    // Bind then drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = a
        .node
        .connect(&format!("127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    let err = a.node.connect("not an address").await.unwrap_err();
    assert!(matches!(err, TransportError::BadAddress { .. }), "{err}");
}

#[tokio::test]
async fn a_vanishing_peer_fails_messages_in_flight_with_link_closed() {
    let a = start_node(DataPlaneConfig::default(), "default").await;
    let b = start_node(DataPlaneConfig::default(), "default").await;
    let link = a.node.connect(b.node.advertise()).await.unwrap();
    let first = OutboundMessage::new(a.node.node_id().clone(), "", payload(10, 0), 0);
    link.send(&first).await.unwrap().await.unwrap();
    drop(b);
    tokio::time::timeout(Duration::from_secs(10), link.closed())
        .await
        .unwrap();
    let msg = OutboundMessage::new(a.node.node_id().clone(), "", payload(10, 0), 0);
    let err = link.send(&msg).await.unwrap_err();
    assert!(matches!(err, SendError::LinkClosed { .. }), "{err}");
}

#[tokio::test]
async fn shutdown_drains_open_links_and_reports_it() {
    let a = start_node(DataPlaneConfig::default(), "default").await;
    let b = start_node(DataPlaneConfig::default(), "default").await;
    let link = a.node.connect(b.node.advertise()).await.unwrap();
    let msg = OutboundMessage::new(NodeId::parse("x").unwrap(), "", payload(100, 0), 0);
    link.send(&msg).await.unwrap().await.unwrap();
    assert!(b.node.shutdown().await, "an idle link should drain in time");
    tokio::time::timeout(Duration::from_secs(10), link.closed())
        .await
        .unwrap();
}

/// `gsp node` acknowledges DELIVERED only what reached its consumers: a
/// point-to-point chunk (hops 0) has none there and is refused, naming why;
/// the same chunk as a broadcast (hops 1) is delivered and reaches `gsp
/// watch --messages`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gsp_node_acks_delivered_only_what_reached_its_consumers() {
    use std::process::{Command, Stdio};

    use gsp::transport::pb::gossip::v1 as pb;

    use super::{chunk, header, hello, next_ack, raw_stream_to};
    use crate::common::{gsp_bin, procs::spawn_node};

    let dir = tempfile::tempdir().unwrap();
    let (mut node, addr) = spawn_node(dir.path());
    let watch = Command::new(gsp_bin())
        .args(["watch", "--messages", "--json", "--addr", &addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (tx, mut replies) = raw_stream_to(&addr, hello("default")).await.unwrap();
    let mut acks = Vec::new();
    let mut ids = Vec::new();
    for hops in [0u32, 1] {
        let id = *gsp::core::ids::MessageId::new().as_bytes();
        let data = bytes::Bytes::from(format!("hops {hops}"));
        let mut h = header(data.len() as u64, crc32fast::hash(&data));
        h.hops = hops;
        tx.send(chunk(&id, Some(h), 0, data)).await.unwrap();
        acks.push(next_ack(&mut replies).await);
        ids.push(
            gsp::core::ids::MessageId::from_slice(&id)
                .unwrap()
                .to_string(),
        );
    }
    assert_ne!(
        acks[0].status,
        pb::AckStatus::Delivered as i32,
        "{:?}",
        acks[0]
    );
    assert!(acks[0].reason.contains("hops 0"), "{:?}", acks[0]);
    assert_eq!(
        acks[1].status,
        pb::AckStatus::Delivered as i32,
        "{:?}",
        acks[1]
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = Command::new("kill")
        .args(["-TERM", &watch.id().to_string()])
        .status();
    let out = watch.wait_with_output().unwrap();
    let seen: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["message_id"].is_string())
        .collect();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["message_id"], ids[1].as_str());
    crate::common::procs::stop(&mut node);
}
