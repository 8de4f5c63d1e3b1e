//! Per-peer rate limits on the gossip and query services of a real node: a
//! plaintext caller is charged by its address, so a new made-up id per call
//! buys nothing, while another host keeps its own budget. The same holds for
//! the streams clients keep open (`gsp watch`, `gsp logs`).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use gsp::{
    core::rate_limit::RateConfig,
    runtime::node::{NodeConfig, NodeHandle},
    transport::{
        membership::service::PeerRates,
        pb::{discovery, membership::v1 as mpb},
    },
};

/// A node on 127.0.0.1:0 with `config` (the bench's own node starter).
async fn start(config: NodeConfig) -> NodeHandle {
    gsp::bench::cluster::start_node(0, config).await.unwrap()
}

const PEER_A: &str = "0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d";
const PEER_B: &str = "0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6e";

#[tokio::test]
async fn a_peer_over_its_rate_is_refused_and_counted_without_hurting_others() {
    let tight = RateConfig {
        rate: 1.0,
        burst: 5.0,
        max_peers: 16,
    };
    let config = NodeConfig {
        name: "limited".into(),
        peer_rates: PeerRates {
            gossip: tight,
            query: tight,
        },
        probe: gsp::runtime::node::ProbeChoice::Off,
        ..NodeConfig::default()
    };
    let node = start(config).await;
    // The "attacker" calls from 127.0.0.2, where no member lives.
    let ch = common::channel_from([127, 0, 0, 2].into(), node.local_addr()).await;
    let mut m = mpb::membership_client::MembershipClient::new(ch.clone());
    let ping = |from: &str| mpb::PingRequest {
        from_node_id: from.into(),
        domain_id: "default".into(),
        target_node_id: node.node_id().to_string(),
        seq: 1,
        updates: vec![],
        want_record: false,
    };
    let mut ok = 0;
    let mut limited = 0;
    for i in 0..20 {
        // A fresh claimed id per call, as a spoofer would send.
        let from = if i % 2 == 0 { PEER_A } else { PEER_B };
        match m.ping(ping(from)).await {
            Ok(_) => ok += 1,
            Err(s) => {
                assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
                assert!(s.message().contains("rate"), "{s:?}");
                limited += 1;
            }
        }
    }
    // The burst, plus at most a token or two refilled while the loop ran.
    assert!((5..=7).contains(&ok), "{ok} pings admitted");
    assert_eq!(ok + limited, 20);
    // Another host has its own bucket.
    let other = common::channel_from([127, 0, 0, 3].into(), node.local_addr()).await;
    mpb::membership_client::MembershipClient::new(other)
        .ping(ping(PEER_B))
        .await
        .expect("another host is admitted");
    assert!(
        node.membership()
            .stats()
            .refused_rate_limited
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 13
    );

    // Queries have their own budget.
    let mut d = discovery::discovery_service_client::DiscoveryServiceClient::new(ch);
    let q = |i: usize| discovery::ResourceQueryRequest {
        query_id: format!("q{i}"),
        requester_node_id: PEER_A.into(),
        requester_domain_id: "default".into(),
        ..Default::default()
    };
    let refused = {
        let mut n = 0;
        for i in 0..20 {
            if d.query_resources(q(i)).await.is_err() {
                n += 1;
            }
        }
        n
    };
    assert!(refused >= 13, "{refused} queries refused");
    drop(node);
}

