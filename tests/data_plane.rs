//! The data plane over real gRPC on 127.0.0.1:0: delivery, ACKs, limits, bad peers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "tests"
)]

mod common;

use std::{sync::atomic::Ordering, time::Duration};

use bytes::Bytes;
use common::{TestNode, start_node};
use gsp::{
    core::{ids::NodeId, message::OutboundMessage},
    transport::{
        config::DataPlaneConfig,
        data_plane::PROTOCOL_VERSION,
        error::{SendError, TransportError},
        pb::gossip::v1 as pb,
        pool,
    },
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn payload(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

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

/// Opens a raw stream to `node` and returns the frame sender and reply stream,
/// after the hello/welcome exchange.
async fn raw_stream(
    node: &TestNode,
    hello: pb::Hello,
) -> Result<(mpsc::Sender<pb::Frame>, tonic::Streaming<pb::Reply>), tonic::Status> {
    let channel = pool::endpoint(node.node.advertise(), &DataPlaneConfig::default())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client =
        pb::data_plane_client::DataPlaneClient::new(channel).max_decoding_message_size(8 << 20);
    let (tx, rx) = mpsc::channel(16);
    tx.send(pb::Frame {
        kind: Some(pb::frame::Kind::Hello(hello)),
    })
    .await
    .unwrap();
    let mut replies = client.stream(ReceiverStream::new(rx)).await?.into_inner();
    match replies.message().await? {
        Some(pb::Reply {
            kind: Some(pb::reply::Kind::Welcome(_)),
        }) => Ok((tx, replies)),
        other => panic!("expected a welcome, got {other:?}"),
    }
}

fn hello(domain: &str) -> pb::Hello {
    pb::Hello {
        node_id: "raw-client".into(),
        domain_id: domain.into(),
        protocol_version: PROTOCOL_VERSION,
    }
}

fn chunk(id: &[u8; 16], header: Option<pb::MessageHeader>, offset: u64, data: Bytes) -> pb::Frame {
    pb::Frame {
        kind: Some(pb::frame::Kind::Chunk(pb::Chunk {
            message_id: Bytes::copy_from_slice(id),
            header,
            offset,
            data,
        })),
    }
}

fn header(total_len: u64, crc32: u32) -> pb::MessageHeader {
    pb::MessageHeader {
        origin: "raw-client".into(),
        sender: "raw-client".into(),
        total_len,
        crc32,
        ..Default::default()
    }
}

async fn next_ack(replies: &mut tonic::Streaming<pb::Reply>) -> pb::Ack {
    match replies.message().await.unwrap() {
        Some(pb::Reply {
            kind: Some(pb::reply::Kind::Ack(a)),
        }) => a,
        other => panic!("expected an ack, got {other:?}"),
    }
}

#[tokio::test]
async fn receiver_rejects_and_counts_an_oversized_message_then_keeps_the_stream() {
    let small = DataPlaneConfig {
        max_payload_bytes: 1000,
        ..DataPlaneConfig::default()
    };
    let node = start_node(small, "default").await;
    let (tx, mut replies) = raw_stream(&node, hello("default")).await.unwrap();

    // Declares 3000 bytes, sent in three chunks: refused on the first, rest skipped.
    let id = *uuid::Uuid::now_v7().as_bytes();
    let data = payload(3000, 9);
    tx.send(chunk(
        &id,
        Some(header(3000, crc32fast::hash(&data))),
        0,
        data.slice(0..1000),
    ))
    .await
    .unwrap();
    tx.send(chunk(&id, None, 1000, data.slice(1000..2000)))
        .await
        .unwrap();
    tx.send(chunk(&id, None, 2000, data.slice(2000..)))
        .await
        .unwrap();
    let ack = next_ack(&mut replies).await;
    assert_eq!(ack.status(), pb::AckStatus::Rejected);
    assert!(
        ack.reason.contains("exceeds this node's limit of 1000"),
        "{}",
        ack.reason
    );
    assert_eq!(
        node.node.stats().rejected_too_large.load(Ordering::Relaxed),
        1
    );

    // A corrupted payload is refused by checksum.
    let id2 = *uuid::Uuid::now_v7().as_bytes();
    tx.send(chunk(
        &id2,
        Some(header(3, 12345)),
        0,
        Bytes::from_static(b"abc"),
    ))
    .await
    .unwrap();
    let ack = next_ack(&mut replies).await;
    assert_eq!(ack.status(), pb::AckStatus::Rejected);
    assert!(ack.reason.contains("checksum"), "{}", ack.reason);
    assert_eq!(
        node.node.stats().rejected_checksum.load(Ordering::Relaxed),
        1
    );

    // The same stream still delivers.
    let id3 = *uuid::Uuid::now_v7().as_bytes();
    let good = Bytes::from_static(b"still here");
    tx.send(chunk(
        &id3,
        Some(header(good.len() as u64, crc32fast::hash(&good))),
        0,
        good.clone(),
    ))
    .await
    .unwrap();
    let ack = next_ack(&mut replies).await;
    assert_eq!(ack.status(), pb::AckStatus::Delivered);
    assert_eq!(node.sink.messages.lock().unwrap()[0].payload, good);
}

#[tokio::test]
async fn a_peer_breaking_the_framing_is_cut_off_and_counted_and_the_node_keeps_serving() {
    let node = start_node(DataPlaneConfig::default(), "default").await;
    let (tx, mut replies) = raw_stream(&node, hello("default")).await.unwrap();
    // A chunk with no header cannot start a message.
    let id = *uuid::Uuid::now_v7().as_bytes();
    tx.send(chunk(&id, None, 0, Bytes::from_static(b"x")))
        .await
        .unwrap();
    let status = replies.message().await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("no header"),
        "{}",
        status.message()
    );
    assert_eq!(node.node.stats().protocol_errors.load(Ordering::Relaxed), 1);

    // A malformed message id is named.
    let (tx, mut replies) = raw_stream(&node, hello("default")).await.unwrap();
    tx.send(pb::Frame {
        kind: Some(pb::frame::Kind::Chunk(pb::Chunk {
            message_id: Bytes::from_static(b"short"),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let status = replies.message().await.unwrap_err();
    assert!(
        status.message().contains("chunk.message_id"),
        "{}",
        status.message()
    );

    // A well-behaved peer still gets through.
    let other = start_node(DataPlaneConfig::default(), "default").await;
    let link = other.node.connect(node.node.advertise()).await.unwrap();
    let msg = OutboundMessage::new(
        other.node.node_id().clone(),
        "",
        Bytes::from_static(b"ok"),
        0,
    );
    link.send(&msg).await.unwrap().await.unwrap();
}

#[tokio::test]
async fn a_header_naming_another_sender_than_the_streams_peer_is_cut_off() {
    let node = start_node(DataPlaneConfig::default(), "default").await;
    let (tx, mut replies) = raw_stream(&node, hello("default")).await.unwrap();
    // The stream is from raw-client; the header claims the previous hop was
    // the origin itself (a forged direct delivery, or a forged receipt).
    let id = *uuid::Uuid::now_v7().as_bytes();
    let data = Bytes::from_static(b"forged");
    let forged = pb::MessageHeader {
        origin: "victim".into(),
        sender: "victim".into(),
        hops: 1,
        ..header(data.len() as u64, crc32fast::hash(&data))
    };
    tx.send(chunk(&id, Some(forged), 0, data)).await.unwrap();
    let status = replies.message().await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(
        status.message().contains("names sender victim"),
        "{}",
        status.message()
    );
    assert!(node.sink.messages.lock().unwrap().is_empty());
}

#[tokio::test]
async fn handshake_refuses_other_domains_and_bad_hellos_by_name() {
    let node = start_node(DataPlaneConfig::default(), "blue").await;
    let err = raw_stream(&node, hello("red")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert!(
        err.message().contains("'red'") && err.message().contains("'blue'"),
        "{}",
        err.message()
    );

    let mut bad = hello("blue");
    bad.node_id = String::new();
    let err = raw_stream(&node, bad).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("hello.node_id"), "{}", err.message());

    let mut old = hello("blue");
    old.protocol_version = 99;
    let err = raw_stream(&node, old).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);

    // Through the library, the domain mismatch is a handshake failure naming the peer.
    let red = start_node(DataPlaneConfig::default(), "red").await;
    let err = red.node.connect(node.node.advertise()).await.unwrap_err();
    assert!(err.to_string().contains("domain"), "{err}");
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

/// A peer that welcomes every stream, reads every frame, and never ACKs.
struct Silent;

#[tonic::async_trait]
impl pb::data_plane_server::DataPlane for Silent {
    type StreamStream = ReceiverStream<Result<pb::Reply, tonic::Status>>;

    async fn stream(
        &self,
        request: tonic::Request<tonic::Streaming<pb::Frame>>,
    ) -> Result<tonic::Response<Self::StreamStream>, tonic::Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(4);
        tx.send(Ok(pb::Reply {
            kind: Some(pb::reply::Kind::Welcome(pb::Welcome {
                node_id: "silent".into(),
                protocol_version: PROTOCOL_VERSION,
                max_payload_bytes: 1 << 20,
                max_chunk_bytes: 1 << 20,
            })),
        }))
        .await
        .unwrap();
        tokio::spawn(async move {
            let _keep_open = tx;
            while let Ok(Some(_)) = inbound.message().await {}
        });
        Ok(tonic::Response::new(ReceiverStream::new(rx)))
    }
}

#[tokio::test]
async fn a_peer_that_never_acks_is_cut_off_and_counted() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(pb::data_plane_server::DataPlaneServer::new(Silent))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let a = start_node(
        DataPlaneConfig {
            ack_timeout: Duration::from_millis(200),
            ..DataPlaneConfig::default()
        },
        "default",
    )
    .await;
    let link = a.node.connect(&addr).await.unwrap();
    let mut acks = Vec::new();
    for i in 0..3 {
        let msg = OutboundMessage::new(a.node.node_id().clone(), "", payload(100, i), 0);
        acks.push(link.send(&msg).await.unwrap());
    }
    for ack in acks {
        let err = ack.await.unwrap_err();
        assert!(
            matches!(
                err,
                SendError::TimedOut { .. } | SendError::LinkClosed { .. }
            ),
            "{err}"
        );
    }
    tokio::time::timeout(Duration::from_secs(10), link.closed())
        .await
        .expect("the silent peer was not cut off");
    assert_eq!(a.node.stats().peers_cut_off.load(Ordering::Relaxed), 1);
    let msg = OutboundMessage::new(a.node.node_id().clone(), "", payload(10, 9), 0);
    let err = link.send(&msg).await.unwrap_err();
    assert!(err.to_string().contains("stopped acknowledging"), "{err}");
}
