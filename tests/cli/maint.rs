//! `gsp maint` and admin tokens, driven as a user would against real nodes on
//! 127.0.0.1.
use crate::common;
use common::until;

use common::stderr;

use std::time::Duration;

use common::{
    procs::{cluster, spawn_node_logged, spawn_node_with, stop, wait_for_members},
    run_gsp,
};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(120);

fn json(o: &std::process::Output) -> Value {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn maint(addr: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["maint", "--addr", addr];
    all.extend_from_slice(args);
    run_gsp(&all, LIMIT)
}

/// The member named `name` as `addr` lists it.
fn listed(addr: &str, name: &str) -> Option<Value> {
    let v = json(&run_gsp(&["peers", "--addr", addr, "--json"], LIMIT));
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_name"] == name)
        .cloned()
}

/// The `maintenance` field `addr` lists for the member named `name`.
fn listed_state(addr: &str, name: &str) -> String {
    listed(addr, name)
        .map(|n| n["maintenance"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[test]
fn maintenance_spreads_drops_the_node_from_queries_survives_restart_and_routes() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = cluster(2, &dirs, &[&["--name", "node-a"], &["--name", "node-b"]]);
    let (addr_a, addr_b) = (nodes[0].1.clone(), nodes[1].1.clone());

    let v = json(&maint(
        &addr_a,
        &["set", "maintenance", "--reason", "kernel 6.12", "--json"],
    ));
    assert_eq!(v["schema"], "gsp.maint.v1");
    assert_eq!(v["node_name"], "node-a");
    assert_eq!(v["state"], "maintenance");
    assert_eq!(v["previous_state"], "normal");
    assert_eq!(v["reason"], "kernel 6.12");
    assert_eq!(v["changed"], true);
    assert!(v["actor"].as_str().unwrap().starts_with("anonymous"), "{v}");
    assert!(v["changed_at"].as_str().unwrap().ends_with('Z'), "{v}");
    let a_id = v["node_id"].as_str().unwrap().to_owned();

    // Setting it again succeeds and changes nothing.
    let again = json(&maint(&addr_a, &["set", "maintenance", "--json"]));
    assert_eq!(again["changed"], false);
    assert_eq!(again["reason"], "kernel 6.12");

    until("B to see A in maintenance", Duration::from_secs(5), || {
        listed_state(&addr_b, "node-a") == "maintenance"
    });
    let q = json(&run_gsp(&["query", "--addr", &addr_b, "--json"], LIMIT));
    let names: Vec<&str> = q["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["node-b"], "{q}");

    // Restart A: the state comes back from its data dir.
    stop(&mut nodes[0].0);
    let (mut a2, a2_addr) = spawn_node_with(
        dirs[0].path(),
        &[
            "--name",
            "node-a",
            "--gossip-interval",
            "0.1",
            "--join",
            &addr_b,
        ],
    );
    let s = json(&maint(&a2_addr, &["status", "--json"]));
    assert_eq!(s["state"], "maintenance");
    assert_eq!(s["reason"], "kernel 6.12");
    assert_eq!(s["node_id"], a_id.as_str());
    wait_for_members(&addr_b, 2, &[]);
    // At its new address: B's record of A from before the restart says
    // maintenance too, and routing to it would find nobody there.
    until(
        "B to see restarted A, at its new address, in maintenance",
        Duration::from_secs(5),
        || {
            listed(&addr_b, "node-a").is_some_and(|n| {
                n["address"] == a2_addr.as_str() && n["maintenance"] == "maintenance"
            })
        },
    );

    // Routed through B, by id and by name.
    let r = json(&maint(
        &addr_b,
        &["set", "normal", "--node", &a_id, "--json"],
    ));
    assert_eq!(r["node_id"], a_id.as_str());
    assert_eq!(r["state"], "normal");
    assert_eq!(r["previous_state"], "maintenance");
    let st = json(&maint(&addr_b, &["status", "--node", "node-a", "--json"]));
    assert_eq!(st["state"], "normal");
    let local = json(&maint(&a2_addr, &["status", "--json"]));
    assert_eq!(local["state"], "normal");
    // Every member at once, with who changed it last.
    let all = json(&maint(&addr_b, &["status", "--all", "--json"]));
    assert_eq!(all["schema"], "gsp.maint.list.v1");
    let members = all["members"].as_array().unwrap();
    assert_eq!(members.len(), 2, "{all}");
    assert!(all["unanswered"].as_array().unwrap().is_empty(), "{all}");
    let node_a = members
        .iter()
        .find(|m| m["node_id"] == a_id.as_str())
        .unwrap();
    assert_eq!(
        (node_a["state"].as_str(), node_a["previous_state"].as_str()),
        (Some("normal"), Some("maintenance"))
    );
    let table = maint(&addr_b, &["status", "--all"]);
    assert_eq!(table.status.code(), Some(0), "{}", stderr(&table));
    assert!(String::from_utf8_lossy(&table.stdout).contains("node-a"));

    // An unknown member is named and exits 3.
    let out = maint(&addr_b, &["set", "disabled", "--node", "no-such-node"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("no-such-node"), "{}", stderr(&out));
    // A bad state is a usage error.
    let out = maint(&addr_b, &["set", "sleeping"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("normal, maintenance or disabled"));

    stop(&mut a2);
    stop(&mut nodes[1].0);
}

#[test]
fn a_disabled_node_is_not_sent_broadcasts_and_send_reports_it() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = cluster(
        3,
        &dirs,
        &[&["--name", "n0"], &["--name", "n1"], &["--name", "n2"]],
    );
    let v = json(&maint(&nodes[2].1, &["set", "disabled", "--json"]));
    let disabled_id = v["node_id"].as_str().unwrap().to_owned();
    until("n0 to see n2 disabled", Duration::from_secs(5), || {
        listed_state(&nodes[0].1, "n2") == "disabled"
    });
    let out = run_gsp(
        &["send", "--addr", &nodes[0].1, "-m", "hello", "--json"],
        LIMIT,
    );
    let s = json(&out);
    assert_eq!(s["converged"], true, "{s}");
    assert_eq!(s["expected"], 2, "{s}");
    assert_eq!(s["disabled"], serde_json::json!([disabled_id]), "{s}");
    // The disabled node itself refuses to broadcast.
    let out = run_gsp(&["send", "--addr", &nodes[2].1, "-m", "x"], LIMIT);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("disabled"), "{}", stderr(&out));
    // It answered: a refusal, not a node out of reach.
    assert!(!stderr(&out).contains("cannot reach"), "{}", stderr(&out));
    assert!(stderr(&out).contains("refused"), "{}", stderr(&out));
    for (c, _) in &mut nodes {
        stop(c);
    }
}

#[test]
fn an_admin_token_guards_changes_and_never_shows_in_logs() {
    const TOKEN: &str = "tok-3f9a7c1e55";
    let dir = tempfile::tempdir().unwrap();
    let (mut node, addr, log) = spawn_node_logged(dir.path(), &[], &[("GSP_ADMIN_TOKEN", TOKEN)]);

    for bad in [None, Some("wrong-token")] {
        let mut args = vec!["maint", "--addr", &addr, "set", "disabled"];
        if let Some(t) = bad {
            args.extend(["--token", t]);
        }
        let out = run_gsp(&args, LIMIT);
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        assert!(stderr(&out).contains("token"), "{}", stderr(&out));
        assert!(!stderr(&out).contains(TOKEN));
        let s = json(&maint(&addr, &["status", "--json"]));
        assert_eq!(s["state"], "normal", "changed without the right token");
    }
    let out = run_gsp(&["send", "--addr", &addr, "-m", "x"], LIMIT);
    assert_eq!(out.status.code(), Some(3), "send without a token");
    // Reads stay open.
    let name = json(&maint(&addr, &["status", "--json"]))["node_name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(listed_state(&addr, &name), "normal");

    let s = json(&run_gsp(
        &[
            "maint", "--addr", &addr, "--token", TOKEN, "set", "disabled", "--reason", "psu",
            "--json",
        ],
        LIMIT,
    ));
    assert_eq!(s["state"], "disabled");
    assert!(
        s["actor"].as_str().unwrap().starts_with("admin-token"),
        "{s}"
    );
    stop(&mut node);
    let log = log.lock().unwrap().clone();
    assert!(log.contains("maintenance state changed"), "{log}");
    assert!(
        !log.contains(TOKEN),
        "the token leaked into the log:\n{log}"
    );
}

#[test]
fn reads_can_require_the_token_too() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "file-token-1\n").unwrap();
    let data = dir.path().join("data");
    let (mut node, addr, _log) = spawn_node_logged(
        &data,
        &[
            "--admin-token-file",
            token_file.to_str().unwrap(),
            "--require-token-for-reads",
        ],
        &[],
    );
    let out = run_gsp(&["peers", "--addr", &addr], LIMIT);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = run_gsp(
        &["peers", "--addr", &addr, "--token", "file-token-1"],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stop(&mut node);
}

#[test]
fn a_target_that_does_not_answer_in_time_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let (mut node, addr) = spawn_node_with(dir.path(), &[]);
    let signal = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &node.id().to_string()])
            .status()
            .unwrap();
    };
    // A stopped process still has its socket: the connection opens, nothing answers.
    signal("-STOP");
    let out = run_gsp(
        &[
            "maint",
            "--addr",
            &addr,
            "--timeout",
            "1",
            "set",
            "maintenance",
        ],
        LIMIT,
    );
    signal("-CONT");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("did not confirm"), "{}", stderr(&out));
    stop(&mut node);
}

