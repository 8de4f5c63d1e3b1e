//! A node under connection floods from another loopback address (127.0.0.2,
//! 127.0.0.3: another "host" on this machine): sockets that send nothing, and
//! sockets that send only the HTTP/2 preface. A legitimate client keeps getting
//! answers, the flood's connections stay within the per-address cap, and the
//! refusals are counted. Each flood is bounded in count and time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "tests; the flood figures are printed for the record"
)]

mod common;

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use gsp::transport::{pb::admin::v1 as apb, refusals::Refused};
use tokio::{io::AsyncWriteExt as _, net::TcpSocket};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Opens up to `count` connections from `source` to `addr` for at most
/// `limit`, each sending `opening`, and holds them until dropped.
async fn flood(
    source: IpAddr,
    addr: SocketAddr,
    count: usize,
    opening: &'static [u8],
    limit: Duration,
) -> Vec<tokio::net::TcpStream> {
    let deadline = Instant::now() + limit;
    let mut held = Vec::new();
    while held.len() < count && Instant::now() < deadline {
        let sock = TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::new(source, 0)).unwrap();
        let Ok(Ok(mut tcp)) =
            tokio::time::timeout(Duration::from_millis(500), sock.connect(addr)).await
        else {
            continue;
        };
        if !opening.is_empty() {
            let _ = tcp.write_all(opening).await;
        }
        held.push(tcp);
    }
    held
}

/// `calls` ListMembers calls on fresh connections (as `gsp peers` makes them);
/// returns the latencies of those that succeeded, and how many failed.
async fn legit_calls(addr: SocketAddr, calls: usize) -> (Vec<Duration>, usize) {
    let mut ok = Vec::new();
    let mut failed = 0;
    for _ in 0..calls {
        let t = Instant::now();
        let r = async {
            let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .unwrap()
                .timeout(Duration::from_secs(3))
                .connect()
                .await
                .map_err(|e| e.to_string())?;
            apb::admin_client::AdminClient::new(ch)
                .list_members(apb::ListMembersRequest::default())
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match r {
            Ok(_) => ok.push(t.elapsed()),
            Err(e) => {
                eprintln!("legit call failed: {e}");
                failed += 1;
            }
        }
    }
    (ok, failed)
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get((v.len() * 99 / 100).min(v.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_from_one_address_do_not_lock_out_other_clients() {
    let node = common::member_node("target", vec![], "default").await;
    let addr = node.local_addr();
    let (quiet, failed) = legit_calls(addr, 24).await;
    assert_eq!(failed, 0);
    let attacker = tokio::spawn(flood(
        [127, 0, 0, 2].into(),
        addr,
        2000,
        b"",
        Duration::from_secs(6),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (loud, failed) = legit_calls(addr, 24).await;
    let held = attacker.await.unwrap();
    assert_eq!(failed, 0, "a legitimate client was locked out");
    eprintln!(
        "idle-socket flood: {} sockets; gsp peers-like call p99 {:?} quiet, {:?} under flood",
        held.len(),
        p99(quiet),
        p99(loud)
    );
    let (opening, _) = node.connections().counts();
    assert!(
        opening <= node.connections().limits().max_opening_per_address + 1,
        "{opening} connections being opened"
    );
    assert!(node.refusals().count(Refused::OpeningTableFull) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preface_only_connections_stay_within_the_per_address_cap() {
    let node = common::member_node("target", vec![], "default").await;
    let addr = node.local_addr();
    let held = flood(
        [127, 0, 0, 3].into(),
        addr,
        1500,
        PREFACE,
        Duration::from_secs(8),
    )
    .await;
    // Let the node finish opening what it accepted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, established) = node.connections().counts();
    let cap = node.connections().limits().max_per_address;
    assert!(
        established <= cap,
        "{established} connections established from one address (cap {cap}; {} opened)",
        held.len()
    );
    assert!(node.refusals().count(Refused::PerAddressCap) > 0);
    let (_, failed) = legit_calls(addr, 10).await;
    assert_eq!(failed, 0, "a legitimate client was locked out");
    drop(held);
}
