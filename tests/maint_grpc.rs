//! Maintenance state over the real admin and health services of an in-process
//! node on 127.0.0.1:0.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::time::Duration;

use gsp::{
    core::message::OutboundMessage,
    transport::{
        config::DataPlaneConfig,
        error::SendError,
        pb::{admin::v1 as pb, discovery::GspMaintenance},
    },
};
use tokio_stream::StreamExt as _;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

async fn health(ch: &tonic::transport::Channel) -> ServingStatus {
    let r = HealthClient::new(ch.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    ServingStatus::try_from(r.status).unwrap()
}

fn set(state: GspMaintenance, reason: &str) -> pb::SetMaintenanceRequest {
    pb::SetMaintenanceRequest {
        state: state.into(),
        reason: reason.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn health_watch_and_broadcasts_follow_the_state() {
    let t = common::start_node(DataPlaneConfig::default(), "default").await;
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{}", t.node.local_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut admin = pb::admin_client::AdminClient::new(ch.clone());
    assert_eq!(health(&ch).await, ServingStatus::Serving);
    let mut events = admin.watch(pb::WatchRequest {}).await.unwrap().into_inner();

    let r = admin
        .set_maintenance(set(GspMaintenance::Maintenance, "swap disk"))
        .await
        .unwrap()
        .into_inner();
    assert!(r.changed);
    assert_eq!(r.previous_state, i32::from(GspMaintenance::Normal));
    assert_eq!(health(&ch).await, ServingStatus::NotServing);

    let e = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let e = events.next().await.unwrap().unwrap();
            if e.kind == "maintenance" {
                return e;
            }
        }
    })
    .await
    .expect("an audit event on the watch stream");
    assert_eq!(e.node_id, t.node.node_id().to_string());
    assert_eq!(e.maintenance, "maintenance");
    assert_eq!(e.previous_maintenance, "normal");
    assert_eq!(e.reason, "swap disk");
    // The caller's IP, not its ephemeral port.
    assert_eq!(e.actor, "anonymous from 127.0.0.1");

    // Disabled: the node refuses to broadcast.
    admin
        .set_maintenance(set(GspMaintenance::Disabled, ""))
        .await
        .unwrap();
    let refused = admin
        .send(pb::SendRequest {
            payload: b"x".to_vec().into(),
            ..Default::default()
        })
        .await
        .expect_err("a disabled node refuses sends");
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    assert!(refused.message().contains("disabled"), "{refused:?}");
    // A relayed payload pushed to it anyway is refused on the data plane.
    let peer = common::start_node(DataPlaneConfig::default(), "default").await;
    let link = peer
        .node
        .connect(&t.node.local_addr().to_string())
        .await
        .unwrap();
    let mut msg = OutboundMessage::new(
        peer.node.node_id().clone(),
        "t",
        bytes::Bytes::from_static(b"payload"),
        1,
    );
    msg.meta.hops = 1;
    msg.meta.ttl = 4;
    let ack = link.send(&msg).await.unwrap().await;
    match ack {
        Err(SendError::Rejected { reason, .. }) => assert!(reason.contains("disabled"), "{reason}"),
        other => panic!("a disabled node took a broadcast payload: {other:?}"),
    }

    // Back to normal: serving and sending again.
    admin
        .set_maintenance(set(GspMaintenance::Normal, "done"))
        .await
        .unwrap();
    assert_eq!(health(&ch).await, ServingStatus::Serving);
    admin
        .send(pb::SendRequest {
            payload: b"x".to_vec().into(),
            ..Default::default()
        })
        .await
        .expect("a normal node sends");

    // The audit trail has all three changes, newest first.
    let (audit, dropped) = t.node.maintenance().audit(10);
    let states: Vec<&str> = audit.iter().map(|a| a.state.as_str()).collect();
    assert_eq!(states, ["normal", "disabled", "maintenance"]);
    assert_eq!(dropped, 0);

    // An unknown state number is refused, naming it.
    let bad = admin
        .set_maintenance(pb::SetMaintenanceRequest {
            state: 7,
            ..Default::default()
        })
        .await
        .expect_err("unknown state");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains('7'));
    t.node.shutdown().await;
}
