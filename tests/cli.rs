//! The built `gsp` binary driven as a user would: JSON parsed, exit codes checked.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use common::{gsp_bin, run_gsp};
use serde_json::Value;
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

const LIMIT: Duration = Duration::from_secs(120);

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn version_names_the_commit() {
    let out = run_gsp(&["--version"], LIMIT);
    assert!(out.status.success());
    let v = String::from_utf8(out.stdout).unwrap();
    assert!(
        v.starts_with(&format!("gsp {}", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    assert!(v.contains("(git "), "{v}");
}

#[test]
fn help_lists_only_working_commands() {
    let out = run_gsp(&["--help"], LIMIT);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for cmd in ["node", "bench", "completions"] {
        assert!(help.contains(cmd), "{cmd} missing from help:\n{help}");
    }
    assert!(help.contains("Exit codes"), "{help}");
}

#[test]
fn completions_are_generated() {
    let out = run_gsp(&["completions", "bash"], LIMIT);
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(
        script.contains("_gsp") && script.contains("bench"),
        "{script}"
    );
}

#[test]
fn bad_flags_exit_2_and_name_the_flag() {
    let out = run_gsp(&["bench", "--payload", "5XB"], LIMIT);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("--payload") && err.contains("XB"), "{err}");

    let out = run_gsp(&["bench", "--no-such-flag"], LIMIT);
    assert_eq!(out.status.code(), Some(2));

    let out = run_gsp(&["bench", "--nodes", "1", "--no-write"], LIMIT);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--nodes must be at least 2"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn small_bench_reports_every_key_with_all_messages_acked() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().to_str().unwrap();
    let out = run_gsp(
        &[
            "bench",
            "--nodes",
            "2",
            "--messages-per-peer",
            "3",
            "--payload",
            "64KiB",
            "--iterations",
            "1",
            "--json",
            "--out",
            out_dir,
        ],
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["schema"], "gsp.bench.v1");
    let s = &r["scenario"];
    assert_eq!(s["name"], "flood");
    assert_eq!(s["nodes"], 2);
    assert_eq!(s["messages_per_peer"], 3);
    assert_eq!(s["payload_bytes"], 65536);
    assert_eq!(s["iterations"], 1);
    assert_eq!(s["warmup"], 1);
    let res = &r["results"];
    assert_eq!(res["messages_sent"], 6);
    assert_eq!(res["messages_acked"], res["messages_sent"]);
    assert_eq!(res["errors"], 0);
    for k in ["min", "p50", "p90", "p99", "p999", "max", "mean"] {
        assert!(
            res["ack_latency_ns"][k].as_f64().unwrap() > 0.0,
            "ack_latency_ns.{k}"
        );
    }
    for k in ["min", "p50", "max"] {
        assert!(
            res["convergence_ns"][k].as_u64().unwrap() > 0,
            "convergence_ns.{k}"
        );
    }
    for k in [
        "throughput_bytes_per_sec",
        "messages_per_sec",
        "cpu_seconds",
    ] {
        assert!(res[k].as_f64().unwrap() > 0.0, "{k}");
    }
    assert!(res["peak_rss_bytes"].as_u64().unwrap() > 0);
    assert!(res["allocations_per_message"].as_f64().unwrap() > 0.0);
    assert!(!res["histogram"].as_str().unwrap().is_empty());
    assert!(
        r["baseline"]["tcp_throughput_bytes_per_sec"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(r["baseline"]["tcp_convergence_ns"].as_u64().unwrap() > 0);
    assert!(r["efficiency"].as_f64().unwrap() > 0.0);
    for k in ["gsp_version", "git_sha", "timestamp"] {
        assert!(r[k].is_string(), "{k}");
    }
    assert!(r["host"]["cores"].as_u64().unwrap() >= 1);
    assert!(r["host"]["kernel"].is_string());
    assert!(r["host"]["cpu_model"].is_string());

    // The same report was written to --out.
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 1);
    let written: Value =
        serde_json::from_slice(&std::fs::read(files[0].as_ref().unwrap().path()).unwrap()).unwrap();
    assert_eq!(written["results"]["histogram"], r["results"]["histogram"]);
}

#[test]
fn compare_passes_against_itself_and_fails_on_a_regression() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.json");
    let args = [
        "bench",
        "--nodes",
        "2",
        "--messages-per-peer",
        "2",
        "--payload",
        "16KiB",
        "--iterations",
        "1",
        "--no-write",
    ];
    let out = run_gsp(&[&args[..], &["--json"]].concat(), LIMIT);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut report: Value = serde_json::from_slice(&out.stdout).unwrap();

    // A baseline so good that no run can match it: efficiency 1000, p99 1 ns.
    report["efficiency"] = 1000.0.into();
    report["results"]["ack_latency_ns"]["p99"] = 1.into();
    std::fs::write(&base, serde_json::to_vec(&report).unwrap()).unwrap();
    let out = run_gsp(
        &[
            &args[..],
            &[
                "--compare",
                base.to_str().unwrap(),
                "--max-regression",
                "50",
            ],
        ]
        .concat(),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("REGRESSED") && text.contains("regression detected"),
        "{text}"
    );

    // A baseline so bad that every run beats it.
    report["efficiency"] = 0.0001.into();
    report["results"]["ack_latency_ns"]["p99"] = 3_600_000_000_000u64.into();
    std::fs::write(&base, serde_json::to_vec(&report).unwrap()).unwrap();
    let out = run_gsp(
        &[&args[..], &["--compare", base.to_str().unwrap()]].concat(),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no regression"));

    // Another workload cannot be compared: a usage error naming both.
    let out = run_gsp(
        &[
            "bench",
            "--nodes",
            "3",
            "--messages-per-peer",
            "2",
            "--payload",
            "16KiB",
            "--iterations",
            "1",
            "--no-write",
            "--compare",
            base.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("2 nodes") && stderr(&out).contains("3 nodes"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_peer_vanishing_mid_flood_ends_the_bench_with_a_clear_error() {
    let out = run_gsp(
        &[
            "bench",
            "--nodes",
            "3",
            "--messages-per-peer",
            "40",
            "--payload",
            "256KiB",
            "--iterations",
            "2",
            "--warmup",
            "0",
            "--no-write",
            "--no-baseline",
            "--kill-node-after",
            "20",
            "--timeout",
            "20",
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.starts_with("error: bench did not complete"), "{err}");
    assert!(
        err.contains("closed") || err.contains("did not converge"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// Starts `gsp node` on an ephemeral port and returns the child and its address,
/// read from the node's startup log line.
fn spawn_node(data_dir: &std::path::Path) -> (std::process::Child, String) {
    let mut child = Command::new(gsp_bin())
        .args([
            "node",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ])
        .env("GSP_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("node exited before serving").unwrap();
        if let Some(rest) = line.split("listen=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
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
