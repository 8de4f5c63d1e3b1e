//! Nodes over gRPC: convergence and graceful leave, another domain refused,
//! and the warning of a plaintext node on a reachable address.

use std::time::Duration;

use gsp::{core::membership::record::MemberState, runtime::node::NodeHandle};

use super::{common, node, states};

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