#[tokio::test]
async fn one_address_holds_its_share_of_open_streams_and_a_closed_one_frees_a_slot() {
    use gsp::{runtime::stream_slots::PER_CALLER, transport::pb::admin::v1 as apb};
    let node = start(NodeConfig {
        name: "watched".into(),
        probe: gsp::runtime::node::ProbeChoice::Off,
        ..NodeConfig::default()
    })
    .await;
    let ch = common::channel_from([127, 0, 0, 2].into(), node.local_addr()).await;
    let mut admin = apb::admin_client::AdminClient::new(ch);
    let mut open = Vec::new();
    for _ in 0..PER_CALLER {
        open.push(
            admin
                .watch(apb::WatchRequest {})
                .await
                .unwrap()
                .into_inner(),
        );
    }
    let refused = admin.watch(apb::WatchRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(
        refused.message().contains(&format!("limits {PER_CALLER}")),
        "{}",
        refused.message()
    );
    // Message watchers count against the same share.
    let refused = admin
        .watch_messages(apb::WatchMessagesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    // Another host has its own.
    let other = common::channel_from([127, 0, 0, 3].into(), node.local_addr()).await;
    apb::admin_client::AdminClient::new(other)
        .watch(apb::WatchRequest {})
        .await
        .unwrap();
    // A watcher that goes away frees its slot.
    drop(open.pop());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match admin.watch(apb::WatchRequest {}).await {
            Ok(s) => {
                open.push(s.into_inner());
                break;
            }
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::ResourceExhausted);
                assert!(
                    std::time::Instant::now() < deadline,
                    "the slot was never freed"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

/// Read calls (`ListMembers` here) are charged to their caller's address like
/// gossip calls: a caller past its rate is refused, counted under
/// `read_rate_limited`, while another host reads on.
#[tokio::test]
async fn reads_over_a_callers_rate_are_refused_and_counted() {
    use gsp::transport::{auth::DEFAULT_READ_RATE, pb::admin::v1 as apb, refusals::Refused};
    let config = NodeConfig {
        name: "reads".into(),
        probe: gsp::runtime::node::ProbeChoice::Off,
        ..NodeConfig::default()
    };
    let node = start(config).await;
    let ch = common::channel_from([127, 0, 0, 2].into(), node.local_addr()).await;
    let admin = apb::admin_client::AdminClient::new(ch);
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "small"
    )]
    let calls = (DEFAULT_READ_RATE * 4.0) as usize;
    // At once: the burst (twice the rate) is spent before much refills.
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..calls {
        let mut admin = admin.clone();
        set.spawn(async move { admin.list_members(apb::ListMembersRequest::default()).await });
    }
    let mut limited = 0;
    while let Some(r) = set.join_next().await {
        if let Err(s) = r.unwrap() {
            assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
            assert!(s.message().contains("read calls"), "{s:?}");
            limited += 1;
        }
    }
    assert!(limited > 0, "{calls} reads in a burst, none limited");
    assert_eq!(node.refusals().count(Refused::ReadRateLimited), limited);
    let other = common::channel_from([127, 0, 0, 3].into(), node.local_addr()).await;
    apb::admin_client::AdminClient::new(other)
        .list_members(apb::ListMembersRequest::default())
        .await
        .expect("another host reads on");
}

/// What is not gRPC on the gRPC port is refused and counted by what it was:
/// an HTTP/1 request (answered 505, naming the side port), garbage bytes,
/// and a gRPC message over its service's limit.
#[tokio::test]
async fn http1_garbage_and_oversized_messages_on_the_grpc_port_are_counted() {
    use gsp::transport::refusals::Refused;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let node = start(NodeConfig {
        name: "doors".into(),
        probe: gsp::runtime::node::ProbeChoice::Off,
        ..NodeConfig::default()
    })
    .await;
    let addr = node.local_addr();
    let mut http1 = tokio::net::TcpStream::connect(addr).await.unwrap();
    http1
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    http1.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 505"), "{answer}");
    assert!(answer.contains("--http-listen"), "{answer}");
    let mut garbage = tokio::net::TcpStream::connect(addr).await.unwrap();
    garbage.write_all(&[0x42; 64]).await.unwrap();
    let mut rest = Vec::new();
    let _ = garbage.read_to_end(&mut rest).await;
    // 9 MiB in one GossipNodeInfo, over the 8 MiB limit.
    let ch = common::channel_from([127, 0, 0, 2].into(), addr).await;
    let mut d = discovery::discovery_service_client::DiscoveryServiceClient::new(ch)
        .max_encoding_message_size(16 << 20);
    let status = d
        .gossip_node_info(discovery::NodeInfoGossipMessage {
            message_id: "x".repeat(9 << 20),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(status.message().contains("too large"), "{status:?}");
    let r = node.refusals();
    let counts = (
        r.count(Refused::Http1OnGrpc),
        r.count(Refused::NotHttp2),
        r.count(Refused::MessageTooLarge),
    );
    assert_eq!(counts, (1, 1, 1));
}
