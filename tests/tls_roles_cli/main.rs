//! `gsp tls` round trip: a CA, three node certificates and a client certificate
//! made with the CLI run a secure cluster; the client certificate works for the
//! CLI and is refused on the node planes.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "../common/mod.rs"]
mod common;

mod roles;

use std::{path::Path, sync::Arc, time::Duration};

use common::run_gsp;
use gsp::transport::{
    pb::membership::v1 as mpb,
    tls::{TlsConfig, TlsFiles, connector::Connector},
};

const LIMIT: Duration = Duration::from_secs(120);

fn gsp_ok(args: &[&str]) -> std::process::Output {
    let out = run_gsp(args, LIMIT);
    assert!(
        out.status.success(),
        "gsp {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn tls_of(dir: &str, stem: &str) -> Vec<String> {
    vec![
        "--tls-ca".into(),
        format!("{dir}/gsp-ca.pem"),
        "--tls-cert".into(),
        format!("{dir}/{stem}.pem"),
        "--tls-key".into(),
        format!("{dir}/{stem}-key.pem"),
    ]
}

fn until(what: &str, ok: impl FnMut() -> bool) {
    common::until(what, Duration::from_secs(30), ok);
}

/// The loaded certificate `stem` (and its key) from `dir`, with the CA there.
fn load(dir: &Path, stem: &str) -> TlsConfig {
    TlsConfig::load(TlsFiles {
        cert: Some(dir.join(format!("{stem}.pem"))),
        key: Some(dir.join(format!("{stem}-key.pem"))),
        ca: dir.join("gsp-ca.pem"),
    })
    .unwrap()
}

/// A channel to `addr` presenting the certificate `stem` from `dir`.
async fn channel_as(dir: &Path, stem: &str, addr: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(Connector::new(Arc::default(), Some(load(dir, stem))))
        .await
        .unwrap()
}

/// A membership Ping from member `from` to member `target` at `addr`,
/// presenting the certificate `stem` from `dir`.
fn ping_as(
    dir: &Path,
    stem: &str,
    addr: &str,
    from: &str,
    target: &str,
) -> Result<(), tonic::Status> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let channel = channel_as(dir, stem, addr).await;
        mpb::membership_client::MembershipClient::new(channel)
            .ping(mpb::PingRequest {
                from_node_id: from.into(),
                target_node_id: target.into(),
                domain_id: "default".into(),
                seq: 1,
                updates: vec![],
                want_record: false,
            })
            .await
            .map(|_| ())
    })
}

/// Opens a data-plane stream to `addr` presenting the certificate `stem`.
fn stream_as(dir: &Path, stem: &str, addr: &str) -> Result<(), tonic::Status> {
    use gsp::transport::pb::gossip::v1 as gpb;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let channel = channel_as(dir, stem, addr).await;
        gpb::data_plane_client::DataPlaneClient::new(channel)
            .stream(tokio_stream::iter(Vec::<gpb::Frame>::new()))
            .await
            .map(|_| ())
    })
}

/// Relays, as node `via` (its certificate), a broadcast whose origin is
/// `origin` to the node at `addr`, signed by `signer`'s key (`None`: unsigned).
/// Returns the hop ACK's status and reason.
fn relay_as(
    dir: &Path,
    via: (&str, &str),
    addr: &str,
    origin: &str,
    signer: Option<&str>,
) -> (i32, String) {
    use gsp::{
        core::{ids::NodeId, message::OutboundMessage},
        transport::{
            convert::header_to_pb, data_plane::PROTOCOL_VERSION, pb::gossip::v1 as gpb,
            tls::origin::OriginSigner,
        },
    };
    let load = |stem: &str| load(dir, stem);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let channel = channel_as(dir, via.0, addr).await;
        let mut msg = OutboundMessage::new(
            NodeId::parse(origin).unwrap(),
            "forged?",
            bytes::Bytes::from_static(b"payload"),
            1,
        );
        msg.meta.hops = 2;
        if let Some(stem) = signer {
            msg.meta.auth = OriginSigner::from_tls(&load(stem))
                .unwrap()
                .sign(&msg.meta, &msg.payload);
        }
        let via_id = NodeId::parse(via.1).unwrap();
        let frames = vec![
            gpb::Frame {
                kind: Some(gpb::frame::Kind::Hello(gpb::Hello {
                    node_id: via.1.to_owned(),
                    domain_id: "default".into(),
                    protocol_version: PROTOCOL_VERSION,
                })),
            },
            gpb::Frame {
                kind: Some(gpb::frame::Kind::Chunk(gpb::Chunk {
                    message_id: bytes::Bytes::copy_from_slice(msg.meta.id.as_bytes()),
                    header: Some(header_to_pb(&msg, &via_id)),
                    offset: 0,
                    data: msg.payload.clone(),
                })),
            },
        ];
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        for f in frames {
            tx.send(f).await.unwrap();
        }
        let mut replies = gpb::data_plane_client::DataPlaneClient::new(channel)
            .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        loop {
            match replies.message().await.unwrap() {
                Some(gpb::Reply {
                    kind: Some(gpb::reply::Kind::Ack(a)),
                }) => return (a.status, a.reason),
                Some(_) => {}
                None => panic!("stream ended without an ack"),
            }
        }
    })
}

