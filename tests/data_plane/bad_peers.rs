//! Peers that break the rules: oversized messages, broken framing, a header
//! naming another sender, bad hellos and other domains, and a peer that never
//! ACKs.

use std::{sync::atomic::Ordering, time::Duration};

use bytes::Bytes;
use gsp::{
    core::message::OutboundMessage,
    transport::{
        config::DataPlaneConfig, data_plane::PROTOCOL_VERSION, error::SendError,
        pb::gossip::v1 as pb,
    },
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{chunk, header, hello, next_ack, payload, raw_stream};
use crate::common::start_node;

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
