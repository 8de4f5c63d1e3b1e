//! An iarnet-shaped client (only iarnet's fields) talking to a gsp node, and
//! a gsp node facing an iarnet node.

use std::time::Duration;

use gsp::transport::pb::discovery as dpb;

use super::{common, iarnet, node, unary};

/// An iarnet node as gsp's verification sees it: gsp's membership calls are
/// UNIMPLEMENTED, and `GetLocalNodeInfo` says who it is (`node_id`, in
/// `domain`); the rest of iarnet's service is not needed here.
#[derive(Clone)]
struct IarnetStandIn {
    node_id: String,
    domain: String,
    address: String,
}

#[tonic::async_trait]
impl dpb::discovery_service_server::DiscoveryService for IarnetStandIn {
    async fn gossip_node_info(
        &self,
        _: tonic::Request<dpb::NodeInfoGossipMessage>,
    ) -> Result<tonic::Response<dpb::NodeInfoGossipResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("stand-in"))
    }

    async fn query_resources(
        &self,
        _: tonic::Request<dpb::ResourceQueryRequest>,
    ) -> Result<tonic::Response<dpb::ResourceQueryResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("stand-in"))
    }

    async fn exchange_peer_list(
        &self,
        _: tonic::Request<dpb::PeerListExchangeRequest>,
    ) -> Result<tonic::Response<dpb::PeerListExchangeResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("stand-in"))
    }

    async fn get_local_node_info(
        &self,
        _: tonic::Request<dpb::GetLocalNodeInfoRequest>,
    ) -> Result<tonic::Response<dpb::GetLocalNodeInfoResponse>, tonic::Status> {
        Ok(tonic::Response::new(dpb::GetLocalNodeInfoResponse {
            node_info: Some(dpb::PeerNodeInfo {
                node_id: self.node_id.clone(),
                node_name: "iarnet-1".into(),
                address: self.address.clone(),
                domain_id: self.domain.clone(),
                status: 1,
                version: 7,
                ..Default::default()
            }),
        }))
    }
}

/// Starts an [`IarnetStandIn`] at 127.0.0.1:0 saying it is `node_id`, and
/// returns its address.
async fn iarnet_stand_in(node_id: &str, domain: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let svc = IarnetStandIn {
        node_id: node_id.into(),
        domain: domain.into(),
        address: addr.clone(),
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(dpb::discovery_service_server::DiscoveryServiceServer::new(
                svc,
            ))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr
}

/// Gossips `me` to the node at `addr` as iarnet would.
async fn gossip_as_iarnet(addr: &str, me: iarnet::PeerNodeInfo) -> iarnet::NodeInfoGossipResponse {
    unary(
        addr,
        "/discovery.DiscoveryService/GossipNodeInfo",
        iarnet::NodeInfoGossipMessage {
            sender_node_id: me.node_id.clone(),
            sender_address: me.address.clone(),
            sender_domain_id: me.domain_id.clone(),
            nodes: vec![me],
            message_id: "gossip.1".into(),
            timestamp: 1,
            ttl: 5,
            max_hops: 5,
        },
    )
    .await
}

fn iarnet_record(id: &str, address: &str) -> iarnet::PeerNodeInfo {
    iarnet::PeerNodeInfo {
        node_id: id.into(),
        node_name: "iarnet-1".into(),
        address: address.into(),
        domain_id: "domain.x".into(),
        status: 1,
        last_seen: 1,
        last_updated: 1,
        version: 7,
        gossip_count: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_does_not_speak_gsp_is_listed_only_as_the_node_it_says_it_is() {
    let n = node("gsp-node", vec![], "domain.x").await;
    // Answers UNIMPLEMENTED to gsp's probe and says it is someone else.
    let other = iarnet_stand_in("node.someone-else", "domain.x").await;
    gossip_as_iarnet(n.advertise(), iarnet_record("node.claimed", &other)).await;
    // In another domain.
    let foreign = iarnet_stand_in("node.foreign", "domain.y").await;
    gossip_as_iarnet(n.advertise(), iarnet_record("node.foreign", &foreign)).await;
    // Health only: UNIMPLEMENTED to everything gsp asks.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let health_only = listener.local_addr().unwrap().to_string();
    let (_, health) = tonic_health::server::health_reporter();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    gossip_as_iarnet(n.advertise(), iarnet_record("node.silent", &health_only)).await;
    let refused = common::eventually(Duration::from_secs(10), || {
        n.membership()
            .with_state(|s| s.counters().candidates_refused >= 3)
    })
    .await;
    assert!(refused, "the three impostors were not refused");
    assert_eq!(n.membership().with_state(|s| s.len()), 1, "nothing listed");
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
    // it has answered at its address as itself (an iarnet node answers gsp's
    // probe with UNIMPLEMENTED, and says who it is through GetLocalNodeInfo).
    let iarnet_addr = iarnet_stand_in("node.iarnet1", "domain.x").await;
    let resp = gossip_as_iarnet(n.advertise(), iarnet_record("node.iarnet1", &iarnet_addr)).await;
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
