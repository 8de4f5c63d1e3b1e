//! An iarnet-shaped client (only iarnet's fields) talking to a gsp node, and
//! a gsp node facing an iarnet node.

use std::time::Duration;

use super::{common, iarnet, node, unary};

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
