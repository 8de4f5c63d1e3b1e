//! Where jobs run and who may start them: placement by free GPUs, resources
//! reserved while jobs run, `--all`, and nodes without exec or the token.

use std::{
    collections::BTreeSet,
    process::{Command, Stdio},
    time::Duration,
};

use super::{LIMIT, events, finished, jobs};
use crate::common::{
    gsp_bin,
    procs::{cluster, spawn_node_with, stop},
    run_gsp, run_gsp_ulimit, stderr,
};

#[test]
fn jobs_are_placed_by_free_gpus_reserved_while_they_run_and_run_everywhere_with_all() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = cluster(
        3,
        &dirs,
        &[
            &["--name", "g1", "--exec", "--capacity", "gpu=1"],
            &["--name", "g2", "--exec", "--capacity", "gpu=1"],
            &["--name", "c3", "--exec", "--capacity", "gpu=0"],
        ],
    );
    let addr = nodes[2].1.clone();
    // Two concurrent GPU jobs land on the two GPU nodes.
    let spawn = || {
        Command::new(gsp_bin())
            .args([
                "run", "--addr", &addr, "--gpu", "1", "--json", "--", "sleep", "2",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn();
    std::thread::sleep(Duration::from_millis(300));
    let b = spawn();
    std::thread::sleep(Duration::from_millis(300));
    // Both GPUs are held: a third job pinned to g1 is refused, naming why.
    let third = run_gsp(
        &[
            "run", "--addr", &addr, "--node", "g1", "--gpu", "1", "--", "true",
        ],
        LIMIT,
    );
    assert_eq!(third.status.code(), Some(3), "{}", stderr(&third));
    assert!(
        stderr(&third).contains("0 free GPUs, 1 asked (1 reserved by running jobs)"),
        "{}",
        stderr(&third)
    );
    // With --wait it waits for a GPU to be released, then runs.
    let waited = run_gsp(
        &[
            "run", "--addr", &addr, "--gpu", "1", "--wait", "30", "--", "true",
        ],
        LIMIT,
    );
    assert_eq!(waited.status.code(), Some(0), "{}", stderr(&waited));
    assert!(
        stderr(&waited).contains("waiting (--wait)"),
        "{}",
        stderr(&waited)
    );
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let placed: BTreeSet<String> = [&a, &b]
        .iter()
        .map(|o| {
            assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
            let f = finished(o);
            assert_eq!(f[0]["status"], "completed");
            assert_eq!(f[0]["reserved"]["gpus"], 1);
            f[0]["node_name"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(placed, BTreeSet::from(["g1".to_owned(), "g2".to_owned()]));

    // --all: one result per node, with each node's exit code.
    let all = run_gsp(
        &[
            "run",
            "--addr",
            &addr,
            "--all",
            "--json",
            "--",
            "sh",
            "-c",
            "echo on $GSP_NODE_NAME; test $GSP_NODE_NAME != g2",
        ],
        LIMIT,
    );
    assert_eq!(
        all.status.code(),
        Some(1),
        "one node failed: {}",
        stderr(&all)
    );
    let results: BTreeSet<(String, i64)> = finished(&all)
        .iter()
        .map(|j| {
            (
                j["node_name"].as_str().unwrap().to_owned(),
                j["exit_code"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        results,
        BTreeSet::from([
            ("c3".to_owned(), 0),
            ("g1".to_owned(), 0),
            ("g2".to_owned(), 1)
        ])
    );
    let lines: BTreeSet<String> = events(&all)
        .iter()
        .filter(|e| e["event"] == "log")
        .map(|e| e["line"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        lines,
        BTreeSet::from(["on c3".into(), "on g1".into(), "on g2".into()])
    );
    // More nodes than the open-file limit lets it follow (3 streams and the
    // client's own files, under 24): refused before anything starts.
    let marker = dirs[0].path().join("ran");
    let touch = [
        "run",
        "--addr",
        &addr,
        "--all",
        "--",
        "touch",
        marker.to_str().unwrap(),
    ];
    let o = run_gsp_ulimit("-n 24", &touch, LIMIT);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--all matched 3 nodes") && stderr(&o).contains("nothing was started"),
        "{}",
        stderr(&o)
    );
    assert!(!marker.exists(), "nothing ran");
    // A low soft limit under a higher hard one is raised: every node runs it.
    let o = run_gsp_ulimit("-Sn 24", &touch, LIMIT);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(marker.exists());
    // `gsp jobs` lists every node's jobs.
    assert_eq!(jobs(&addr).len(), 9);
    for (child, _) in &mut nodes {
        stop(child);
    }
}

#[test]
fn nodes_without_exec_or_without_the_token_refuse_and_nothing_runs() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (mut off, off_addr) = spawn_node_with(dirs[0].path(), &[]);
    let marker = dirs[0].path().join("ran");
    let touch = ["--", "touch", marker.to_str().unwrap()];
    let mut args = vec!["run", "--addr", &off_addr];
    args.extend(touch);
    let o = run_gsp(&args, LIMIT);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("start it with `gsp node --exec`"),
        "{}",
        stderr(&o)
    );
    let (mut on, on_addr) =
        spawn_node_with(dirs[1].path(), &["--exec", "--admin-token", "s3cret-token"]);
    let mut args = vec!["run", "--addr", &on_addr];
    args.extend(touch);
    let o = run_gsp(&args, LIMIT);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("requires an admin token"),
        "{}",
        stderr(&o)
    );
    assert!(!marker.exists(), "nothing ran");
    let mut args = vec!["run", "--addr", &on_addr, "--token", "s3cret-token"];
    args.extend(touch);
    let o = run_gsp(&args, LIMIT);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(marker.exists(), "with the token it ran");
    stop(&mut off);
    stop(&mut on);
}

#[test]
fn all_means_every_matching_node_that_runs_jobs_and_peers_says_which_do() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = cluster(
        3,
        &dirs,
        &[
            &["--name", "e1", "--exec"],
            &["--name", "e2", "--exec"],
            &["--name", "plain", "--label", "role=plain"],
        ],
    );
    let addr = nodes[2].1.clone();
    // The records say which nodes run jobs.
    let o = run_gsp(&["peers", "--addr", &addr, "--json"], LIMIT);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let exec: BTreeSet<(String, bool)> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["node_name"].as_str().unwrap().to_owned(),
                m["exec"].as_bool().unwrap(),
            )
        })
        .collect();
    let want: BTreeSet<(String, bool)> = [("e1", true), ("e2", true), ("plain", false)]
        .into_iter()
        .map(|(n, e)| (n.to_owned(), e))
        .collect();
    assert_eq!(exec, want);
    let o = run_gsp(&["peers", "--addr", &addr], LIMIT);
    assert!(String::from_utf8_lossy(&o.stdout).contains("EXEC"));
    // --all runs on the two exec nodes only, and that is a success.
    let o = run_gsp(
        &["run", "--addr", &addr, "--all", "--json", "--", "true"],
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ran: BTreeSet<String> = events(&o)
        .iter()
        .filter(|e| e["event"] == "started")
        .map(|e| {
            e["job"]["node_name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let both: BTreeSet<String> = ["e1".to_owned(), "e2".to_owned()].into();
    assert_eq!(ran, both, "{}", String::from_utf8_lossy(&o.stdout));
    assert!(!stderr(&o).contains("plain"), "{}", stderr(&o));
    assert_eq!(finished(&o).len(), 2);
    // Filters only the plain node matches: refused in advance, exit 3,
    // saying why.
    let o = run_gsp(
        &[
            "run",
            "--addr",
            &addr,
            "--label",
            "role=plain",
            "--",
            "true",
        ],
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("node plain does not run jobs: start it with `gsp node --exec`"),
        "{}",
        stderr(&o)
    );
    for (mut child, _) in nodes.drain(..) {
        stop(&mut child);
    }
}
