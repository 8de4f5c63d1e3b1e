//! A node whose data dir is on a full filesystem: a job id still means a
//! record on disk, and a job that cannot be recorded never runs.

use std::time::Duration;

use serde_json::Value;

use super::{LIMIT, jobs, until};
use crate::common::{
    procs::{Killed, spawn_node_logged, spawn_node_with, stop},
    run_gsp, stderr,
    tmpfs::TinyFs,
};

/// `gsp peers --json`'s `data_dir_error` on the node at `addr`.
fn data_dir_error(addr: &str) -> Value {
    let o = run_gsp(&["peers", "--addr", addr, "--json"], LIMIT);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["data_dir_error"].clone()
}

#[test]
fn on_a_full_disk_every_job_with_an_id_is_recorded_and_the_rest_never_run() {
    let test = "full_disk";
    let Some(fs) = TinyFs::mount(256 << 10, test) else {
        return;
    };
    let data = fs.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let markers = tempfile::tempdir().unwrap();
    let (node, addr, log) = spawn_node_logged(&data, &["--exec"], &[]);
    let mut node = Killed(node);
    assert_eq!(data_dir_error(&addr), Value::Null);
    fs.fill();
    // Records go on being appended while the journal's last page has room;
    // then a job cannot be recorded, is refused, and never runs.
    let mut accepted = Vec::new();
    let mut refused = None;
    for i in 0..200 {
        let marker = markers.path().join(format!("ran-{i}"));
        let o = run_gsp(
            &[
                "run",
                "--addr",
                &addr,
                "--detach",
                "--",
                "touch",
                marker.to_str().unwrap(),
            ],
            LIMIT,
        );
        if o.status.success() {
            let said = stderr(&o);
            let id = said
                .split("job ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or_else(|| panic!("no job id in {said:?}"));
            accepted.push(id.to_owned());
            continue;
        }
        refused = Some((i, marker, o));
        break;
    }
    let (i, marker, o) = refused.expect("a job was refused on a full disk");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let said = stderr(&o);
    assert!(said.contains("jobs.jsonl"), "names the file: {said}");
    assert!(said.contains("No space left"), "says why: {said}");
    assert!(said.contains("nothing was started"), "{said}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!marker.exists(), "job {i} ran although it was refused");
    // Label and maintenance changes are refused too, naming their file.
    let o = run_gsp(&["labels", "set", "--addr", &addr, "rack=7"], LIMIT);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("labels"), "{}", stderr(&o));
    // The node says it cannot write its data dir.
    until("the node to report its data dir", || {
        data_dir_error(&addr).is_string()
    });
    let o = run_gsp(&["peers", "--addr", &addr], LIMIT);
    assert!(
        stderr(&o).contains("cannot write its data dir"),
        "{}",
        stderr(&o)
    );
    // Nothing half-written is left behind (a write in progress may show one
    // for a moment: the node retries saving its records).
    let leftovers = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "tmp"))
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !leftovers().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(leftovers().is_empty(), "{:?}", leftovers());
    // Retrying the save on a full disk neither spins nor floods the log.
    let failures = |log: &str| log.matches("cannot save the job records").count();
    let before = failures(&log.lock().unwrap());
    std::thread::sleep(Duration::from_secs(2));
    let during = failures(&log.lock().unwrap()) - before;
    assert!(during <= 1, "{during} failures logged in 2 s");
    assert!(before <= 2, "{before} failures logged");
    // Killed and restarted with room again: every job whose id a client got
    // is known, the refused one is not.
    let _ = node.0.kill();
    let _ = node.0.wait();
    fs.free();
    let (mut node, addr) = spawn_node_with(&data, &["--exec"]);
    let known: Vec<String> = jobs(&addr)
        .iter()
        .map(|j| j["job_id"].as_str().unwrap().to_owned())
        .collect();
    for id in &accepted {
        assert!(
            known.contains(id),
            "job {id} had an id but no record: {known:?}"
        );
    }
    assert_eq!(known.len(), accepted.len(), "{known:?}");
    let o = run_gsp(&["run", "--addr", &addr, "--", "true"], LIMIT);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stop(&mut node);
}
