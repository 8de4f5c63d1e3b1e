//! Mutual TLS between nodes and clients, with certificates minted in the test.
use crate::common;

use std::time::Duration;

use common::{
    certs::{Leaf, Pki},
    procs::{spawn_node_logged, stop},
    run_gsp,
};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(120);

fn tls_args<'a>(ca: &'a str, leaf: Option<&'a Leaf>) -> Vec<&'a str> {
    let mut v = vec!["--tls-ca", ca];
    if let Some(l) = leaf {
        v.extend([
            "--tls-cert",
            l.cert.to_str().unwrap(),
            "--tls-key",
            l.key.to_str().unwrap(),
        ]);
    }
    v
}

fn peers(addr: &str, tls: &[&str]) -> std::process::Output {
    let mut args = vec!["peers", "--addr", addr, "--json", "--timeout", "3"];
    args.extend_from_slice(tls);
    run_gsp(&args, LIMIT)
}

fn until(what: &str, ok: impl FnMut() -> bool) {
    common::until(what, Duration::from_secs(20), ok);
}

#[test]
fn tls_nodes_gossip_and_refuse_callers_without_a_cert_from_their_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "cluster");
    let other = Pki::new(tmp.path(), "other");
    let ca = pki.ca.to_str().unwrap().to_owned();
    let (na, nb, alice) = (pki.leaf("node-a"), pki.leaf("node-b"), pki.leaf("alice"));
    let mallory = other.leaf("mallory");

    let dir_a = tmp.path().join("a");
    let mut a_args = vec!["--gossip-interval", "0.1", "--name", "node-a"];
    a_args.extend(tls_args(&ca, Some(&na)));
    let (mut a, addr_a, log_a) = spawn_node_logged(&dir_a, &a_args, &[]);
    let dir_b = tmp.path().join("b");
    let mut b_args = vec![
        "--gossip-interval",
        "0.1",
        "--name",
        "node-b",
        "--join",
        &addr_a,
    ];
    b_args.extend(tls_args(&ca, Some(&nb)));
    let (mut b, _addr_b, _log_b) = spawn_node_logged(&dir_b, &b_args, &[]);

    // Two TLS nodes gossip.
    let client = tls_args(&ca, Some(&alice));
    until("the TLS nodes to see each other", || {
        let out = peers(&addr_a, &client);
        out.status.success() && serde_json::from_slice::<Value>(&out.stdout).unwrap()["total"] == 2
    });

    // Without a client certificate, with one from another CA, or in plaintext:
    // refused, exit 3.
    for (what, args) in [
        ("no client certificate", tls_args(&ca, None)),
        (
            "a certificate from another CA",
            tls_args(&ca, Some(&mallory)),
        ),
        ("plaintext", vec![]),
    ] {
        let out = peers(&addr_a, &args);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{what}: {}\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            log_a.lock().unwrap()
        );
    }

    // The certificate subject is the actor of a change.
    let mut set = vec!["maint", "--addr", &addr_a, "set", "maintenance", "--json"];
    set.extend_from_slice(&client);
    let out = run_gsp(&set, LIMIT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["actor"].as_str().unwrap().contains("CN=alice"), "{v}");

    // A plaintext node cannot join; both logs say why.
    let dir_p = tmp.path().join("p");
    let (mut p, addr_p, log_p) = spawn_node_logged(
        &dir_p,
        &[
            "--gossip-interval",
            "0.1",
            "--name",
            "plain",
            "--join",
            &addr_a,
        ],
        &[],
    );
    until("both logs to explain the refusal", || {
        log_p.lock().unwrap().contains("the node requires TLS")
            && log_a
                .lock()
                .unwrap()
                .contains("refused a plaintext connection")
    });
    let v: Value = serde_json::from_slice(&peers(&addr_a, &client).stdout).unwrap();
    assert_eq!(v["total"], 2, "the plaintext node got in: {v}");
    let v: Value = serde_json::from_slice(&peers(&addr_p, &[]).stdout).unwrap();
    assert_eq!(v["total"], 1, "the plaintext node sees the TLS nodes: {v}");

    // SIGHUP re-reads the certificate files; a broken file keeps the old ones.
    std::fs::copy(&pki.leaf("node-a2").cert, &na.cert).unwrap();
    std::fs::copy(tmp.path().join("node-a2-key.pem"), &na.key).unwrap();
    let hup = |pid: u32| {
        std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
    };
    hup(a.id());
    until("the reload", || {
        log_a.lock().unwrap().contains("reloaded TLS certificates")
    });
    std::fs::write(&na.key, "not a key").unwrap();
    hup(a.id());
    until("the failed reload", || {
        log_a.lock().unwrap().contains("TLS reload failed")
    });
    let out = peers(&addr_a, &client);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    stop(&mut p);
    stop(&mut b);
    stop(&mut a);
}

#[test]
fn incomplete_tls_settings_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "c");
    let leaf = pki.leaf("n");
    let out = run_gsp(
        &[
            "node",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "off",
            "--data-dir",
            tmp.path().join("d").to_str().unwrap(),
            "--tls-cert",
            leaf.cert.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--tls-key") && err.contains("--tls-ca"),
        "{err}"
    );
    let out = run_gsp(&["peers", "--tls-cert", leaf.cert.to_str().unwrap()], LIMIT);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-ca"));
}

/// The state `addr` lists for `name` (None: not listed).
fn state_of(addr: &str, tls: &[&str], name: &str) -> Option<String> {
    let out = peers(addr, tls);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_name"] == name)
        .map(|n| n["state"].as_str().unwrap().to_owned())
}

#[test]
fn force_leave_spreads_between_tls_nodes_whose_records_are_signed() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new(tmp.path(), "cluster");
    let ca = pki.ca.to_str().unwrap().to_owned();
    let leaves: Vec<Leaf> = ["ta", "tb", "tc"].iter().map(|n| pki.leaf(n)).collect();
    let alice = pki.leaf("alice");
    let client = tls_args(&ca, Some(&alice));
    let mut nodes = Vec::new();
    for (i, name) in ["ta", "tb", "tc"].iter().enumerate() {
        let first: Option<String> = nodes
            .first()
            .map(|(_, a): &(std::process::Child, String)| a.clone());
        let mut args = vec!["--gossip-interval", "0.1", "--name", name];
        if let Some(a) = &first {
            args.extend(["--join", a.as_str()]);
        }
        args.extend(tls_args(&ca, Some(&leaves[i])));
        let (child, addr, _) = spawn_node_logged(&tmp.path().join(name), &args, &[]);
        nodes.push((child, addr));
    }
    let (a, b) = (nodes[0].1.clone(), nodes[1].1.clone());
    until("three TLS members", || {
        let out = peers(&b, &client);
        out.status.success() && serde_json::from_slice::<Value>(&out.stdout).unwrap()["total"] == 3
    });
    nodes[2].0.kill().unwrap();
    nodes[2].0.wait().unwrap();
    for addr in [&a, &b] {
        until("tc dead", || {
            state_of(addr, &client, "tc").as_deref() == Some("dead")
        });
    }
    let mut args = vec!["force-leave", "--addr", &a, "tc", "--json"];
    args.extend_from_slice(&client);
    let out = run_gsp(&args, LIMIT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["confirmed"], 1, "{v}");
    // The claim is unsigned (only tc could sign tc's records), yet accepted as a
    // claim: tb lists tc left, and keeps it so through gossip.
    assert_eq!(state_of(&b, &client, "tc").as_deref(), Some("left"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(state_of(&b, &client, "tc").as_deref(), Some("left"));
    for (child, _) in nodes.iter_mut().take(2) {
        stop(child);
    }
}
