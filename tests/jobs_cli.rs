//! `gsp run`, `gsp jobs`, `gsp logs`, `gsp cancel` against real nodes on
//! 127.0.0.1, as a user runs them.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::stderr;

use std::{
    collections::BTreeSet,
    os::unix::fs::PermissionsExt as _,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{
    gsp_bin,
    procs::{cluster, spawn_node_with, stop},
    run_gsp,
};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

/// The JSON Lines `gsp run --json` printed.
fn events(o: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn finished(o: &std::process::Output) -> Vec<Value> {
    events(o)
        .into_iter()
        .filter(|e| e["event"] == "finished")
        .map(|e| e["job"].clone())
        .collect()
}

fn jobs(addr: &str) -> Vec<Value> {
    let o = run_gsp(&["jobs", "--addr", addr, "--json"], LIMIT);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["schema"], "gsp.jobs.v1");
    v["jobs"].as_array().unwrap().clone()
}

/// Runs gsp reading its output as it comes (a job's output can exceed a
/// pipe's buffer), bounded by `LIMIT`.
fn run_draining(args: &[&str]) -> std::process::Output {
    let child = Command::new(gsp_bin())
        .args(args)
        .env_remove("GSP_ADDR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()));
    rx.recv_timeout(LIMIT).unwrap_or_else(|_| {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        panic!("gsp {args:?} did not exit within {LIMIT:?}")
    })
}

fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

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
    // `gsp jobs` lists every node's jobs.
    assert_eq!(jobs(&addr).len(), 6);
    for (child, _) in &mut nodes {
        stop(child);
    }
}

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

#[test]
fn output_reaches_a_live_client_whole_and_a_late_reader_gets_the_file_then_a_marked_gap() {
    let dir = tempfile::tempdir().unwrap();
    // 64 KiB kept in memory, 512 KiB in the job's log file.
    let (mut node, addr) = spawn_node_with(dir.path(), &["--exec", "--exec-log-bytes", "64KiB"]);
    // 4 MiB through a 64 KiB ring: the live client holds it back, loses nothing.
    let o = run_draining(&[
        "run",
        "--addr",
        &addr,
        "--",
        "head",
        "-c",
        "4194304",
        "/dev/zero",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(o.stdout.len(), 4 << 20, "{}", stderr(&o));
    assert!(!stderr(&o).contains("dropped"), "{}", stderr(&o));
    // Numbered lines (1.2 MB): read afterwards, the start comes from the file,
    // the end from memory, and what neither kept is a gap said out loud.
    let o = run_draining(&["run", "--addr", &addr, "--", "seq", "1", "200000"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let total = o.stdout.len();
    let id = jobs(&addr).last().unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let l = run_draining(&["logs", "--addr", &addr, &id]);
    assert_eq!(l.status.code(), Some(0), "{}", stderr(&l));
    let text = String::from_utf8(l.stdout.clone()).unwrap();
    assert!(text.starts_with("1\n2\n3\n"), "the file has the start");
    assert!(text.ends_with("199999\n200000\n"), "memory has the end");
    let err = stderr(&l);
    let gap: usize = err
        .split('[')
        .nth(1)
        .and_then(|g| g.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a gap marker: {err}"));
    assert_eq!(
        text.len() + gap,
        total,
        "what was sent plus the gap is the whole"
    );
    assert!(
        text.len() > 400 << 10,
        "most of the 512 KiB file was replayed: {}",
        text.len()
    );
    stop(&mut node);
}

#[test]
fn a_jobs_output_survives_a_restart_of_its_node() {
    let dir = tempfile::tempdir().unwrap();
    let (mut node, addr) = spawn_node_with(dir.path(), &["--exec"]);
    let o = run_gsp(&["run", "--addr", &addr, "--", "seq", "1", "1000"], LIMIT);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stop(&mut node);
    let (mut node, addr) = spawn_node_with(dir.path(), &["--exec"]);
    let id = jobs(&addr)[0]["job_id"].as_str().unwrap().to_owned();
    let l = run_gsp(&["logs", "--addr", &addr, &id], LIMIT);
    assert_eq!(l.status.code(), Some(0), "{}", stderr(&l));
    assert_eq!(l.stdout, o.stdout, "replayed from the job's log file");
    assert!(!stderr(&l).contains("dropped"), "{}", stderr(&l));
    stop(&mut node);
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

/// Whether `pid` is a live process (a zombie has exited).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().to_owned())
        })
        .is_some_and(|rest| !rest.starts_with('Z'))
}
