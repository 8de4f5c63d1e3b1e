//! `gsp node --on-event`: handlers run for join, maintenance and death with the
//! documented variables and the event on stdin; failures are logged.
use crate::common;
use common::until;

use std::time::Duration;

use common::{
    gsp_bin,
    procs::{spawn_node_logged, spawn_node_with, stop, wait_for_members},
    run_gsp,
};
use serde_json::Value;

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn handlers_get_join_maintenance_and_death_with_the_documented_variables() {
    let tmp = tempfile::tempdir().unwrap();
    let (events, env) = (tmp.path().join("events.jsonl"), tmp.path().join("env.txt"));
    let record = format!(
        "cat >> {}; printf '%s|%s|%s|%s|%s|%s\\n' \"$GSP_EVENT\" \"$GSP_MEMBER_NAME\" \
         \"$GSP_MEMBER_STATE\" \"$GSP_NODE_NAME\" \"$GSP_MEMBER_LABELS\" \"$GSP_MEMBER_ADDRESS\" >> {}",
        events.display(),
        env.display()
    );
    let handler = format!("joined,dead,maintenance={record}");
    let failing = "joined=echo to-stdout; echo to-stderr >&2; exit 3";
    let dir_a = tmp.path().join("a");
    let (mut a, addr_a, log_a) = spawn_node_logged(
        &dir_a,
        &[
            "--name",
            "ev-a",
            "--gossip-interval",
            "0.1",
            "--on-event",
            &handler,
            "--on-event",
            failing,
        ],
        &[],
    );
    let dir_b = tmp.path().join("b");
    // The joining node's handler sees the seed join: that event happens
    // while the node is still starting.
    let seen_b = tmp.path().join("seen-b.txt");
    let handler_b = format!("joined=echo \"$GSP_MEMBER_NAME\" >> {}", seen_b.display());
    let (mut b, addr_b) = spawn_node_with(
        &dir_b,
        &[
            "--name",
            "ev-b",
            "--label",
            "zone=eu",
            "--gossip-interval",
            "0.1",
            "--join",
            &addr_a,
            "--on-event",
            &handler_b,
        ],
    );
    wait_for_members(&addr_a, 2, &[]);
    until(
        "the joining node's joined handler",
        Duration::from_secs(10),
        || read(&seen_b).lines().any(|l| l == "ev-a"),
    );
    until("the joined handler", Duration::from_secs(10), || {
        read(&env).contains("joined|ev-b|")
    });
    let line = read(&env)
        .lines()
        .find(|l| l.starts_with("joined|ev-b|"))
        .unwrap()
        .to_owned();
    assert_eq!(
        line,
        format!("joined|ev-b|alive|ev-a|{{\"zone\":\"eu\"}}|{addr_b}"),
        "variables"
    );

    // This node's own maintenance change.
    let out = run_gsp(
        &["maint", "--addr", &addr_a, "set", "maintenance"],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(0));
    until("the maintenance handler", Duration::from_secs(10), || {
        read(&env).contains("maintenance|ev-a|alive|ev-a|")
    });

    // ev-b dies without leaving.
    b.kill().unwrap();
    b.wait().unwrap();
    until("the dead handler", Duration::from_secs(30), || {
        read(&env).contains("dead|ev-b|dead|ev-a|")
    });

    // Each run got the event as one JSON line on stdin.
    let kinds: Vec<(String, String)> = read(&events)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["schema"], "gsp.event.v1");
            assert_eq!(v["local_node_name"], "ev-a");
            (
                v["kind"].as_str().unwrap().to_owned(),
                v["node_name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for want in [
        ("joined", "ev-b"),
        ("maintenance", "ev-a"),
        ("dead", "ev-b"),
    ] {
        assert!(
            kinds.contains(&(want.0.to_owned(), want.1.to_owned())),
            "{want:?} not in {kinds:?}"
        );
    }
    // A suspect event was not asked for and did not run the first handler.
    assert!(!kinds.iter().any(|(k, _)| k == "suspect"), "{kinds:?}");

    // The failing handler's status and output are in the node's log.
    until("the failure in the log", Duration::from_secs(10), || {
        let l = log_a.lock().unwrap();
        l.lines().any(|line| {
            line.contains("on-event command failed")
                && line.contains("to-stdout")
                && line.contains("to-stderr")
                && line.contains("exit status: 3")
        })
    });
    stop(&mut a);
}

#[test]
fn a_bad_handler_spec_is_a_config_error_naming_it() {
    let out = std::process::Command::new(gsp_bin())
        .args(["node", "--check-config", "--on-event", "dead,gone=true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("'gone'"), "{err}");
    let out = std::process::Command::new(gsp_bin())
        .args([
            "node",
            "--check-config",
            "--json",
            "--on-event",
            "dead,left=logger gone",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = v.to_string();
    assert!(
        text.contains("logger gone") && text.contains("\"left\""),
        "{v}"
    );
}
