//! The `--json` contract, walked over every subcommand: each document and
//! each JSON Lines record names its `schema`, and a failure under `--json` is
//! one `gsp.error.v1` object on stderr whose `exit_code` is the exit status.
//! A subcommand added to `gsp --help` without a case here fails the walk.

use std::{collections::BTreeSet, time::Duration};

use serde_json::Value;

use crate::common::{
    procs::{Killed, cluster},
    run_gsp, stderr,
};

const LIMIT: Duration = Duration::from_secs(120);
/// Subcommands that print no JSON: shell completions and manual pages.
const NO_JSON: [&str; 3] = ["completions", "man", "help"];

/// The subcommands `gsp --help` lists.
fn subcommands() -> BTreeSet<String> {
    let out = run_gsp(&["--help"], LIMIT);
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let section = help
        .split("Commands:")
        .nth(1)
        .unwrap_or_else(|| panic!("no Commands: section in\n{help}"));
    section
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Every JSON value `stdout` holds: one document, or one per line.
fn documents(stdout: &[u8]) -> Vec<Value> {
    if let Ok(v) = serde_json::from_slice::<Value>(stdout) {
        return vec![v];
    }
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect()
}

/// Runs `gsp ARGS --json`, expecting `code`, and checks every document.
fn walk(args: &[&str], code: i32) -> Vec<Value> {
    let mut all: Vec<&str> = args.to_vec();
    let at = all.iter().position(|a| *a == "--").unwrap_or(all.len());
    all.insert(at, "--json");
    let out = run_gsp(&all, LIMIT);
    assert_eq!(
        out.status.code(),
        Some(code),
        "gsp {}: {}",
        all.join(" "),
        stderr(&out)
    );
    let docs = documents(&out.stdout);
    assert!(!docs.is_empty(), "gsp {}: no JSON on stdout", all.join(" "));
    for d in &docs {
        assert!(
            d["schema"].as_str().is_some_and(|s| s.starts_with("gsp.")),
            "gsp {}: no schema in {d}",
            all.join(" ")
        );
    }
    docs
}

/// Runs `gsp ARGS --json` where it must fail, and checks its error object.
fn walk_error(args: &[&str]) -> Value {
    let mut all: Vec<&str> = args.to_vec();
    let at = all.iter().position(|a| *a == "--").unwrap_or(all.len());
    all.insert(at, "--json");
    let out = run_gsp(&all, LIMIT);
    let code = out.status.code().unwrap();
    assert_ne!(code, 0, "gsp {} succeeded", all.join(" "));
    let err = stderr(&out);
    let last = err.lines().last().unwrap_or_default();
    let v: Value = serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "gsp {}: stderr's last line is not JSON ({e}):\n{err}",
            all.join(" ")
        )
    });
    assert_eq!(v["schema"], "gsp.error.v1", "{v}");
    assert_eq!(v["exit_code"], code, "{v}");
    assert!(v["code"].as_str().is_some_and(|c| !c.is_empty()), "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    v
}

