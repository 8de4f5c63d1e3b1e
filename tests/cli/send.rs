//! `gsp send`, `gsp watch --messages` and `gsp node --on-message` driven as a
//! user would, against real nodes on 127.0.0.1.
use crate::common;

use common::stderr;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use base64::Engine as _;
use common::{
    gsp_bin,
    procs::{cluster, stop},
    run_gsp,
};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn send_reports_every_node_and_watch_and_on_message_receive_it() {
    let dirs: Vec<_> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let out_file = dirs[4].path().join("handled");
    let command = format!(
        "printf '%s|%s|' \"$GSP_TOPIC\" \"$GSP_ORIGIN\" >> {0}; cat >> {0}",
        out_file.display()
    );
    let on_message = ["--on-message", command.as_str()];
    let extra: Vec<&[&str]> = vec![&[], &[], &[], &[], &on_message];
    let mut nodes = cluster(5, &dirs, &extra);
    let watcher = Command::new(gsp_bin())
        .args([
            "watch",
            "--messages",
            "--topic",
            "deploy",
            "--timeout",
            "8",
            "--addr",
            &nodes[3].1,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    // Something on another topic first: the watcher must not print it.
    let out = run_gsp(
        &[
            "send",
            "--addr",
            &nodes[1].1,
            "-m",
            "other",
            "--topic",
            "misc",
        ],
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("acked by 5/5 live members"), "{text}");

    let payload_file = dirs[0].path().join("payload.bin");
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&payload_file, &payload).unwrap();
    let out = run_gsp(
        &[
            "send",
            "--addr",
            &nodes[2].1,
            "--file",
            payload_file.to_str().unwrap(),
            "--topic",
            "deploy",
            "--json",
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "gsp.send.v1");
    assert_eq!(v["expected"], 5);
    assert_eq!(v["acked"], 5);
    assert_eq!(v["converged"], true);
    assert_eq!(v["payload_bytes"], payload.len());
    assert_eq!(v["acks"].as_array().unwrap().len(), 5);
    assert!(v["convergence_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(v["missing"], Value::Array(vec![]));
    assert!(
        v["acks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["node_name"].as_str().is_some_and(|n| !n.is_empty())),
        "acks without names: {v}"
    );
    let id = v["message_id"].as_str().unwrap().to_owned();

    let out = watcher.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let m = &lines[0];
    assert_eq!(m["schema"], "gsp.message.v1");
    assert_eq!(m["message_id"], id.as_str());
    assert_eq!(m["topic"], "deploy");
    assert!(
        m["origin_name"].as_str().is_some_and(|n| !n.is_empty()),
        "{m}"
    );
    assert_eq!(m["size"], payload.len());
    let got = base64::engine::general_purpose::STANDARD
        .decode(m["payload"].as_str().unwrap())
        .unwrap();
    assert_eq!(got, payload);

    // The on-message command on node 4 saw both messages, payloads on stdin.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let expected_len = "misc|".len() + "deploy|".len() + 2 * 37 + 2 + "other".len() + payload.len();
    loop {
        let handled = std::fs::read(&out_file).unwrap_or_default();
        if handled.len() >= expected_len - 10 {
            let text = String::from_utf8_lossy(&handled[..200.min(handled.len())]).into_owned();
            assert!(text.starts_with("misc|"), "{text}");
            assert!(text.contains("|other"), "{text}");
            assert!(handled.ends_with(&payload[payload.len() - 1000..]));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "handler output: {} bytes",
            handled.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for (child, _) in &mut nodes {
        assert_eq!(stop(child).code(), Some(0));
    }
}

#[test]
fn send_refuses_bad_input_with_clear_errors() {
    let dirs: Vec<_> = (0..1).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = cluster(1, &dirs, &[&["--max-payload", "1KiB"]]);
    let addr = nodes[0].1.clone();
    let big = dirs[0].path().join("big");
    std::fs::write(&big, vec![0u8; 4096]).unwrap();
    // Over the client's own cap: refused before connecting (exit 2).
    let out = run_gsp(
        &[
            "send",
            "--addr",
            "127.0.0.1:1",
            "--max-payload",
            "2KiB",
            big.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("exceeds --max-payload"),
        "{}",
        stderr(&out)
    );
    // Within the client's cap but over the node's: the node refuses it (exit 2).
    let out = run_gsp(&["send", "--addr", &addr, big.to_str().unwrap()], LIMIT);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--max-payload of 1024 bytes"),
        "{}",
        stderr(&out)
    );
    // Reserved topic, bad --wait, no source, missing file.
    let out = run_gsp(
        &["send", "--addr", &addr, "-m", "x", "--topic", "_gsp.x"],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("reserved"), "{}", stderr(&out));
    let out = run_gsp(
        &["send", "--addr", &addr, "-m", "x", "--wait", "most"],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--wait"), "{}", stderr(&out));
    let out = run_gsp(&["send", "--addr", &addr], LIMIT);
    assert_eq!(out.status.code(), Some(2));
    let out = run_gsp(&["send", "--addr", &addr, "/nonexistent/file"], LIMIT);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent/file"),
        "{}",
        stderr(&out)
    );
    // A single node converges on its own; --wait none returns at once.
    let out = run_gsp(
        &[
            "send", "--addr", &addr, "-m", "solo", "--wait", "none", "--json",
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["expected"], 1);
    // More acks asked for than there are members: it waits for all of them,
    // says so, and does not contradict itself.
    let out = run_gsp(
        &[
            "send", "--addr", &addr, "-m", "all", "--wait", "99", "--json",
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--wait 99 is more than the 1 live members; waiting for all of them"),
        "{}",
        stderr(&out)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["converged"].as_bool(), v["acked"].as_u64()),
        (Some(true), Some(1))
    );
    assert_eq!(stop(&mut nodes[0].0).code(), Some(0));
    // Nobody listening: exit 3.
    let out = run_gsp(&["send", "--addr", &addr, "-m", "x"], LIMIT);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

#[test]
fn send_exits_1_naming_the_member_that_never_confirmed() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = cluster(3, &dirs, &[]);
    // Freeze node 2: it stays a member for a while but answers nothing.
    let pid = nodes[2].0.id().to_string();
    Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    let out = run_gsp(
        &[
            "send",
            "--addr",
            &nodes[0].1,
            "-m",
            "x",
            "--timeout",
            "0.3",
            "--json",
        ],
        LIMIT,
    );
    Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["converged"], false);
    assert_eq!(v["expected"], 3);
    assert_eq!(v["acked"], 2);
    assert_eq!(v["missing"].as_array().unwrap().len(), 1);
    for (child, _) in &mut nodes {
        assert_eq!(stop(child).code(), Some(0));
    }
}

#[test]
fn broadcast_bench_reports_convergence_copy_ratio_and_p2p() {
    let out = run_gsp(
        &[
            "bench",
            "broadcast",
            "--nodes",
            "3",
            "--payload",
            "64KiB",
            "--messages",
            "20",
            "--json",
            "--no-write",
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "gsp.bench.v1");
    assert_eq!(v["scenario"]["name"], "broadcast");
    assert_eq!(v["scenario"]["nodes"], 3);
    let r = &v["results"];
    assert_eq!(r["broadcasts"], 20);
    assert_eq!(r["converged"], 20);
    assert_eq!(r["timed_out"], 0);
    assert_eq!(v["scenario"]["p2p_samples"], 20);
    let ratio = r["payload_copy_ratio"].as_f64().unwrap();
    assert!((0.99..1.3).contains(&ratio), "payload copy ratio {ratio}");
    for key in ["p50", "p99", "max"] {
        assert!(r["convergence_ns"][key].as_u64().unwrap() > 0, "{key}");
        assert!(r["p2p_ack_ns"][key].as_u64().unwrap() > 0, "{key}");
    }
    assert!(r["goodput_bytes_per_sec"].as_f64().unwrap() > 0.0);
    assert!(!r["convergence_histogram"].as_str().unwrap().is_empty());
    // Bad values are refused by name.
    let out = run_gsp(&["bench", "broadcast", "--rate", "-5", "--no-write"], LIMIT);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--rate"), "{}", stderr(&out));
}

#[test]
fn a_payload_at_the_size_limit_reaches_a_watcher() {
    // 64 MiB is the default --max-payload; the message around it is larger,
    // and the watcher used to stop at "decoded message length too large".
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = cluster(2, &dirs, &[]);
    let watcher = Command::new(gsp_bin())
        .args([
            "watch",
            "--messages",
            "--raw",
            "--timeout",
            "10",
            "--addr",
            &nodes[1].1,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let file = dirs[0].path().join("big.bin");
    let payload: Vec<u8> = (0..64u32 << 20).map(|i| (i % 253) as u8).collect();
    std::fs::write(&file, &payload).unwrap();
    let out = run_gsp(
        &[
            "send",
            "--addr",
            &nodes[0].1,
            "--file",
            file.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The watcher exits by its --timeout; it must have printed every byte.
    let got = watcher.wait_with_output().unwrap();
    assert!(
        !String::from_utf8_lossy(&got.stderr).contains("too large"),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert_eq!(
        got.stdout.len(),
        payload.len(),
        "the watcher did not print the payload"
    );
    assert!(got.stdout == payload, "the payload arrived changed");
    for (child, _) in &mut nodes {
        stop(child);
    }
}
