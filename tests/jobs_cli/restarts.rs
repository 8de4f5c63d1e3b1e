//! Nodes and clients going away: a node restarted mid-job, a client that
//! leaves its job running, and a lost node.

use std::{
    os::unix::fs::PermissionsExt as _,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::{LIMIT, jobs, running, until};
use crate::common::{
    gsp_bin,
    procs::{spawn_node_with, stop},
    run_gsp, stderr,
};

#[test]
fn a_node_restarted_mid_job_reports_it_failed_and_stops_what_it_left_running() {
    let dir = tempfile::tempdir().unwrap();
    let (mut node, addr) = spawn_node_with(dir.path(), &["--exec"]);
    let pid_file = dir.path().join("step.pid");
    let script = format!("echo $$ > {}; exec sleep 60", pid_file.display());
    let o = run_gsp(
        &[
            "run", "--addr", &addr, "--detach", "--", "sh", "-c", &script,
        ],
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // `J=$(gsp run --detach ...)`: the id alone on stdout.
    let printed = String::from_utf8(o.stdout.clone()).unwrap();
    let id = printed.strip_suffix('\n').expect("one line");
    assert!(
        !id.is_empty() && !id.contains(char::is_whitespace),
        "{printed:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    // Let the record with the step's process reach the disk, then die hard:
    // the step, in its own process group, outlives the node.
    std::thread::sleep(Duration::from_millis(500));
    let _ = node.kill();
    let _ = node.wait();
    assert!(running(pid), "the step outlived the node");
    let (mut node, addr) = spawn_node_with(dir.path(), &["--exec"]);
    let j = &jobs(&addr)[0];
    assert_eq!(j["job_id"], id, "the id printed is the job's");
    assert_eq!(j["status"], "failed");
    assert_eq!(
        j["steps"][0]["error"],
        "node restarted; the step's processes, still running, were killed"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while running(pid) {
        assert!(Instant::now() < deadline, "the step is still running");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The records may hold the steps' environment: the node's user only.
    let mode = std::fs::metadata(dir.path().join("jobs.jsonl"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    stop(&mut node);
}

#[test]
fn a_client_that_goes_away_leaves_its_job_running_and_a_lost_node_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (mut node, addr) = spawn_node_with(dir.path(), &["--exec"]);
    let done = dir.path().join("done");
    let script = format!("sleep 1; echo ok > {}", done.display());
    let mut client = Command::new(gsp_bin())
        .args(["run", "--addr", &addr, "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    client.kill().unwrap();
    let _ = client.wait();
    until("the job to finish without its client", || done.exists());
    until("the job recorded completed", || {
        jobs(&addr).iter().any(|j| j["status"] == "completed")
    });

    // The node dies under a running job: gsp run says so and exits 1.
    let follower = Command::new(gsp_bin())
        .args(["run", "--addr", &addr, "--", "sleep", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    until("the job to start", || {
        jobs(&addr).iter().any(|j| j["status"] == "running")
    });
    node.kill().unwrap();
    let _ = node.wait();
    let o = follower.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // Lost while the job ran, or (the node died between accepting the job
    // and confirming it) while it was starting: either way exit 1, not a
    // refusal.
    let err = stderr(&o);
    assert!(
        err.contains("while job") || err.contains("while its job was starting"),
        "{err}"
    );
    assert!(err.contains("lost vm"), "{err}");
}