#[test]
fn every_subcommand_names_its_schema_and_fails_as_gsp_error_v1() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = cluster(
        2,
        &dirs,
        &[&["--exec", "--name", "j-a"], &["--name", "j-b"]],
    );
    let b = Killed(nodes.pop().unwrap().0);
    let (a, addr) = nodes.pop().unwrap();
    let _a = Killed(a);
    let at = ["--addr", addr.as_str()];
    // `rest` with `--addr` before any `--`.
    let with = |rest: &[&'static str]| -> Vec<String> {
        let mut v: Vec<String> = rest.iter().map(|s| (*s).to_owned()).collect();
        let at_dash = v.iter().position(|a| a == "--").unwrap_or(v.len());
        v.splice(at_dash..at_dash, at.iter().map(|s| (*s).to_owned()));
        v
    };
    let mut walked = BTreeSet::new();
    let mut run = |name: &str, args: Vec<String>, code: i32| -> Vec<Value> {
        walked.insert(name.to_owned());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        walk(&refs, code)
    };

    run("peers", with(&["peers"]), 0);
    run("peers", with(&["peers", "--summary"]), 0);
    run("query", with(&["query"]), 0);
    let sent = run("send", with(&["send", "-m", "hello"]), 0);
    assert_eq!(
        sent[0]["acks"][0]["node_name"]
            .as_str()
            .map(|n| n.starts_with("j-")),
        Some(true),
        "{}",
        sent[0]
    );
    run("maint", with(&["maint", "status"]), 0);
    run("maint", with(&["maint", "status", "--all"]), 0);
    run("labels", with(&["labels", "show"]), 0);
    run("audit", with(&["audit", "--all"]), 0);
    run("watch", with(&["watch", "--snapshot", "--timeout", "1"]), 0);
    let lines = run(
        "run",
        with(&["run", "--node", "j-a", "--", "echo", "hi"]),
        0,
    );
    let events: Vec<_> = lines
        .iter()
        .map(|l| l["event"].as_str().unwrap_or(""))
        .collect();
    assert!(
        events.contains(&"log") && events.contains(&"finished"),
        "{events:?}"
    );
    let job = lines[0]["job"]["job_id"].as_str().unwrap().to_owned();
    run("jobs", with(&["jobs"]), 0);
    let mut logs = with(&["logs"]);
    logs.insert(1, job.clone());
    run("logs", logs, 0);
    let detached = run_gsp(
        &[
            "run", "--addr", &addr, "--node", "j-a", "--detach", "--", "sleep", "30",
        ],
        LIMIT,
    );
    let long = String::from_utf8_lossy(&detached.stdout).trim().to_owned();
    let mut cancel = with(&["cancel"]);
    cancel.insert(1, long);
    let ended = run("cancel", cancel, 0);
    assert_eq!(ended[0]["status"], "cancelled", "{}", ended[0]);
    let ca = tempfile::tempdir().unwrap();
    let ca_dir = ca.path().join("pki").to_str().unwrap().to_owned();
    run(
        "tls",
        vec!["tls".into(), "ca".into(), "--dir".into(), ca_dir],
        0,
    );
    let conf = tempfile::tempdir().unwrap();
    run(
        "node",
        vec![
            "node".into(),
            "--check-config".into(),
            "--data-dir".into(),
            conf.path().to_str().unwrap().into(),
        ],
        0,
    );
    run(
        "bench",
        vec![
            "bench".into(),
            "sim".into(),
            "--nodes".into(),
            "50".into(),
            "--no-write".into(),
        ],
        0,
    );
    // force-leave is for a member that is gone (--force: before it is
    // detected).
    drop(b);
    run("force-leave", with(&["force-leave", "j-b", "--force"]), 0);
    // A node set naming a member twice forces it once; an unknown one is
    // listed as failed, and its exit status (3) is the command's.
    let twice = run(
        "force-leave",
        with(&["force-leave", "j-b,no-such-member,j-b", "--force"]),
        3,
    );
    assert_eq!(
        twice[0]["schema"], "gsp.force-leave.list.v1",
        "{}",
        twice[0]
    );
    assert_eq!(
        twice[0]["results"].as_array().map(Vec::len),
        Some(1),
        "{}",
        twice[0]
    );
    // The answering node is named by its name.
    assert!(
        twice[0]["failed"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("is listed on node j-a ")),
        "{}",
        twice[0]
    );
    assert_eq!(
        twice[0]["failed"][0]["node"], "no-such-member",
        "{}",
        twice[0]
    );

    let listed = subcommands();
    assert!(
        listed.len() >= 16 && listed.contains("peers") && listed.contains("audit"),
        "gsp --help lists {listed:?}"
    );
    let missing: Vec<_> = listed
        .iter()
        .filter(|c| !walked.contains(*c) && !NO_JSON.contains(&c.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "subcommands the walk does not cover: {missing:?}"
    );

    // Failures: a node that is not there, a job that is not, a bad flag.
    let nowhere = "127.0.0.1:1";
    for cmd in [
        "peers",
        "query",
        "maint",
        "labels",
        "watch",
        "jobs",
        "force-leave",
        "audit",
    ] {
        let mut args = vec![cmd, "--addr", nowhere];
        match cmd {
            "force-leave" => args.insert(1, "x"),
            "maint" => args.insert(1, "status"),
            "labels" => args.insert(1, "show"),
            _ => {}
        }
        let v = walk_error(&args);
        assert_eq!(
            (v["code"].as_str(), v["exit_code"].as_i64()),
            (Some("unreachable"), Some(3)),
            "{cmd}: {v}"
        );
    }
    let v = walk_error(&["send", "--addr", nowhere, "-m", "x"]);
    assert_eq!(v["exit_code"], 3, "{v}");
    let v = walk_error(&["run", "--addr", nowhere, "--", "true"]);
    assert_eq!(v["exit_code"], 3, "{v}");
    let v = walk_error(&["cancel", "no-such-job", "--addr", &addr]);
    assert_eq!(
        (v["code"].as_str(), v["exit_code"].as_i64()),
        (Some("negative"), Some(1)),
        "{v}"
    );
    let v = walk_error(&["logs", "no-such-job", "--addr", &addr]);
    assert_eq!(v["exit_code"], 1, "{v}");
    let v = walk_error(&["peers", "--no-such-flag"]);
    assert_eq!(
        (v["code"].as_str(), v["exit_code"].as_i64()),
        (Some("usage"), Some(2)),
        "{v}"
    );
    let v = walk_error(&["tls", "ca", "--dir", "/proc/no/such"]);
    assert_eq!(v["exit_code"], 2, "{v}");
    let v = walk_error(&["bench", "--compare", "/no/such/report.json", "--no-write"]);
    assert_eq!(v["exit_code"], 2, "{v}");
}
