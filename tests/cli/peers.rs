//! The client commands against running nodes: `peers`, `watch`, `query`,
//! and exit code 3 when no node listens.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use super::{LIMIT, peers_until};
use crate::common::{
    self, gsp_bin,
    procs::{spawn_node_with, stop},
    run_gsp, stderr,
};

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
    // --snapshot: the members as they are, then the events.
    let snap = run_gsp(
        &[
            "watch",
            "--addr",
            &addr_a,
            "--snapshot",
            "--json",
            "--timeout",
            "0.5",
        ],
        LIMIT,
    );
    assert_eq!(snap.status.code(), Some(0), "{}", stderr(&snap));
    let members: Vec<Value> = String::from_utf8_lossy(&snap.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["kind"] == "member")
        .collect();
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(
        members
            .iter()
            .any(|m| m["node_name"] == "beta" && m["state"] == "alive"),
        "{members:?}"
    );
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
    // One of a thing is not "1 things".
    assert!(table.contains("\n1 member, 1 up"), "{table}");
    let out = run_gsp(&["peers", "--addr", &addr, "--summary"], LIMIT);
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.starts_with("1 node alive"), "{summary}");
    // Colour: never into a pipe by default; on request, states coloured.
    assert!(!table.contains('\u{1b}'), "{table}");
    let out = run_gsp(&["peers", "--addr", &addr, "--color", "always"], LIMIT);
    let coloured = String::from_utf8_lossy(&out.stdout);
    assert!(coloured.contains("\u{1b}[38;5;10malive"), "{coloured:?}");
    let out = run_gsp(&["peers", "--addr", &addr, "--color", "never"], LIMIT);
    assert!(!String::from_utf8_lossy(&out.stdout).contains('\u{1b}'));
    // gsp query's table fits too.
    let out = run_gsp(&["query", "--addr", &addr], LIMIT);
    let q = String::from_utf8_lossy(&out.stdout);
    assert!(q.lines().all(|l| l.chars().count() <= 100), "{q}");
    let out = run_gsp(&["peers", "--addr", &addr, "--wide"], LIMIT);
    let wide = String::from_utf8_lossy(&out.stdout);
    assert!(
        wide.contains("NODE ID") && wide.contains("zone=eu-west-1"),
        "{wide}"
    );
    common::procs::stop(&mut node);
}
