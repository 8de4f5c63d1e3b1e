//! Malformed and undecodable membership messages: refused by name, counted,
//! and the node keeps running.

use super::{iarnet, node, unary};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_membership_messages_are_refused_by_name_and_counted() {
    use gsp::transport::pb::{discovery as dpb, membership::v1 as mpb};
    let n = node("victim", vec![], "default").await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", n.advertise()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut m = mpb::membership_client::MembershipClient::new(channel.clone());
    // Empty node id in a piggybacked record.
    let err = m
        .gossip(mpb::GossipRequest {
            from_node_id: "x".into(),
            domain_id: "default".into(),
            updates: vec![dpb::PeerNodeInfo {
                address: "1.2.3.4:5".into(),
                ..Default::default()
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("updates[0].node_id"),
        "{}",
        err.message()
    );
    // Absurd version.
    let err = m
        .gossip(mpb::GossipRequest {
            from_node_id: "x".into(),
            domain_id: "default".into(),
            updates: vec![dpb::PeerNodeInfo {
                node_id: "evil".into(),
                address: "1.2.3.4:5".into(),
                version: u64::MAX,
                ..Default::default()
            }],
        })
        .await
        .unwrap_err();
    assert!(
        err.message().contains("updates[0].version"),
        "{}",
        err.message()
    );
    // Too many records.
    let mut d = dpb::discovery_service_client::DiscoveryServiceClient::new(channel)
        .max_encoding_message_size(64 << 20);
    let many: Vec<dpb::PeerNodeInfo> = (0..5000)
        .map(|i| dpb::PeerNodeInfo {
            node_id: format!("n{i}"),
            address: "1.2.3.4:5".into(),
            domain_id: "default".into(),
            ..Default::default()
        })
        .collect();
    let err = d
        .gossip_node_info(dpb::NodeInfoGossipMessage {
            sender_node_id: "x".into(),
            sender_domain_id: "default".into(),
            nodes: many,
            ttl: 1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        err.message().contains("over the limit"),
        "{}",
        err.message()
    );
    let invalid = gsp::runtime::membership::stats::MembershipStats::get(
        &n.membership().stats().refused_invalid,
    );
    assert_eq!(invalid, 3);
    // Nothing was merged; the node still answers.
    assert_eq!(n.membership().with_state(|s| s.len()), 1);
    let local: iarnet::GetLocalNodeInfoResponse = unary(
        n.advertise(),
        "/discovery.DiscoveryService/GetLocalNodeInfo",
        iarnet::GetLocalNodeInfoRequest {},
    )
    .await;
    assert!(local.node_info.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_protobuf_gets_a_clear_status_and_the_node_keeps_running() {
    let n = node("sturdy", vec![], "default").await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", n.advertise()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    // Raw bytes that are not a valid PingRequest (a truncated length-delimited field).
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = RawCodec;
    let err = grpc
        .unary(
            tonic::Request::new(vec![0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01]),
            http::uri::PathAndQuery::from_static("/gsp.membership.v1.Membership/Ping"),
            codec,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.code(),
            tonic::Code::Internal | tonic::Code::InvalidArgument
        ),
        "{err:?}"
    );
    assert!(
        err.message().to_lowercase().contains("decode"),
        "{}",
        err.message()
    );
    assert_eq!(n.membership().with_state(|s| s.len()), 1);
    let counted = n.grpc_errors().snapshot();
    assert!(
        counted
            .iter()
            .any(|(svc, _, c)| *svc == "gsp.membership.v1.Membership" && *c == 1),
        "{counted:?}"
    );
    let local: iarnet::GetLocalNodeInfoResponse = unary(
        n.advertise(),
        "/discovery.DiscoveryService/GetLocalNodeInfo",
        iarnet::GetLocalNodeInfoRequest {},
    )
    .await;
    assert!(local.node_info.is_some());
}

/// Sends raw bytes as the request message and ignores the response body.
#[derive(Debug, Clone, Copy)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = ();
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<()>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        bytes::Buf::advance(src, n);
        Ok(Some(()))
    }
}
