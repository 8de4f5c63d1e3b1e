//! A job's steps: a pipeline stops at its first failure, a missing working
//! directory is named, and `gsp cancel` stops a step that ignores SIGTERM.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::{LIMIT, events, finished, jobs, until};
use crate::common::{
    procs::{spawn_node_with, stop},
    run_gsp, stderr,
};

#[test]
fn a_pipeline_stops_at_its_first_failure_and_cancel_stops_a_step_that_ignores_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut node, addr) = spawn_node_with(dir.path(), &["--exec", "--exec-grace", "1"]);
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        "name: build\nsteps:\n  - name: one\n    run: [echo, first]\n  - name: two\n    run: [sh, -c, 'echo oops >&2; exit 4']\n  - name: three\n    run: [echo, never]\n",
    )
    .unwrap();
    let o = run_gsp(
        &[
            "run",
            "--addr",
            &addr,
            "--pipeline",
            file.to_str().unwrap(),
            "--json",
        ],
        LIMIT,
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "a failed pipeline exits 1: {}",
        stderr(&o)
    );
    let job = &finished(&o)[0];
    let statuses: Vec<&str> = job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["completed", "failed", "cancelled"]);
    assert_eq!(job["steps"][1]["exit_code"], 4);
    assert_eq!(job["steps"][2]["error"], "not run: step 'two' failed");
    let logs: Vec<(String, String)> = events(&o)
        .iter()
        .filter(|e| e["event"] == "log")
        .map(|e| {
            (
                e["stream"].as_str().unwrap().to_owned(),
                e["line"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        logs,
        [
            ("stdout".into(), "first".into()),
            ("stderr".into(), "oops".into())
        ]
    );

    // A working directory that does not exist is blamed, not the program.
    let o = run_gsp(
        &[
            "run",
            "--addr",
            &addr,
            "--workdir",
            "/nonexistent/gsp-test",
            "--json",
            "--",
            "pwd",
        ],
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let error = finished(&o)[0]["steps"][0]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.contains("working directory /nonexistent/gsp-test: No such file"),
        "{error}"
    );

    // A program that is not there exits 127, one that cannot run 126, as a
    // shell (and ssh) says.
    let o = run_gsp(
        &["run", "--addr", &addr, "--", "gsp-no-such-program"],
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    let script = dir.path().join("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let o = run_gsp(
        &["run", "--addr", &addr, "--", script.to_str().unwrap()],
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));

    // A step that ignores SIGTERM is killed after the grace period.
    let o = run_gsp(
        &[
            "run",
            "--addr",
            &addr,
            "--detach",
            "--json",
            "--",
            "sh",
            "-c",
            "trap '' TERM; echo $$; sleep 60",
        ],
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let id = events(&o)[0]["job"]["job_id"].as_str().unwrap().to_owned();
    let mut pid = String::new();
    until("the step's pid in its log", || {
        let l = run_gsp(&["logs", "--addr", &addr, &id, "--json"], LIMIT);
        pid = events(&l)
            .iter()
            .find(|e| e["event"] == "log")
            .map(|e| e["line"].as_str().unwrap().to_owned())
            .unwrap_or_default();
        !pid.is_empty()
    });
    let t0 = Instant::now();
    let c = run_gsp(&["cancel", "--addr", &addr, &id], LIMIT);
    assert_eq!(c.status.code(), Some(0), "{}", stderr(&c));
    assert!(String::from_utf8_lossy(&c.stdout).contains("cancelled (stopped step sh)"));
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "cancelled within the grace period"
    );
    let alive = Command::new("kill")
        .args(["-0", &pid])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!alive.success(), "the step's process {pid} is gone");
    let j = jobs(&addr)
        .into_iter()
        .find(|j| j["job_id"] == id.as_str())
        .unwrap();
    assert_eq!(j["status"], "cancelled");
    assert_eq!(j["exit_code"], 130);
    // Cancelling it again: it is over.
    let again = run_gsp(&["cancel", "--addr", &addr, &id], LIMIT);
    assert_eq!(
        again.status.code(),
        Some(0),
        "a cancelled job stays cancelled"
    );
    let unknown = run_gsp(&["cancel", "--addr", &addr, "000000000000"], LIMIT);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).contains("no member knows job '000000000000'"));
    stop(&mut node);
}
