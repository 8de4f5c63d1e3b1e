//! The built `gsp` binary driven as a user would: JSON parsed, exit codes checked.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "../common/mod.rs"]
mod common;

mod bench;
mod config;
mod errors;
mod force_leave;
mod json_contract;
mod labels;
mod maint;
mod node;
mod on_event;
mod peers;
mod send;
mod tls;
mod usage;
mod web;

use std::time::Duration;

use common::{run_gsp, stderr};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(120);

fn peers_json(addr: &str) -> Value {
    let out = run_gsp(&["peers", "--addr", addr, "--json"], LIMIT);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Polls `gsp peers --json` on `addr` until `pred` holds (bounded; a hang detector).
fn peers_until(addr: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = peers_json(addr);
        if pred(&v) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "condition never held; last answer: {v:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
