//! `gsp labels`: run-time labels across nodes and restarts, driven as a user
//! would against real nodes on 127.0.0.1.
use crate::common;

use common::stderr;

use std::time::Duration;

use common::{
    procs::{cluster, spawn_node_logged, spawn_node_with, stop, wait_for_members},
    run_gsp,
};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(120);

fn ok_json(o: &std::process::Output) -> Value {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn labels(addr: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["labels", "--addr", addr];
    all.extend_from_slice(args);
    all.push("--json");
    run_gsp(&all, LIMIT)
}

/// The labels `addr` lists for the member named `name`.
fn listed_labels(addr: &str, name: &str) -> Value {
    let v = ok_json(&run_gsp(&["peers", "--addr", addr, "--json"], LIMIT));
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_name"] == name)
        .map(|n| n["labels"].clone())
        .unwrap_or_default()
}

fn until(what: &str, ok: impl FnMut() -> bool) {
    common::until(what, Duration::from_secs(10), ok);
}

#[test]
fn labels_set_at_run_time_spread_route_survive_restart_and_reset_to_config() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = cluster(
        2,
        &dirs,
        &[
            &["--name", "node-a", "--label", "zone=eu"],
            &["--name", "node-b"],
        ],
    );
    let (addr_a, addr_b) = (nodes[0].1.clone(), nodes[1].1.clone());

    let v = ok_json(&labels(&addr_a, &["set", "rack=r12", "zone=us"]));
    assert_eq!(v["schema"], "gsp.labels.v1");
    assert_eq!(v["node_name"], "node-a");
    assert_eq!(v["labels"], json!({"rack": "r12", "zone": "us"}));
    assert_eq!(v["configured"], json!({"zone": "eu"}));
    assert_eq!(v["runtime"], json!({"rack": "r12", "zone": "us"}));
    assert_eq!(v["changed"], true);
    assert!(v["actor"].as_str().unwrap().starts_with("anonymous"), "{v}");

    // The other node sees them, and queries select on them.
    until("B to see A's new labels", || {
        listed_labels(&addr_b, "node-a") == json!({"rack": "r12", "zone": "us"})
    });
    let q = ok_json(&run_gsp(
        &["query", "--addr", &addr_b, "--label", "rack=r12", "--json"],
        LIMIT,
    ));
    let names: Vec<&str> = q["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["node-a"], "{q}");

    // Routed through B by name: remove a configured label.
    let v = ok_json(&labels(&addr_b, &["unset", "zone", "--node", "node-a"]));
    assert_eq!(v["node_name"], "node-a");
    assert_eq!(v["labels"], json!({"rack": "r12"}));
    assert_eq!(v["runtime"], json!({"rack": "r12", "zone": null}));
    // Setting what is already so changes nothing published.
    let v = ok_json(&labels(&addr_a, &["set", "rack=r12"]));
    assert_eq!(v["changed"], false);

    // Restart A with the same configuration: the run-time changes come back.
    stop(&mut nodes[0].0);
    let (mut a2, a2_addr) = spawn_node_with(
        dirs[0].path(),
        &[
            "--name",
            "node-a",
            "--label",
            "zone=eu",
            "--gossip-interval",
            "0.1",
            "--join",
            &addr_b,
        ],
    );
    let v = ok_json(&labels(&a2_addr, &["show"]));
    assert_eq!(v["labels"], json!({"rack": "r12"}));
    assert!(
        v.get("changed").is_none(),
        "show does not report a change: {v}"
    );
    wait_for_members(&addr_b, 2, &[]);
    until("B to see restarted A's labels", || {
        listed_labels(&addr_b, "node-a") == json!({"rack": "r12"})
    });

    // Reset one key: the configured value applies again; reset --all drops the rest.
    let v = ok_json(&labels(&a2_addr, &["reset", "zone"]));
    assert_eq!(v["labels"], json!({"rack": "r12", "zone": "eu"}));
    let v = ok_json(&labels(&a2_addr, &["reset", "--all"]));
    assert_eq!(v["labels"], json!({"zone": "eu"}));
    assert_eq!(v["runtime"], json!({}));
    until("B to see A back on its configured labels", || {
        listed_labels(&addr_b, "node-a") == json!({"zone": "eu"})
    });

    // Bad input: exit 2 naming the problem; unknown member: exit 3 naming it.
    let out = labels(&a2_addr, &["set", "bad key=x"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("bad key"), "{}", stderr(&out));
    let out = labels(&a2_addr, &["set", "novalue"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = labels(&a2_addr, &["reset"]);
    assert_eq!(out.status.code(), Some(2), "reset needs keys or --all");
    let out = labels(&addr_b, &["show", "--node", "no-such-node"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("no-such-node"), "{}", stderr(&out));

    stop(&mut a2);
    stop(&mut nodes[1].0);
}

#[test]
fn label_changes_need_the_admin_token_and_are_audited() {
    const TOKEN: &str = "tok-labels-77e1";
    let dir = tempfile::tempdir().unwrap();
    let (mut node, addr, log) = spawn_node_logged(dir.path(), &[], &[("GSP_ADMIN_TOKEN", TOKEN)]);

    let out = labels(&addr, &["set", "role=gpu"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("token"), "{}", stderr(&out));
    // Reads stay open; nothing changed.
    assert_eq!(ok_json(&labels(&addr, &["show"]))["labels"], json!({}));

    let v = ok_json(&run_gsp(
        &[
            "labels", "--addr", &addr, "--token", TOKEN, "set", "role=gpu", "--json",
        ],
        LIMIT,
    ));
    assert_eq!(v["labels"], json!({"role": "gpu"}));
    assert!(v["actor"].as_str().unwrap().contains("admin-token"), "{v}");
    until("the audit line", || {
        let l = log.lock().unwrap();
        l.lines()
            .any(|line| line.contains("labels changed") && line.contains("admin-token"))
    });
    assert!(
        !log.lock().unwrap().contains(TOKEN),
        "the token leaked into the log"
    );
    stop(&mut node);
}
