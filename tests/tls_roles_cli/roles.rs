//! The round trip itself: a CA, three node certificates and a client
//! certificate made with `gsp tls` run a secure cluster; the client
//! certificate works for the CLI and is refused on the node planes, and a
//! node cannot speak or sign for another.

use std::{os::unix::fs::PermissionsExt as _, time::Duration};

use serde_json::Value;

use super::{
    Children, LIMIT, certified_impostor, forge_record_as, gsp_ok, ping_as, relay_as, stream_as,
    tls_of, until,
};
use crate::common::{
    procs::{spawn_node_logged, stop},
    run_gsp,
};

#[test]
fn a_cluster_secured_with_gsp_tls_works_and_client_certificates_are_not_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    // A directory that does not exist yet is created, for the owner only.
    let fresh = tmp.path().join("pki/cluster").to_str().unwrap().to_owned();
    gsp_ok(&["tls", "ca", "--dir", &fresh]);
    let perms = |p: &str| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(perms(&fresh), 0o700);
    // The CA certificate is public (every node and client reads it); its
    // key is not.
    assert_eq!(perms(&format!("{fresh}/gsp-ca.pem")), 0o644);
    assert_eq!(perms(&format!("{fresh}/gsp-ca-key.pem")), 0o600);
    let dir = tmp.path().to_str().unwrap().to_owned();
    gsp_ok(&["tls", "ca", "--dir", &dir]);
    for n in ["n1", "n2", "n3"] {
        gsp_ok(&["tls", "cert", "--node", n, "--dir", &dir]);
    }
    let made = gsp_ok(&["tls", "cert", "--client", "alice", "--dir", &dir, "--json"]);
    let made: Value = serde_json::from_slice(&made.stdout).unwrap();
    assert_eq!(made["schema"], "gsp.tls.v1");
    assert_eq!(made["role"], "client");
    for f in made["files"].as_array().unwrap() {
        let want = if f["kind"].as_str().unwrap().ends_with("key") {
            0o600
        } else {
            0o644
        };
        assert_eq!(perms(f["path"].as_str().unwrap()), want, "{f}");
    }
    // Never overwritten without --force; a bad name is a usage error.
    let again = run_gsp(&["tls", "cert", "--client", "alice", "--dir", &dir], LIMIT);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let bad = run_gsp(&["tls", "cert", "--node", "a/b", "--dir", &dir], LIMIT);
    assert_eq!(bad.status.code(), Some(2));

    // The certificate is the node's identity: another --name, or a client
    // certificate, does not start.
    let data = tmp.path().join("refused");
    let data = data.to_str().unwrap();
    for (stem, name, says) in [
        ("n1-node", "n2", "does not match the node name"),
        ("alice-client", "alice", "client certificate"),
    ] {
        let mut args = vec![
            "node",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "off",
            "--data-dir",
            data,
            "--name",
            name,
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        args.extend(tls_of(&dir, stem));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_gsp(&args, LIMIT);
        assert_eq!(out.status.code(), Some(2), "{stem} as {name}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{stem} as {name}"
        );
    }

    let mut children = Children(Vec::new());
    let mut seed = String::new();
    for n in ["n1", "n2", "n3"] {
        let mut args: Vec<String> = vec![
            "--gossip-interval".into(),
            "0.1".into(),
            "--name".into(),
            n.into(),
        ];
        if !seed.is_empty() {
            args.extend(["--join".into(), seed.clone()]);
        }
        args.extend(tls_of(&dir, &format!("{n}-node")));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (child, addr, _log) = spawn_node_logged(&tmp.path().join(n), &args, &[]);
        if seed.is_empty() {
            seed = addr;
        }
        children.0.push(child);
    }
    let client = tls_of(&dir, "alice-client");
    let mut peers_args = vec!["peers", "--addr", &seed, "--json", "--timeout", "3"];
    peers_args.extend(client.iter().map(String::as_str));
    until("the secure cluster to converge", || {
        let out = run_gsp(&peers_args, LIMIT);
        out.status.success()
            && serde_json::from_slice::<Value>(&out.stdout).unwrap()["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| n["state"] == "alive")
                .count()
                == 3
    });

    let out = run_gsp(&peers_args, LIMIT);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id_of = |name: &str| {
        listed["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node_name"] == name)
            .unwrap()["node_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (n1, n2, n3) = (id_of("n1"), id_of("n2"), id_of("n3"));
    // The client certificate may not speak as a node; a node certificate may,
    // as itself only.
    let refused = ping_as(tmp.path(), "alice-client", &seed, &n2, &n1).expect_err("client as node");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert!(
        refused.message().contains("--node"),
        "{}",
        refused.message()
    );
    let refused = stream_as(tmp.path(), "alice-client", &seed).expect_err("client stream");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    ping_as(tmp.path(), "n2-node", &seed, &n2, &n1).expect("n2 as itself");
    // n2 relays broadcasts "from n3" to n1: refused unsigned or signed by n2,
    // delivered when n3 signed it.
    let delivered = gsp::transport::pb::gossip::v1::AckStatus::Delivered as i32;
    let (status, reason) = relay_as(tmp.path(), ("n2-node", &n2), &seed, &n3, None);
    assert_ne!(status, delivered);
    assert!(reason.contains("not signed by its origin"), "{reason}");
    let (status, reason) = relay_as(tmp.path(), ("n2-node", &n2), &seed, &n3, Some("n2-node"));
    assert_ne!(status, delivered);
    assert!(reason.contains("not node n3's"), "{reason}");
    let (status, reason) = relay_as(tmp.path(), ("n2-node", &n2), &seed, &n3, Some("n3-node"));
    assert_eq!(status, delivered, "{reason}");
    // Straight from its origin a broadcast needs the signature too: n2's own
    // unsigned one is refused, and so is one under an origin id nobody lists,
    // signed or not; n2's own signed one is delivered.
    let (status, reason) = relay_as(tmp.path(), ("n2-node", &n2), &seed, &n2, None);
    assert_ne!(status, delivered);
    assert!(reason.contains("not signed by its origin"), "{reason}");
    for signer in [None, Some("n2-node")] {
        let (status, reason) = relay_as(tmp.path(), ("n2-node", &n2), &seed, "ghost-1", signer);
        assert_ne!(status, delivered, "{signer:?}: {reason}");
        // Speaking as that unlisted id itself (its certificate cannot be
        // checked against a listed name).
        let (status, reason) =
            relay_as(tmp.path(), ("n2-node", "ghost-2"), &seed, "ghost-2", signer);
        assert_ne!(status, delivered, "as ghost-2, {signer:?}: {reason}");
    }
    let (status, reason) = relay_as(tmp.path(), ("n2-node", &n2), &seed, &n2, Some("n2-node"));
    assert_eq!(status, delivered, "{reason}");
    // n2 pushes a newer record of n3 with another address: unsigned, signed by
    // itself, or renaming n3: none is taken; n3 keeps its address on n1.
    // (Had one been taken, n3 would refute it, but only at an incarnation past
    // the forged one: the incarnation shows whether it ever was.)
    let n3_on_n1 = || {
        let out = run_gsp(&peers_args, LIMIT);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let n = v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node_id"] == n3.as_str())
            .unwrap()
            .clone();
        (
            n["address"].as_str().unwrap().to_owned(),
            n["incarnation"].as_str().unwrap().parse::<u64>().unwrap(),
        )
    };
    let real = n3_on_n1();
    for (name, signer) in [
        ("n3", None),
        ("n3", Some("n2-node")),
        ("n2", Some("n2-node")),
    ] {
        forge_record_as(
            tmp.path(),
            ("n2-node", &n2),
            &seed,
            (&n3, name, "127.0.0.1:9"),
            signer,
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(n3_on_n1(), real, "a forged record of n3 was taken");
    // n2's certificate holder answers probes as any id at an address of its
    // own, and pushes records of made-up ids signed under its name: one
    // certified name is one member, so none is listed.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let impostor = certified_impostor(tmp.path(), "n2-node", &rt);
    for i in 0..20 {
        forge_record_as(
            tmp.path(),
            ("n2-node", &n2),
            &seed,
            (&format!("fake-{i}"), "n2", &impostor),
            Some("n2-node"),
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    let out = run_gsp(&peers_args, LIMIT);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = listed["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node_id"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "made-up members listed: {names:?}");
    drop(rt);
    let forged = ping_as(tmp.path(), "n2-node", &seed, &n3, &n1).expect_err("n2 as n3");
    assert_eq!(forged.code(), tonic::Code::PermissionDenied);
    assert!(
        forged.message().contains("cannot speak as node"),
        "{}",
        forged.message()
    );

    for c in &mut children.0 {
        assert!(stop(c).success());
    }
}
