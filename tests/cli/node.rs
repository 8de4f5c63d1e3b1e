//! `gsp node` as a process: JSON logs, health and reflection, SIGTERM and
//! SIGHUP, and a data directory two nodes cannot share.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use super::LIMIT;
use crate::common::{
    self, gsp_bin,
    procs::{spawn_node, stop},
    run_gsp, stderr,
};

#[test]
fn json_logs_are_one_object_per_line() {
    use std::io::{BufRead as _, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(gsp_bin())
        .args([
            "node",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "off",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("GSP_LOG_FORMAT", "json")
        .env("GSP_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut serving = None;
    for line in lines.map_while(Result::ok) {
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{v}");
        if v["fields"]["message"] == "node serving" {
            serving = Some(v);
            break;
        }
    }
    let v = serving.expect("the node said it serves");
    assert_eq!(v["level"], "INFO");
    assert!(
        v["fields"]["listen"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{v}"
    );
    stop(&mut child);
}

#[test]
fn node_serves_health_and_reflection_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_node(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
        let resp = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            resp.status(),
            tonic_health::pb::health_check_response::ServingStatus::Serving
        );
        let resp = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "gsp.gossip.v1.DataPlane".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            resp.status(),
            tonic_health::pb::health_check_response::ServingStatus::Serving
        );

        let mut refl = ServerReflectionClient::new(channel);
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = refl
            .server_reflection_info(tokio_stream::iter([req]))
            .await
            .unwrap()
            .into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) =
            stream.message().await.unwrap().unwrap().message_response
        else {
            panic!("no service list")
        };
        let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
        assert!(
            names.contains(&"gsp.gossip.v1.DataPlane".to_owned()),
            "{names:?}"
        );
        assert!(
            names.contains(&"grpc.health.v1.Health".to_owned()),
            "{names:?}"
        );
    });
    // The node id was persisted.
    let id = std::fs::read_to_string(dir.path().join("node_id")).unwrap();
    assert!(!id.trim().is_empty());

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn two_nodes_cannot_share_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let (mut first, _) = spawn_node(dir.path());
    let out = run_gsp(
        &[
            "node",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        LIMIT,
    );
    first.kill().unwrap();
    let _ = first.wait();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("in use by another gsp node"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn sighup_does_not_kill_a_plaintext_node() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, addr, log) = common::procs::spawn_node_logged(tmp.path(), &[], &[]);
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !log.lock().unwrap().contains("SIGHUP: reloaded") {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the node died on SIGHUP:\n{}",
            log.lock().unwrap()
        );
        assert!(std::time::Instant::now() < deadline, "no SIGHUP log line");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = run_gsp(
        &["peers", "--addr", &addr, "--json"],
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stop(&mut child).success(), "a graceful stop still exits 0");
}

/// The test helpers' nodes die with the thread that started them, so a test
/// that fails before stopping its nodes leaves none running.
#[test]
fn a_test_node_does_not_outlive_its_test() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let pid = std::thread::spawn(move || {
        let (child, _) = crate::common::procs::spawn_node_with(&path, &[]);
        // Dropped without kill or wait, as a panicking test would.
        child.id()
    })
    .join()
    .unwrap();
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        // Gone, or a zombie nobody reaps: either way not running.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim().to_owned()));
        if state.as_deref().is_none_or(|s| s.starts_with('Z')) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node {pid} still running: {state:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