/// A node set changes several members at once, and `gsp audit` reads who did
/// it from each member's trail, newest first, with the caller's IP and no
/// ephemeral port.
#[test]
fn node_sets_change_several_members_and_audit_reads_the_trails() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = cluster(
        3,
        &dirs,
        &[&["--name", "rk1"], &["--name", "rk2"], &["--name", "rk3"]],
    );
    let addr = nodes[0].1.clone();
    let set = json(&maint(
        &addr,
        &[
            "set",
            "maintenance",
            "--node",
            "rk[2-3]",
            "--reason",
            "rack power",
            "--json",
        ],
    ));
    assert_eq!(set["schema"], "gsp.maint.list.v1", "{set}");
    let rows = set["members"].as_array().unwrap();
    let names: Vec<_> = rows
        .iter()
        .map(|m| m["node_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["rk2", "rk3"], "{set}");
    assert!(
        rows.iter()
            .all(|m| m["state"] == "maintenance" && m["changed"] == true),
        "{set}"
    );
    assert_eq!(listed_state(&addr, "rk1"), "normal");

    let audit = json(&run_gsp(
        &["audit", "--addr", &addr, "--all", "--json"],
        LIMIT,
    ));
    assert_eq!(audit["schema"], "gsp.audit.v1");
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{audit}");
    for e in entries {
        assert_eq!(e["reason"], "rack power", "{e}");
        assert_eq!(e["previous_state"], "normal");
        assert_eq!(e["state"], "maintenance");
        // Routed through rk1: the caller, then the member that forwarded it.
        assert_eq!(
            e["actor"], "anonymous from 127.0.0.1 (via anonymous from 127.0.0.1)",
            "{e}"
        );
    }
    let one = json(&run_gsp(
        &["audit", "--addr", &addr, "--node", "rk3", "--json"],
        LIMIT,
    ));
    assert_eq!(one["entries"].as_array().unwrap().len(), 1, "{one}");
    assert_eq!(one["entries"][0]["node_name"], "rk3");
    // Nothing in the last millisecond.
    let none = json(&run_gsp(
        &[
            "audit", "--addr", &addr, "--all", "--since", "1ms", "--json",
        ],
        LIMIT,
    ));
    assert_eq!(none["entries"].as_array().unwrap().len(), 0, "{none}");
    let text = run_gsp(&["audit", "--addr", &addr, "--all"], LIMIT);
    let out = String::from_utf8_lossy(&text.stdout);
    assert!(out.contains("rk2") && out.contains("rack power"), "{out}");
    for (mut c, _) in nodes {
        stop(&mut c);
    }
}
