//! Membership over real gRPC on 127.0.0.1:0, several nodes in one process, and
//! an iarnet-shaped client (only iarnet's fields) talking to a gsp node.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "../common/mod.rs"]
mod common;

mod cluster;
mod iarnet;
mod iarnet_client;
mod malformed;

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
