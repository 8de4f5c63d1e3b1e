//! Exactly once, across suspicions and restarts: a broadcast is delivered to a
//! node at most once, and never to a node that was not there when it was sent
//! (issue 12: a newcomer briefly suspected was handed every older broadcast).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::{process::Command, time::Duration};

use common::{
    procs::{spawn_node_with, stop, wait_for_members},
    run_gsp,
};

const LIMIT: Duration = Duration::from_secs(60);

fn send(addr: &str, text: &str, members: usize) {
    let out = run_gsp(&["send", "--addr", addr, "-m", text], LIMIT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("acked by {members}/{members}")),
        "{said}"
    );
}

fn signal(pid: u32, sig: &str) {
    assert!(
        Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}

/// What the node's --on-message command wrote: one payload per line.
fn handled(file: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn newcomers_and_restarted_nodes_are_never_handed_older_broadcasts() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let hook = |file: &std::path::Path| format!("cat >> {0}; echo >> {0}", file.display());
    let fast = ["--gossip-interval", "0.1"];
    let (mut a, a_addr) = spawn_node_with(dirs[0].path(), &fast);
    let b_file = dirs[1].path().join("handled");
    let b_hook = hook(&b_file);
    let b_args = [&fast[..], &["--join", &a_addr, "--on-message", &b_hook]].concat();
    let (b, _) = spawn_node_with(dirs[1].path(), &b_args);
    wait_for_members(&a_addr, 2, &[]);
    send(&a_addr, "before", 2);

    // c joins after "before", then is suspected for a while (frozen).
    let c_file = dirs[2].path().join("handled");
    let c_hook = hook(&c_file);
    let c_args = [&fast[..], &["--join", &a_addr, "--on-message", &c_hook]].concat();
    let (mut c, _) = spawn_node_with(dirs[2].path(), &c_args);
    wait_for_members(&a_addr, 3, &[]);
    signal(c.id(), "STOP");
    std::thread::sleep(Duration::from_millis(1500));
    signal(c.id(), "CONT");
    wait_for_members(&a_addr, 3, &[]);
    send(&a_addr, "after", 3);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        handled(&c_file),
        ["after"],
        "c was handed a broadcast from before it joined"
    );
    assert_eq!(handled(&b_file), ["before", "after"]);

    // b crashes and restarts (same data dir): a new incarnation is a newcomer.
    let mut b = b;
    signal(b.id(), "KILL");
    let _ = b.wait();
    let restarted_file = dirs[1].path().join("handled-again");
    let restarted_hook = hook(&restarted_file);
    let restarted_args = [
        &fast[..],
        &["--join", &a_addr, "--on-message", &restarted_hook],
    ]
    .concat();
    let (mut b2, b2_addr) = spawn_node_with(dirs[1].path(), &restarted_args);
    // Joined: it sees all three, and they have had time to see it back.
    wait_for_members(&b2_addr, 3, &[]);
    std::thread::sleep(Duration::from_secs(2));
    send(&a_addr, "again", 3);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        handled(&restarted_file),
        ["again"],
        "the restarted node delivered broadcasts it had delivered before"
    );
    for child in [&mut a, &mut b2, &mut c] {
        stop(child);
    }
}
