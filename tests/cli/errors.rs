//! The error messages a user gets when a node is missing, dies under a stream,
//! or refuses: each names the node and why, with its exit code.
use crate::common;

use common::stderr;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{
    gsp_bin,
    procs::{spawn_node_logged, spawn_node_with, stop, wait_for_members},
    run_gsp,
};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn no_node_listening_says_so_once_with_what_to_do() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let out = run_gsp(&["peers", "--addr", &addr], LIMIT);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains(&addr) && err.contains("connection refused"),
        "{err}"
    );
    assert!(
        err.contains("gsp node") && err.contains("GSP_ADDR"),
        "{err}"
    );
    assert_eq!(
        err.lines().count(),
        1,
        "one line, no repeated causes: {err}"
    );
}

#[test]
fn a_node_killed_under_watch_went_away_and_tls_is_not_blamed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut node, addr) = spawn_node_with(dir.path(), &[]);
    let mut watch = Command::new(gsp_bin())
        .args(["watch", "--addr", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    node.kill().unwrap();
    node.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while watch.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "gsp watch did not notice");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = watch.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(err.contains("went away") && err.contains(&addr), "{err}");
    assert!(
        !err.contains("TLS"),
        "a dead node is not a TLS problem: {err}"
    );
}

#[test]
fn a_routed_refusal_names_the_member_that_refused() {
    const TOKEN: &str = "tok-routed-5b1";
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, addr_a) = spawn_node_with(da.path(), &["--name", "ra", "--gossip-interval", "0.1"]);
    let (mut b, _addr_b, _log) = spawn_node_logged(
        db.path(),
        &[
            "--name",
            "rb",
            "--gossip-interval",
            "0.1",
            "--join",
            &addr_a,
        ],
        &[("GSP_ADMIN_TOKEN", TOKEN)],
    );
    wait_for_members(&addr_a, 2, &[]);
    // ra has no token and lets rb judge the caller: rb refuses.
    let out = run_gsp(
        &[
            "maint",
            "--addr",
            &addr_a,
            "set",
            "maintenance",
            "--node",
            "rb",
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("member ") && err.contains("refused"), "{err}");
    assert!(err.contains("token"), "{err}");
    assert!(
        !err.contains(&format!("node at {addr_a} refused")),
        "blames the forwarding node: {err}"
    );
    stop(&mut b);
    stop(&mut a);
}
