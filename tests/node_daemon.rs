//! `gsp node` as a daemon, driven as an operator would: SIGHUP reloads what
//! can change, a second Ctrl-C exits at once, start-up and join problems are
//! said at WARN, and a restarted node finds its peers without seeds.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::stderr;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use common::{
    procs::{Log, spawn_node_logged, stop, wait_for_members},
    run_gsp,
};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

fn signal(child: &std::process::Child, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits (up to 20 s) until the log has a line containing every part; returns it.
fn log_line(log: &Log, parts: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(line) = log
            .lock()
            .unwrap()
            .lines()
            .find(|l| parts.iter().all(|p| l.contains(p)))
        {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {parts:?}:\n{}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn self_record(addr: &str) -> Value {
    let out = run_gsp(&["peers", "--addr", addr, "--json"], LIMIT);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["nodes"][0].clone()
}

#[test]
fn sighup_reloads_labels_seeds_and_token_and_names_what_needs_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("gsp.yaml");
    let token = tmp.path().join("token");
    let write = |zone: &str, fanout: u32, tok: &str, join: &str| {
        std::fs::write(&token, tok).unwrap();
        std::fs::write(
            &cfg,
            format!(
                "gsp:\n  fanout: {fanout}\n  gossip_interval: 0.1\n  labels: {{zone: {zone}}}\n  \
                 join: [{join}]\n  security:\n    admin_token_file: {}\n",
                token.display()
            ),
        )
        .unwrap();
    };
    // A second node the first learns about only through the reloaded file.
    let other_dir = tempfile::tempdir().unwrap();
    let (mut other, other_addr, _) =
        spawn_node_logged(other_dir.path(), &["--gossip-interval", "0.1"], &[]);
    write("a", 3, "tok-before-1", "");
    let data = tmp.path().join("data");
    let (mut node, addr, log) = spawn_node_logged(&data, &["--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(self_record(&addr)["labels"]["zone"], "a");

    write("b", 5, "tok-after-2", &other_addr);
    signal(&node, "HUP");
    let line = log_line(&log, &["SIGHUP: reloaded"]);
    assert!(line.contains("labels"), "{line}");
    assert!(line.contains("admin token"), "{line}");
    assert!(
        line.contains(&format!("seeds (joining {other_addr})")),
        "{line}"
    );
    assert!(line.contains("needs a restart: --fanout"), "{line}");
    assert!(
        node.try_wait().unwrap().is_none(),
        "the node died on SIGHUP"
    );

    assert_eq!(self_record(&addr)["labels"]["zone"], "b");
    wait_for_members(&addr, 2, &[]);
    let set = |tok: &str| {
        run_gsp(
            &[
                "maint",
                "--addr",
                &addr,
                "--token",
                tok,
                "set",
                "maintenance",
                "--json",
            ],
            LIMIT,
        )
    };
    let old = set("tok-before-1");
    assert_eq!(old.status.code(), Some(3), "the old token still works");
    let new = set("tok-after-2");
    assert!(new.status.success(), "{}", stderr(&new));

    // A broken file changes nothing and says so; the node keeps running.
    std::fs::write(&cfg, "gsp:\n  fanout: [oops\n").unwrap();
    signal(&node, "HUP");
    log_line(&log, &["SIGHUP: nothing reloaded", "invalid config file"]);
    assert_eq!(self_record(&addr)["labels"]["zone"], "b");
    assert!(stop(&mut node).success());
    assert!(stop(&mut other).success());
}

#[test]
fn a_second_interrupt_exits_at_once() {
    // The leave is announced to a frozen peer: the graceful path waits for it
    // (a second at least), during which the second Ctrl-C must end the process.
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let (mut a, a_addr, a_log) =
        spawn_node_logged(a_dir.path(), &["--gossip-interval", "0.5"], &[]);
    let (mut b, _, _) = spawn_node_logged(
        b_dir.path(),
        &["--gossip-interval", "0.5", "--join", &a_addr],
        &[],
    );
    wait_for_members(&a_addr, 2, &[]);
    signal(&b, "STOP");
    signal(&a, "INT");
    log_line(&a_log, &["interrupt again to exit at once"]);
    signal(&a, "INT");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = a.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after two interrupts");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130), "{}", a_log.lock().unwrap());
    log_line(&a_log, &["second interrupt: exiting at once"]);
    signal(&b, "CONT");
    assert!(stop(&mut b).success());
}

#[test]
fn join_problems_are_warned_about_and_a_foreign_domain_is_named() {
    let a_dir = tempfile::tempdir().unwrap();
    let (mut a, a_addr, _) = spawn_node_logged(a_dir.path(), &["--domain", "alpha"], &[]);
    let b_dir = tempfile::tempdir().unwrap();
    let (mut b, _, log) = spawn_node_logged(
        b_dir.path(),
        &[
            "--domain",
            "beta",
            "--gossip-interval",
            "0.1",
            "--join",
            &a_addr,
            "--join",
            "127.0.0.1:1",
            "--join",
            "no-such-host.invalid:50005",
        ],
        &[],
    );
    let line = log_line(
        &log,
        &["WARN", &format!("seed {a_addr} is in domain 'alpha'")],
    );
    assert!(line.contains("this node is in 'beta'"), "{line}");
    let line = log_line(
        &log,
        &["WARN", "cannot join through seed", "seed=127.0.0.1:1"],
    );
    assert!(line.contains("refused"), "{line}");
    log_line(
        &log,
        &[
            "WARN",
            "cannot join through seed",
            "seed=no-such-host.invalid:50005",
        ],
    );
    // Retried, with the attempt counted.
    log_line(&log, &["seed=127.0.0.1:1", "attempts=3"]);
    log_line(&log, &["advertising 127.0.0.1:", "the listen address"]);
    assert!(
        !log.lock().unwrap().contains("joined through seed"),
        "a refused join was reported as a success:\n{}",
        log.lock().unwrap()
    );
    stop(&mut b);
    stop(&mut a);
}

#[test]
fn a_restarted_node_finds_its_peers_without_seeds() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let (mut a, a_addr, _) = spawn_node_logged(a_dir.path(), &["--gossip-interval", "0.1"], &[]);
    let (mut b, _, _) = spawn_node_logged(
        b_dir.path(),
        &["--gossip-interval", "0.1", "--join", &a_addr],
        &[],
    );
    wait_for_members(&a_addr, 2, &[]);
    // Stopping writes the snapshot; the peer is in it.
    assert!(stop(&mut b).success());
    let snap: Value =
        serde_json::from_slice(&std::fs::read(b_dir.path().join("peers.json")).unwrap()).unwrap();
    assert_eq!(snap["schema"], "gsp.peers-snapshot.v1");
    assert_eq!(snap["peers"][0]["address"], a_addr.as_str());
    // Restarted with no --join at all, it is back in the cluster.
    let (mut b2, b2_addr, log) =
        spawn_node_logged(b_dir.path(), &["--gossip-interval", "0.1"], &[]);
    log_line(&log, &["trying the peers known in the last run", "peers=1"]);
    wait_for_members(&b2_addr, 2, &[]);
    log_line(&log, &["rejoined through a peer known in the last run"]);
    assert!(stop(&mut b2).success());
    assert!(stop(&mut a).success());
}

#[test]
fn systemd_is_told_ready_reloading_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let recv = || {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let (mut node, _addr, _log) = spawn_node_logged(
        &dir.path().join("data"),
        &[],
        &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())],
    );
    assert_eq!(recv(), "READY=1\n");
    signal(&node, "HUP");
    let reloading = recv();
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    assert_eq!(recv(), "READY=1\n");
    signal(&node, "TERM");
    assert_eq!(recv(), "STOPPING=1\n");
    assert!(node.wait().unwrap().success());
}

#[test]
fn a_seed_that_is_the_node_itself_is_said_and_not_counted_as_joined() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let me = format!("127.0.0.1:{port}");
    // A name for its own address (a shared seed list, a headless service).
    let seed = format!("localhost:{port}");
    let mut child = Command::new(common::gsp_bin())
        .args([
            "node",
            "--listen",
            &me,
            "--http-listen",
            "off",
            "--gossip-interval",
            "0.1",
        ])
        .args(["--data-dir", dir.path().to_str().unwrap(), "--join", &seed])
        .env("GSP_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log: Log = std::sync::Arc::default();
    let sink = std::sync::Arc::clone(&log);
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    log_line(&log, &["is this node itself"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !log.lock().unwrap().contains("joined through seed"),
        "{}",
        log.lock().unwrap()
    );
    stop(&mut child);
}

/// Whether the kernel lets process `pid` have transparent huge pages
/// (`THP_enabled` in `/proc/PID/status`: 0 once it asked for none).
fn thp_enabled(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("THP_enabled:"))
        .expect("the kernel reports THP_enabled (Linux 5.0 and later)");
    line.split_whitespace().nth(1) == Some("1")
}

#[test]
fn clients_and_nodes_run_without_huge_pages() {
    // A client blocked reading its payload from stdin, alive to be looked at.
    let mut client = Command::new(common::gsp_bin())
        .args(["send", "--addr", "127.0.0.1:9", "--file", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while thp_enabled(client.id()) {
        assert!(
            Instant::now() < deadline,
            "the client kept transparent huge pages: each start zeroes a 2 MiB page"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = client.kill();
    let _ = client.wait();
    let dir = tempfile::tempdir().unwrap();
    let (mut node, _addr) = common::procs::spawn_node(dir.path());
    assert!(
        !thp_enabled(node.id()),
        "the node has transparent huge pages: every broadcast it keeps is fresh \
         memory, and zeroing it in 2 MiB pages cost 2.4x the CPU"
    );
    stop(&mut node);
}
