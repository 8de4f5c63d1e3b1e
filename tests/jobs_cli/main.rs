//! `gsp run`, `gsp jobs`, `gsp logs`, `gsp cancel` against real nodes on
//! 127.0.0.1, as a user runs them.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "../common/mod.rs"]
mod common;

mod fleet;
mod full_disk;
mod output;
mod placement;
mod restarts;
mod steps;

use common::stderr;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use common::{gsp_bin, run_gsp};
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

fn until(what: &str, ok: impl FnMut() -> bool) {
    common::until(what, LIMIT, ok);
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