/// Pushes, as node `stem`/`from`, an alive record of member `victim` (named
/// `victim_name`) at a new incarnation with another address (`at`), signed
/// by `signer` (`None`: unsigned).
fn forge_record_as(
    dir: &Path,
    (stem, from): (&str, &str),
    addr: &str,
    (victim, victim_name, at): (&str, &str, &str),
    signer: Option<&str>,
) {
    use gsp::{
        core::{
            ids::NodeId,
            membership::record::{MemberRecord, RecordSigner as _},
        },
        transport::{membership::convert::record_to_pb, tls::origin::OriginSigner},
    };
    let load = |stem: &str| load(dir, stem);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut forged = MemberRecord::new(
        NodeId::parse(victim).unwrap(),
        victim_name.into(),
        at.into(),
        "default".into(),
        u64::try_from(now).unwrap(),
    );
    if let Some(s) = signer {
        forged.proof = OriginSigner::from_tls(&load(s))
            .unwrap()
            .sign_record(&forged);
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let channel = channel_as(dir, stem, addr).await;
        mpb::membership_client::MembershipClient::new(channel)
            .gossip(mpb::GossipRequest {
                from_node_id: from.into(),
                domain_id: "default".into(),
                updates: vec![record_to_pb(&forged, 1)],
            })
            .await
            .unwrap();
    });
}

/// A server presenting the node certificate `stem` that acks every probe as
/// whatever member it is asked about; serves until `runtime` is dropped.
/// Returns its address.
fn certified_impostor(dir: &Path, stem: &str, runtime: &tokio::runtime::Runtime) -> String {
    use gsp::transport::{
        keepalive::KeepAlive,
        refusals::Refusals,
        tls::{conns::ConnTable, incoming::incoming},
    };

    #[derive(Clone)]
    struct AcksAsAnyone;

    #[tonic::async_trait]
    impl mpb::membership_server::Membership for AcksAsAnyone {
        async fn ping(
            &self,
            request: tonic::Request<mpb::PingRequest>,
        ) -> Result<tonic::Response<mpb::PingResponse>, tonic::Status> {
            let r = request.into_inner();
            Ok(tonic::Response::new(mpb::PingResponse {
                from_node_id: r.target_node_id,
                seq: r.seq,
                ack: true,
                updates: vec![],
            }))
        }

        async fn ping_req(
            &self,
            _: tonic::Request<mpb::IndirectPingRequest>,
        ) -> Result<tonic::Response<mpb::PingResponse>, tonic::Status> {
            Err(tonic::Status::unimplemented("impostor"))
        }

        async fn gossip(
            &self,
            _: tonic::Request<mpb::GossipRequest>,
        ) -> Result<tonic::Response<mpb::GossipResponse>, tonic::Status> {
            Ok(tonic::Response::new(mpb::GossipResponse {}))
        }
    }

    let tls = load(dir, stem);
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = incoming(
            listener,
            Arc::default(),
            Some(tls),
            ConnTable::new(gsp::transport::tls::conns::ConnLimits::default()),
            Arc::new(Refusals::default()),
            KeepAlive::default(),
        );
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(mpb::membership_server::MembershipServer::new(AcksAsAnyone))
                .serve_with_incoming(accepted),
        );
        addr
    })
}

/// Node processes, killed if the test fails before stopping them.
struct Children(Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
