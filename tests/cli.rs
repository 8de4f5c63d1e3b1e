//! The built `gsp` binary driven as a user would: JSON parsed, exit codes checked.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::stderr;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use common::{
    gsp_bin,
    procs::{spawn_node, spawn_node_with, stop},
    run_gsp,
};
use serde_json::Value;
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

const LIMIT: Duration = Duration::from_secs(120);

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
    for cmd in [
        "node",
        "peers",
        "query",
        "send",
        "watch",
        "bench",
        "run",
        "jobs",
        "logs",
        "cancel",
        "completions",
    ] {
        assert!(help.contains(cmd), "{cmd} missing from help:\n{help}");
    }
    assert!(help.contains("Exit codes"), "{help}");
}

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
fn check_config_prints_the_effective_settings_or_names_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "gsp:\n  fanout: 5\n  exec: true\n  labels: {zone: eu}\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let out = run_gsp(
        &[
            "node",
            "--check-config",
            "--json",
            "--config",
            good.to_str().unwrap(),
            "--label",
            "rack=r3",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "gsp.node-config.v1");
    assert_eq!(
        (v["fanout"].as_u64(), v["exec"].as_bool()),
        (Some(5), Some(true))
    );
    assert_eq!(
        v["labels"]["rack"], "r3",
        "the flag wins over the file's labels: {v}"
    );
    assert_eq!(v["admin_token"], "none");
    assert_eq!(v["data_dir"], data.to_str().unwrap());
    assert!(!data.exists(), "--check-config leaves the data dir alone");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "gsp:\n  fanout: lots\n  bogus: 1\n").unwrap();
    let out = run_gsp(
        &["node", "--check-config", "--config", bad.to_str().unwrap()],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("gsp.bogus: unknown key") && err.contains("gsp.fanout"),
        "{err}"
    );
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
fn bench_sim_reports_a_swarm_broadcast_delivered_once_everywhere() {
    let out = run_gsp(
        &[
            "bench",
            "sim",
            "--nodes",
            "300",
            "--payload",
            "2MiB",
            "--dead",
            "10",
            "--json",
            "--no-write",
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &v["results"];
    assert_eq!(v["scenario"]["name"], "sim");
    assert_eq!(r["live"], 290);
    assert_eq!(r["delivered"], 290);
    assert_eq!(r["extra_deliveries"], 0);
    assert_eq!(r["origin_bytes"], 2 << 20, "the origin uploads one copy");
    assert!(r["pieces"].as_u64().unwrap() > 1);
    assert!(r["ratio_to_floor"].as_f64().unwrap() > 1.0);
    let out = run_gsp(&["bench", "sim", "--link", "fast"], LIMIT);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--link"), "{}", stderr(&out));
}

#[test]
fn shaped_broadcast_bench_refuses_bad_rates_and_other_scenarios() {
    let out = run_gsp(&["bench", "broadcast", "--shaped", "fast"], LIMIT);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--shaped takes a link rate"),
        "{}",
        stderr(&out)
    );
    let out = run_gsp(&["bench", "flood", "--shaped", "1gbit"], LIMIT);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--shaped applies to the broadcast scenario only"),
        "{}",
        stderr(&out)
    );
    let out = run_gsp(
        &["bench", "broadcast", "--shaped", "1gbit", "--nodes", "1"],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("at least 2 --nodes"),
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

fn peers_json(addr: &str) -> Value {
    let out = run_gsp(&["peers", "--addr", addr, "--json"], LIMIT);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Polls `gsp peers --json` on `addr` until `pred` holds (bounded; a hang detector).
fn peers_until(addr: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = peers_json(addr);
        if pred(&v) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "condition never held; last answer: {v:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn peers_json_has_the_documented_fields_and_filters() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, addr_a) = spawn_node_with(
        da.path(),
        &[
            "--gossip-interval",
            "0.1",
            "--name",
            "alpha",
            "--label",
            "zone=eu",
        ],
    );
    let (mut b, addr_b) = spawn_node_with(
        db.path(),
        &[
            "--gossip-interval",
            "0.1",
            "--name",
            "beta",
            "--join",
            &addr_a,
        ],
    );
    let v = peers_until(&addr_b, |v| {
        v["total"] == 2
            && v["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|n| n["state"] == "alive")
    });
    assert_eq!(v["schema"], "gsp.peers.v1");
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(
        nodes[0]["node_name"], "beta",
        "the local node is listed first"
    );
    assert_eq!(nodes[0]["local"], true);
    assert_eq!(nodes[1]["local"], false);
    let alpha = &nodes[1];
    for key in [
        "node_id",
        "node_name",
        "address",
        "domain_id",
        "status",
        "cpu",
        "memory",
        "gpu",
        "resource_tags",
        "last_seen",
        "state",
        "incarnation",
        "version",
        "labels",
        "maintenance",
    ] {
        assert!(alpha.get(key).is_some(), "missing {key}: {alpha:#}");
    }
    assert_eq!(alpha["address"], addr_a.as_ref() as &str);
    assert_eq!(alpha["status"], "online");
    assert_eq!(alpha["maintenance"], "normal");
    assert_eq!(alpha["labels"]["zone"], "eu");
    assert!(alpha["last_seen"].as_str().unwrap().ends_with('Z'));
    // Nanoseconds since the epoch, above 2^53: a string, so jq keeps every digit.
    let inc: u64 = alpha["incarnation"].as_str().unwrap().parse().unwrap();
    assert!(inc > 1 << 53, "{alpha}");

    let out = run_gsp(
        &["peers", "--addr", &addr_b, "--json", "--label", "zone=eu"],
        LIMIT,
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["total"], 1);
    assert_eq!(v["nodes"][0]["node_name"], "alpha");
    let out = run_gsp(
        &["peers", "--addr", &addr_b, "--json", "--state", "dead"],
        LIMIT,
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["total"], 0);

    // The table names both and marks the local one.
    let out = run_gsp(&["peers", "--addr", &addr_b], LIMIT);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("alpha") && table.contains("beta") && table.contains('*'),
        "{table}"
    );

    assert_eq!(stop(&mut a).code(), Some(0));
    peers_until(&addr_b, |v| v["nodes"][1]["state"] == "left");
    assert_eq!(stop(&mut b).code(), Some(0));
}

#[test]
fn client_commands_exit_3_when_no_node_listens() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    for cmd in ["peers", "watch"] {
        let out = run_gsp(&[cmd, "--addr", &addr, "--timeout", "3"], LIMIT);
        assert_eq!(out.status.code(), Some(3), "{cmd}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("cannot reach {addr}")),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn watch_prints_joins_and_leaves_as_json_lines_and_exits_3_when_the_node_goes() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, addr_a) = spawn_node_with(da.path(), &["--gossip-interval", "0.1"]);
    let watcher = Command::new(gsp_bin())
        .args(["watch", "--addr", &addr_a, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (mut b, _) = spawn_node_with(
        db.path(),
        &[
            "--gossip-interval",
            "0.1",
            "--name",
            "beta",
            "--join",
            &addr_a,
        ],
    );
    peers_until(&addr_a, |v| v["total"] == 2);
    assert_eq!(stop(&mut b).code(), Some(0));
    peers_until(&addr_a, |v| v["nodes"][1]["state"] == "left");
    assert_eq!(stop(&mut a).code(), Some(0));
    let out = watcher.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("went away"), "{}", stderr(&out));
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["node_name"] == "beta")
        .map(|e| (e["kind"].as_str().unwrap(), e["state"].as_str().unwrap()))
        .collect();
    assert!(kinds.contains(&("joined", "alive")), "{events:?}");
    assert!(kinds.contains(&("left", "left")), "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| e["schema"] == "gsp.event.v1" && e["time"].is_string())
    );
}

#[test]
fn an_iarnet_config_loads_and_bad_configs_list_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = dir.path().join("config.yaml");
    std::fs::write(
        &cfg,
        format!(
            "host: 127.0.0.1\ninitial_peers: []\ndata_dir: {}\napplication:\n  workspace_dir: ../w\nresource:\n  name: node.0\n  domain_id: domain.abc\n  discovery:\n    enabled: true\n    gossip_interval_seconds: 30\n    node_ttl_seconds: 180\n    max_gossip_peers: 10\n    max_hops: 5\n    query_timeout_seconds: 5\n    fanout: 3\n    use_anti_entropy: true\n    anti_entropy_interval_seconds: 300\nenable_local_docker: true\ntransport:\n  http:\n    port: 8083\n  rpc:\n    discovery:\n      port: 50005\nlogging:\n  enabled: true\n",
            data.display()
        ),
    )
    .unwrap();
    let (mut node, addr) = spawn_node_with(&data, &["--config", cfg.to_str().unwrap()]);
    let v = peers_json(&addr);
    assert_eq!(v["nodes"][0]["node_name"], "node.0");
    assert_eq!(v["nodes"][0]["domain_id"], "domain.abc");
    assert!(data.join("node_id").exists());
    assert_eq!(stop(&mut node).code(), Some(0));

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "inital_peers: [x]\ngsp:\n  fanout: many\n  gossip_interval: -2\n",
    )
    .unwrap();
    let out = run_gsp(
        &[
            "node",
            "--config",
            bad.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("inital_peers: unknown key (did you mean 'initial_peers'?)"),
        "{err}"
    );
    assert!(
        err.contains("gsp.fanout") && err.contains("gsp.gossip_interval"),
        "{err}"
    );

    let out = run_gsp(
        &[
            "node",
            "--fanout",
            "0",
            "--max-members",
            "8",
            "--listen",
            "nowhere",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--fanout")
            && stderr(&out).contains("--listen")
            && stderr(&out).contains("--max-members / gsp.max_members: must be between 16"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn membership_bench_reports_join_detection_traffic_and_false_positives() {
    let out = run_gsp(
        &[
            "bench",
            "membership",
            "--nodes",
            "5",
            "--kills",
            "2",
            "--stalls",
            "1",
            "--traffic-window",
            "1",
            "--json",
            "--no-write",
        ],
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["schema"], "gsp.bench.v1");
    assert_eq!(r["scenario"]["name"], "membership");
    assert_eq!(r["scenario"]["nodes"], 5);
    let res = &r["results"];
    assert_eq!(res["detection_samples"].as_array().unwrap().len(), 2);
    assert_eq!(res["detection_rounds"]["samples"], 2);
    assert!(res["join_rounds"].as_f64().unwrap() >= 0.0);
    assert!(res["traffic_bytes_per_sec_per_node"].as_f64().unwrap() > 0.0);
    assert!(res["false_positives"].is_u64());
    assert!(res["rounds_observed"].as_f64().unwrap() > 0.0);
    // Up to 100 nodes the bench runs 0.2 s rounds; what a node costs is reported.
    assert_eq!(res["gossip_interval_ms"].as_f64(), Some(200.0));
    assert!(res["cpu_ms_per_node_round"].as_f64().unwrap() > 0.0);
    assert!(res["rss_bytes_per_node"].as_u64().unwrap() > 0);

    let out = run_gsp(
        &["bench", "membership", "--nodes", "2", "--no-write"],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--nodes"), "{}", stderr(&out));
}

#[test]
fn query_finds_exactly_the_gpu_node_from_any_node_and_exits_1_on_no_match() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let common = ["--gossip-interval", "0.1", "--resource-interval", "0.2"];
    let (mut a, addr_a) = spawn_node_with(
        dirs[0].path(),
        &[&common[..], &["--name", "gpu-box", "--capacity", "gpu=2"]].concat(),
    );
    let (mut b, addr_b) = spawn_node_with(
        dirs[1].path(),
        &[
            &common[..],
            &["--name", "cpu-a", "--capacity", "gpu=0", "--join", &addr_a],
        ]
        .concat(),
    );
    let (mut c, addr_c) = spawn_node_with(
        dirs[2].path(),
        &[
            &common[..],
            &["--name", "cpu-b", "--capacity", "gpu=0", "--join", &addr_a],
        ]
        .concat(),
    );
    for addr in [&addr_a, &addr_b, &addr_c] {
        peers_until(addr, |v| {
            v["total"] == 3
                && v["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|n| n["gpu"].is_object())
        });
    }
    for addr in [&addr_a, &addr_b, &addr_c] {
        let out = run_gsp(&["query", "--addr", addr, "--gpu", "1", "--json"], LIMIT);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["schema"], "gsp.query.v1");
        assert_eq!(v["total"], 1);
        assert_eq!(v["nodes"][0]["node_name"], "gpu-box");
        assert_eq!(v["nodes"][0]["gpu"]["available"], 2);
        assert!(v["query_id"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(v["hops_used"].is_u64());
    }
    let out = run_gsp(&["query", "--addr", &addr_b, "--gpu", "9"], LIMIT);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // Every node, best first: the GPU node leads.
    let out = run_gsp(
        &[
            "query",
            "--addr",
            &addr_c,
            "--json",
            "--limit",
            "2",
            "--max-hops",
            "1000",
        ],
        LIMIT,
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["total"], 2);
    assert_eq!(v["matched"], 3);
    assert_eq!(v["max_hops"], 8, "absurd hop counts are capped");
    assert_eq!(v["nodes"][0]["node_name"], "gpu-box");

    // The aggregate view.
    let out = run_gsp(&["peers", "--addr", &addr_b, "--summary", "--json"], LIMIT);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "gsp.summary.v1");
    assert_eq!(v["nodes"], 3);
    assert_eq!(v["gpu"]["total"], 2);
    assert_eq!(v["by_tag"]["gpu"], serde_json::json!(["gpu-box"]));
    assert_eq!(v["by_available"][0]["node_name"], "gpu-box");

    // Hardware inventory, fetched from each node.
    let out = run_gsp(&["peers", "--addr", &addr_b, "--detailed", "--json"], LIMIT);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for n in v["nodes"].as_array().unwrap() {
        assert!(
            n["inventory"]["cpu_logical_cores"].as_u64().unwrap() >= 1,
            "{n:#}"
        );
        assert!(n["inventory"]["kernel"].is_string());
    }
    for child in [&mut a, &mut b, &mut c] {
        assert_eq!(stop(child).code(), Some(0));
    }
}

#[test]
fn bad_query_amounts_exit_2_naming_the_flag() {
    for (flag, value, says) in [
        ("--gpu", "-1", "negative"),
        ("--cpu", "two", "not a CPU amount"),
        ("--memory", "4XB", "unknown unit"),
        ("--memory", "99999999TiB", "too large"),
        ("--cpu", "1e30", "too large"),
    ] {
        let out = run_gsp(&["query", flag, value, "--addr", "127.0.0.1:1"], LIMIT);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let err = stderr(&out);
        assert!(
            err.contains(flag) && err.contains(says),
            "{flag} {value}: {err}"
        );
    }
    let out = run_gsp(
        &[
            "node",
            "--capacity",
            "disk=1",
            "--data-dir",
            "/nonexistent/x",
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--capacity") && stderr(&out).contains("disk"),
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

#[test]
fn every_command_has_examples_and_a_man_page() {
    let commands = [
        "node",
        "peers",
        "query",
        "send",
        "maint",
        "labels",
        "force-leave",
        "watch",
        "run",
        "jobs",
        "logs",
        "cancel",
        "bench",
        "tls",
        "completions",
        "man",
    ];
    for c in commands {
        let out = run_gsp(&[c, "--help"], LIMIT);
        assert!(out.status.success(), "gsp {c} --help");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("Examples:"),
            "gsp {c} --help has no examples:\n{help}"
        );
    }
    let out = run_gsp(&["man"], LIMIT);
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.contains(".TH gsp 1") && page.contains("force\\-leave"),
        "{page}"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run_gsp(&["man", "--out", dir.path().to_str().unwrap()], LIMIT);
    assert!(out.status.success(), "{}", stderr(&out));
    for c in commands {
        let page = std::fs::read_to_string(dir.path().join(format!("gsp-{c}.1")))
            .unwrap_or_else(|e| panic!("gsp-{c}.1: {e}"));
        assert!(page.contains(".SH NAME"), "gsp-{c}.1");
    }
    let node = std::fs::read_to_string(dir.path().join("gsp-node.1")).unwrap();
    assert!(node.contains("on\\-event"), "gsp-node.1 lacks --on-event");
}

#[test]
fn an_old_gsp_data_in_the_working_directory_is_still_used_and_said() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::create_dir(cwd.path().join("gsp-data")).unwrap();
    std::fs::write(cwd.path().join("gsp-data/node_id"), "x").unwrap();
    let out = std::process::Command::new(common::gsp_bin())
        .args(["node", "--check-config", "--json"])
        .current_dir(cwd.path())
        .env_remove("GSP_DATA_DIR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["data_dir"], "gsp-data", "{v}");
    assert!(
        v["notes"][0].as_str().unwrap().contains("./gsp-data"),
        "{v}"
    );
    // Elsewhere the default is a per-user (or, as root, system) state dir.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::gsp_bin())
        .args(["node", "--check-config", "--json"])
        .current_dir(elsewhere.path())
        .env_remove("GSP_DATA_DIR")
        .env_remove("XDG_STATE_HOME")
        .env("HOME", "/home/someone")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dir = v["data_dir"].as_str().unwrap();
    assert!(
        dir == "/var/lib/gsp" || dir == "/home/someone/.local/state/gsp",
        "{v}"
    );
}

#[test]
fn the_peers_table_fits_100_columns_and_wide_shows_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (mut node, addr) = common::procs::spawn_node_with(
        dir.path(),
        &[
            "--name",
            "a-rather-long-node-name",
            "--label",
            "zone=eu-west-1",
        ],
    );
    let out = run_gsp(&["peers", "--addr", &addr], LIMIT);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    for line in table.lines() {
        assert!(
            line.chars().count() <= 100,
            "{} columns: {line}",
            line.chars().count()
        );
    }
    assert!(!table.contains("NODE ID"), "{table}");
    let out = run_gsp(&["peers", "--addr", &addr, "--wide"], LIMIT);
    let wide = String::from_utf8_lossy(&out.stdout);
    assert!(
        wide.contains("NODE ID") && wide.contains("zone=eu-west-1"),
        "{wide}"
    );
    common::procs::stop(&mut node);
}

#[test]
fn node_and_bench_help_list_only_the_flags_they_use() {
    let help = |args: &[&str]| {
        let out = run_gsp(args, LIMIT);
        assert!(out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let node = help(&["node", "--help"]);
    for client_only in ["--addr", "--token", "--timeout"] {
        assert!(
            !node.contains(client_only),
            "gsp node --help lists {client_only}"
        );
    }
    assert!(
        node.contains("--tls-cert") && node.contains("TLS options:"),
        "{node}"
    );
    let bench = help(&["bench", "--help"]);
    for unused in ["--addr", "--token", "--tls-ca"] {
        assert!(!bench.contains(unused), "gsp bench --help lists {unused}");
    }
    let peers = help(&["peers", "--help"]);
    assert!(
        peers.contains("Client options:") && peers.contains("--addr"),
        "{peers}"
    );
    // Hidden, not refused: a shared GSP_ADDR or --addr in a wrapper still works.
    let out = run_gsp(&["node", "--addr", "127.0.0.1:1", "--check-config"], LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
