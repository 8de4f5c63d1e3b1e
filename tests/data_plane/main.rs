//! The data plane over real gRPC on 127.0.0.1:0: delivery, ACKs, limits, bad peers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    reason = "tests"
)]

#[path = "../common/mod.rs"]
mod common;

mod bad_peers;
mod delivery;

use bytes::Bytes;
use common::TestNode;
use gsp::transport::{
    config::DataPlaneConfig, data_plane::PROTOCOL_VERSION, pb::gossip::v1 as pb, pool,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn payload(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

/// Opens a raw stream to `node` and returns the frame sender and reply stream,
/// after the hello/welcome exchange.
async fn raw_stream(
    node: &TestNode,
    hello: pb::Hello,
) -> Result<(mpsc::Sender<pb::Frame>, tonic::Streaming<pb::Reply>), tonic::Status> {
    raw_stream_to(node.node.advertise(), hello).await
}

/// [`raw_stream`] to the node at `addr`.
async fn raw_stream_to(
    addr: &str,
    hello: pb::Hello,
) -> Result<(mpsc::Sender<pb::Frame>, tonic::Streaming<pb::Reply>), tonic::Status> {
    let channel = pool::endpoint(addr, &DataPlaneConfig::default())
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
