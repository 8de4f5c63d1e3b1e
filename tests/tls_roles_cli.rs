//! `gsp tls` round trip: a CA, three node certificates and a client certificate
//! made with the CLI run a secure cluster; the client certificate works for the
//! CLI and is refused on the node planes.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::{
    os::unix::fs::PermissionsExt as _,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use common::{
    procs::{spawn_node_logged, stop},
    run_gsp,
};
use gsp::transport::{
    pb::membership::v1 as mpb,
    tls::{TlsConfig, TlsFiles, connector::Connector},
};
use serde_json::Value;

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

fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
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
/// `victim_name`) at a new incarnation with another address, signed by
/// `signer` (`None`: unsigned).
fn forge_record_as(
    dir: &Path,
    (stem, from): (&str, &str),
    addr: &str,
    (victim, victim_name): (&str, &str),
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
        "127.0.0.1:9".into(),
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

#[test]
fn a_cluster_secured_with_gsp_tls_works_and_client_certificates_are_not_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap().to_owned();
    gsp_ok(&["tls", "ca", "--dir", &dir]);
    for n in ["n1", "n2", "n3"] {
        gsp_ok(&["tls", "cert", "--node", n, "--dir", &dir]);
    }
    let made = gsp_ok(&["tls", "cert", "--client", "alice", "--dir", &dir, "--json"]);
    let made: Value = serde_json::from_slice(&made.stdout).unwrap();
    assert_eq!(made["schema"], "gsp.tls.v1");
    assert_eq!(made["role"], "client");
    for f in made["files"].as_array().unwrap() {
        let perms = std::fs::metadata(f["path"].as_str().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(perms & 0o777, 0o600, "{f}");
    }
    // Never overwritten without --force; a bad name is a usage error.
    let again = run_gsp(&["tls", "cert", "--client", "alice", "--dir", &dir], LIMIT);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let bad = run_gsp(&["tls", "cert", "--node", "a/b", "--dir", &dir], LIMIT);
    assert_eq!(bad.status.code(), Some(2));

    // The certificate is the node's identity: another --name, or a client
    // certificate, does not start.
    let data = tmp.path().join("refused");
    let data = data.to_str().unwrap();
    for (stem, name, says) in [
        ("n1-node", "n2", "does not match the node name"),
        ("alice-client", "alice", "client certificate"),
    ] {
        let mut args = vec![
            "node",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "off",
            "--data-dir",
            data,
            "--name",
            name,
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        args.extend(tls_of(&dir, stem));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_gsp(&args, LIMIT);
        assert_eq!(out.status.code(), Some(2), "{stem} as {name}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{stem} as {name}"
        );
    }

    let mut children = Children(Vec::new());
    let mut seed = String::new();
    for n in ["n1", "n2", "n3"] {
        let mut args: Vec<String> = vec![
            "--gossip-interval".into(),
            "0.1".into(),
            "--name".into(),
            n.into(),
        ];
        if !seed.is_empty() {
            args.extend(["--join".into(), seed.clone()]);
        }
        args.extend(tls_of(&dir, &format!("{n}-node")));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (child, addr, _log) = spawn_node_logged(&tmp.path().join(n), &args, &[]);
        if seed.is_empty() {
            seed = addr;
        }
        children.0.push(child);
    }
    let client = tls_of(&dir, "alice-client");
    let mut peers_args = vec!["peers", "--addr", &seed, "--json", "--timeout", "3"];
    peers_args.extend(client.iter().map(String::as_str));
    until("the secure cluster to converge", || {
        let out = run_gsp(&peers_args, LIMIT);
        out.status.success()
            && serde_json::from_slice::<Value>(&out.stdout).unwrap()["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| n["state"] == "alive")
                .count()
                == 3
    });

    let out = run_gsp(&peers_args, LIMIT);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id_of = |name: &str| {
        listed["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node_name"] == name)
            .unwrap()["node_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (n1, n2, n3) = (id_of("n1"), id_of("n2"), id_of("n3"));
    // The client certificate may not speak as a node; a node certificate may,
    // as itself only.
    let refused = ping_as(tmp.path(), "alice-client", &seed, &n2, &n1).expect_err("client as node");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert!(
        refused.message().contains("--node"),
        "{}",
        refused.message()
    );
    let refused = stream_as(tmp.path(), "alice-client", &seed).expect_err("client stream");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    ping_as(tmp.path(), "n2-node", &seed, &n2, &n1).expect("n2 as itself");
    // n2 relays broadcasts "from n3" to n1: refused unsigned or signed by n2,
    // delivered when n3 signed it.
    let delivered = gsp::transport::pb::gossip::v1::AckStatus::Delivered as i32;
    let (status, reason) = relay_as(tmp.path(), ("n2-node", &n2), &seed, &n3, None);
    assert_ne!(status, delivered);
    assert!(reason.contains("not signed by its origin"), "{reason}");
    let (status, reason) = relay_as(tmp.path(), ("n2-node", &n2), &seed, &n3, Some("n2-node"));
    assert_ne!(status, delivered);
    assert!(reason.contains("not node n3's"), "{reason}");
    let (status, reason) = relay_as(tmp.path(), ("n2-node", &n2), &seed, &n3, Some("n3-node"));
    assert_eq!(status, delivered, "{reason}");
    // n2 pushes a newer record of n3 with another address: unsigned, signed by
    // itself, or renaming n3: none is taken; n3 keeps its address on n1.
    // (Had one been taken, n3 would refute it, but only at an incarnation past
    // the forged one: the incarnation shows whether it ever was.)
    let n3_on_n1 = || {
        let out = run_gsp(&peers_args, LIMIT);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let n = v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node_id"] == n3.as_str())
            .unwrap()
            .clone();
        (
            n["address"].as_str().unwrap().to_owned(),
            n["incarnation"].as_str().unwrap().parse::<u64>().unwrap(),
        )
    };
    let real = n3_on_n1();
    for (name, signer) in [
        ("n3", None),
        ("n3", Some("n2-node")),
        ("n2", Some("n2-node")),
    ] {
        forge_record_as(tmp.path(), ("n2-node", &n2), &seed, (&n3, name), signer);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(n3_on_n1(), real, "a forged record of n3 was taken");
    let forged = ping_as(tmp.path(), "n2-node", &seed, &n3, &n1).expect_err("n2 as n3");
    assert_eq!(forged.code(), tonic::Code::PermissionDenied);
    assert!(
        forged.message().contains("cannot speak as node"),
        "{}",
        forged.message()
    );

    for c in &mut children.0 {
        assert!(stop(c).success());
    }
}
