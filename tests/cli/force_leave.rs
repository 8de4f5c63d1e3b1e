//! `gsp force-leave`: a dead member marked left everywhere (and pruned),
//! refused for a live one, driven as a user would against real nodes.
use crate::common;
use common::until;

use common::stderr;

use std::time::Duration;

use common::{
    procs::{cluster, stop},
    run_gsp,
};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(120);

/// The state `addr` lists for the member named `name`; None if not listed.
fn state_of(addr: &str, name: &str) -> Option<String> {
    let out = run_gsp(&["peers", "--addr", addr, "--json"], LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_name"] == name)
        .map(|n| n["state"].as_str().unwrap().to_owned())
}

#[test]
fn a_dead_member_is_forced_out_everywhere_and_a_live_one_is_refused() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let names = [
        ["--name", "fa"],
        ["--name", "fb"],
        ["--name", "fc"],
        ["--name", "fd"],
    ];
    let extra: Vec<&[&str]> = names.iter().map(|n| &n[..]).collect();
    let mut nodes = cluster(4, &dirs, &extra);
    let (a, b, c) = (nodes[0].1.clone(), nodes[1].1.clone(), nodes[2].1.clone());

    // A live member is refused (exit 1, nothing changed); this node and an
    // unknown one are named.
    let out = run_gsp(&["force-leave", "--addr", &a, "fb"], LIMIT);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("alive"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(state_of(&a, "fb").as_deref(), Some("alive"));
    let out = run_gsp(&["force-leave", "--addr", &a, "fa"], LIMIT);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("this node"), "{}", stderr(&out));
    let out = run_gsp(&["force-leave", "--addr", &a, "no-such"], LIMIT);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("no-such"), "{}", stderr(&out));

    // fd dies without leaving; everyone lists it dead.
    nodes[3].0.kill().unwrap();
    nodes[3].0.wait().unwrap();
    for addr in [&a, &b, &c] {
        until("fd dead", Duration::from_secs(30), || {
            state_of(addr, "fd").as_deref() == Some("dead")
        });
    }

    let out = run_gsp(&["force-leave", "--addr", &a, "fd", "--json"], LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "gsp.force-leave.v1");
    assert_eq!(v["node_name"], "fd");
    assert_eq!(v["previous_state"], "dead");
    assert_eq!(v["state"], "left");
    assert_eq!(v["confirmed"], 2, "{v}");
    let asked: Vec<&str> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["node_name"].as_str().unwrap())
        .collect();
    assert_eq!(asked, ["fb", "fc"], "{v}");
    // Left everywhere at once: the other members applied it before the answer.
    for addr in [&a, &b, &c] {
        assert_eq!(state_of(addr, "fd").as_deref(), Some("left"), "{addr}");
    }

    // Again with --prune, from another node: gone from every list.
    let out = run_gsp(&["force-leave", "--addr", &b, "fd", "--prune"], LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("left -> removed"));
    for addr in [&a, &b, &c] {
        assert_eq!(state_of(addr, "fd"), None, "{addr} still lists fd");
    }
    // Gossip does not bring it back.
    std::thread::sleep(Duration::from_secs(1));
    for addr in [&a, &b, &c] {
        assert_eq!(state_of(addr, "fd"), None, "{addr} lists fd again");
    }
    // And a pruned member is unknown now.
    let out = run_gsp(&["force-leave", "--addr", &a, "fd"], LIMIT);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    // --force on a live member: the claim reaches it, it refutes and stays.
    let out = run_gsp(&["force-leave", "--addr", &a, "fc", "--force"], LIMIT);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
    for addr in [&a, &b, &c] {
        until("fc alive again", Duration::from_secs(10), || {
            state_of(addr, "fc").as_deref() == Some("alive")
        });
    }

    for (child, _) in nodes.iter_mut().take(3) {
        stop(child);
    }
}
