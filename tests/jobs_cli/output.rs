//! A job's output: whole to a live client, from the log file then a marked gap
//! to a late reader, and kept across a restart of its node.

use super::{LIMIT, jobs, run_draining};
use crate::common::{
    procs::{spawn_node_with, stop},
    run_gsp, stderr,
};

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
