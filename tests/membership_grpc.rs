//! Membership over real gRPC on 127.0.0.1:0, several nodes in one process, and
//! an iarnet-shaped client (only iarnet's fields) talking to a gsp node.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::time::Duration;

use gsp::{core::membership::record::MemberState, runtime::node::NodeHandle};

async fn node(name: &str, seeds: Vec<String>, domain: &str) -> NodeHandle {
    common::member_node(name, seeds, domain).await
}

fn states(n: &NodeHandle) -> Vec<(String, MemberState)> {
    let mut v: Vec<_> = n.membership().with_state(|s| {
        s.all_records()
            .into_iter()
            .map(|r| (r.name.clone(), r.state))
            .collect()
    });
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_converge_and_a_graceful_stop_is_seen_as_left() {
    let seed = node("n0", vec![], "default").await;
    let mut nodes = vec![];
    for i in 1..5 {
        nodes.push(
            node(
                &format!("n{i}"),
                vec![seed.advertise().to_owned()],
                "default",
            )
            .await,
        );
    }
    nodes.push(seed);
    let all_alive = |ns: &[NodeHandle]| {
        ns.iter().all(|n| {
            let s = states(n);
            s.len() == 5 && s.iter().all(|(_, st)| *st == MemberState::Alive)
        })
    };
    assert!(
        common::eventually(Duration::from_secs(20), || all_alive(&nodes)).await,
        "no convergence"
    );

    let leaving = nodes.remove(0);
    assert!(leaving.shutdown().await);
    let seen_left = common::eventually(Duration::from_secs(20), || {
        nodes
            .iter()
            .all(|n| states(n).contains(&("n1".to_owned(), MemberState::Left)))
    })
    .await;
    assert!(
        seen_left,
        "graceful stop not seen as left: {:?}",
        states(&nodes[0])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_domain_is_refused_and_counted() {
    let a = node("a", vec![], "blue").await;
    let b = node("b", vec![a.advertise().to_owned()], "red").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(states(&a).len(), 1);
    assert_eq!(states(&b).len(), 1);
    let refused = gsp::runtime::membership::stats::MembershipStats::get(
        &a.membership().stats().refused_foreign_domain,
    );
    assert!(refused > 0);
}

/// iarnet's messages, with only iarnet's fields: what a client generated from
/// iarnet's discovery.proto sends and understands.
mod iarnet {
    #![allow(unreachable_pub, reason = "test-local message definitions")]

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PeerNodeInfo {
        #[prost(string, tag = "1")]
        pub node_id: String,
        #[prost(string, tag = "2")]
        pub node_name: String,
        #[prost(string, tag = "3")]
        pub address: String,
        #[prost(string, tag = "4")]
        pub domain_id: String,
        #[prost(int32, tag = "7")]
        pub status: i32,
        #[prost(int64, tag = "8")]
        pub last_seen: i64,
        #[prost(int64, tag = "9")]
        pub last_updated: i64,
        #[prost(uint64, tag = "10")]
        pub version: u64,
        #[prost(int32, tag = "11")]
        pub gossip_count: i32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeInfoGossipMessage {
        #[prost(string, tag = "1")]
        pub sender_node_id: String,
        #[prost(string, tag = "2")]
        pub sender_address: String,
        #[prost(string, tag = "3")]
        pub sender_domain_id: String,
        #[prost(message, repeated, tag = "4")]
        pub nodes: Vec<PeerNodeInfo>,
        #[prost(string, tag = "5")]
        pub message_id: String,
        #[prost(int64, tag = "6")]
        pub timestamp: i64,
        #[prost(int32, tag = "7")]
        pub ttl: i32,
        #[prost(int32, tag = "8")]
        pub max_hops: i32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeInfoGossipResponse {
        #[prost(message, repeated, tag = "1")]
        pub nodes: Vec<PeerNodeInfo>,
        #[prost(string, tag = "2")]
        pub message_id: String,
        #[prost(int64, tag = "3")]
        pub timestamp: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceRequest {
        #[prost(int64, tag = "1")]
        pub cpu: i64,
        #[prost(int64, tag = "2")]
        pub memory: i64,
        #[prost(int64, tag = "3")]
        pub gpu: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceQueryRequest {
        #[prost(string, tag = "1")]
        pub query_id: String,
        #[prost(string, tag = "2")]
        pub requester_node_id: String,
        #[prost(string, tag = "4")]
        pub requester_domain_id: String,
        #[prost(message, optional, tag = "5")]
        pub resource_request: Option<ResourceRequest>,
        #[prost(int32, tag = "8")]
        pub max_hops: i32,
        #[prost(int32, tag = "9")]
        pub ttl: i32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceQueryResponse {
        #[prost(string, tag = "1")]
        pub query_id: String,
        #[prost(string, tag = "2")]
        pub responder_node_id: String,
        #[prost(message, repeated, tag = "4")]
        pub available_nodes: Vec<PeerNodeInfo>,
        #[prost(bool, tag = "6")]
        pub is_final: bool,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GetLocalNodeInfoRequest {}
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GetLocalNodeInfoResponse {
        #[prost(message, optional, tag = "1")]
        pub node_info: Option<PeerNodeInfo>,
    }
}

/// A gRPC server at 127.0.0.1:0 that serves only health, as an iarnet node would
/// answer gsp's membership calls: UNIMPLEMENTED. Returns its address.
async fn iarnet_stand_in() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_, health) = tonic_health::server::health_reporter();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr.to_string()
}

async fn unary<Req, Resp>(addr: &str, path: &'static str, req: Req) -> Resp
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    grpc.unary(
        tonic::Request::new(req),
        http::uri::PathAndQuery::from_static(path),
        codec,
    )
    .await
    .unwrap()
    .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iarnet_client_gets_meaningful_answers() {
    let n = node("gsp-node", vec![], "domain.x").await;
    let local: iarnet::GetLocalNodeInfoResponse = unary(
        n.advertise(),
        "/discovery.DiscoveryService/GetLocalNodeInfo",
        iarnet::GetLocalNodeInfoRequest {},
    )
    .await;
    let info = local.node_info.unwrap();
    assert_eq!(info.node_id, n.node_id().to_string());
    assert_eq!(info.node_name, "gsp-node");
    assert_eq!(info.address, n.advertise());
    assert_eq!(info.domain_id, "domain.x");
    assert_eq!(info.status, 1, "NODE_STATUS_ONLINE");
    assert!(info.version >= 1 && info.last_seen > 0);

    // An iarnet node gossips itself; gsp answers with its view and lists it once
    // it has answered a probe at its address (an iarnet node answers gsp's probe
    // with UNIMPLEMENTED: it is up). The stand-in serves only gRPC health.
    let iarnet_addr = iarnet_stand_in().await;
    let me = iarnet::PeerNodeInfo {
        node_id: "node.iarnet1".into(),
        node_name: "iarnet-1".into(),
        address: iarnet_addr.clone(),
        domain_id: "domain.x".into(),
        status: 1,
        last_seen: 1,
        last_updated: 1,
        version: 7,
        gossip_count: 0,
    };
    let resp: iarnet::NodeInfoGossipResponse = unary(
        n.advertise(),
        "/discovery.DiscoveryService/GossipNodeInfo",
        iarnet::NodeInfoGossipMessage {
            sender_node_id: me.node_id.clone(),
            sender_address: me.address.clone(),
            sender_domain_id: "domain.x".into(),
            nodes: vec![me],
            message_id: "gossip.1".into(),
            timestamp: 1,
            ttl: 5,
            max_hops: 5,
        },
    )
    .await;
    assert_eq!(resp.message_id, "gossip.1");
    let names: Vec<_> = resp.nodes.iter().map(|p| p.node_name.as_str()).collect();
    assert!(names.contains(&"gsp-node"), "{names:?}");
    assert!(
        common::eventually(Duration::from_secs(5), || n.membership().with_state(|s| {
            s.all_records()
                .iter()
                .any(|r| r.name == "iarnet-1" && r.protocol == 0)
        }))
        .await,
        "the iarnet node was not listed after answering at its address"
    );

    // QueryResources as iarnet asks it: the gsp node answers from its view.
    let q: iarnet::ResourceQueryResponse = unary(
        n.advertise(),
        "/discovery.DiscoveryService/QueryResources",
        iarnet::ResourceQueryRequest {
            query_id: "query.1".into(),
            requester_node_id: "node.iarnet1".into(),
            requester_domain_id: "domain.x".into(),
            resource_request: Some(iarnet::ResourceRequest::default()),
            max_hops: 5,
            ttl: 5,
        },
    )
    .await;
    assert_eq!(q.query_id, "query.1");
    assert!(q.is_final);
    assert_eq!(q.responder_node_id, n.node_id().to_string());
    let names: Vec<_> = q
        .available_nodes
        .iter()
        .map(|p| p.node_name.as_str())
        .collect();
    assert!(names.contains(&"gsp-node"), "{names:?}");

    // Another domain gets iarnet's empty answer, and nothing is merged.
    let resp: iarnet::NodeInfoGossipResponse = unary(
        n.advertise(),
        "/discovery.DiscoveryService/GossipNodeInfo",
        iarnet::NodeInfoGossipMessage {
            sender_node_id: "node.other".into(),
            sender_domain_id: "domain.y".into(),
            nodes: vec![iarnet::PeerNodeInfo {
                node_id: "node.other".into(),
                address: "127.0.0.1:2".into(),
                domain_id: "domain.y".into(),
                version: 1,
                ..Default::default()
            }],
            message_id: "gossip.2".into(),
            ttl: 5,
            ..Default::default()
        },
    )
    .await;
    assert!(resp.nodes.is_empty());
    assert_eq!(n.membership().with_state(|s| s.len()), 2);
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_node_on_a_reachable_address_says_so_unless_insecure() {
    use gsp::transport::pb::admin::v1 as apb;
    for (insecure, warned) in [(false, true), (true, false)] {
        // Listening on every interface; only loopback traffic is sent.
        let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = gsp::runtime::node::NodeConfig {
            name: "exposed".into(),
            advertise: Some(format!("127.0.0.1:{port}")),
            insecure,
            probe: gsp::runtime::node::ProbeChoice::Off,
            ..gsp::runtime::node::NodeConfig::default()
        };
        let node = NodeHandle::start(
            config,
            gsp::runtime::identity::Identity::ephemeral(),
            listener,
            std::sync::Arc::new(gsp::transport::data_plane::sink::DiscardSink),
        )
        .await
        .unwrap();
        let ch = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let resp = apb::admin_client::AdminClient::new(ch)
            .list_members(apb::ListMembersRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            resp.security_warning.contains("without TLS"),
            warned,
            "insecure={insecure}: {:?}",
            resp.security_warning
        );
        drop(node);
    }
}
