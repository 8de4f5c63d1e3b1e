//! Usage: the version, help, completions, examples and man pages, and bad
//! flags exiting 2.

use super::LIMIT;
use crate::common::{run_gsp, stderr};

#[test]
fn version_names_the_commit() {
    let out = run_gsp(&["--version"], LIMIT);
    assert!(out.status.success());
    let v = String::from_utf8(out.stdout).unwrap();
    assert!(
        v.starts_with(&format!("gsp {}", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    assert!(v.contains("(git "), "{v}");
}

#[test]
fn help_lists_only_working_commands() {
    let out = run_gsp(&["--help"], LIMIT);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for cmd in [
        "node",
        "peers",
        "query",
        "send",
        "watch",
        "bench",
        "run",
        "jobs",
        "logs",
        "cancel",
        "completions",
    ] {
        assert!(help.contains(cmd), "{cmd} missing from help:\n{help}");
    }
    assert!(help.contains("Exit codes"), "{help}");
}

#[test]
fn completions_are_generated() {
    let out = run_gsp(&["completions", "bash"], LIMIT);
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(
        script.contains("_gsp") && script.contains("bench"),
        "{script}"
    );
}

#[test]
fn bad_flags_exit_2_and_name_the_flag() {
    let out = run_gsp(&["bench", "--payload", "5XB"], LIMIT);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("--payload") && err.contains("XB"), "{err}");

    let out = run_gsp(&["bench", "--no-such-flag"], LIMIT);
    assert_eq!(out.status.code(), Some(2));

    let out = run_gsp(&["bench", "--nodes", "1", "--no-write"], LIMIT);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--nodes must be at least 2"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn every_command_has_examples_and_a_man_page() {
    let commands = [
        "node",
        "peers",
        "query",
        "send",
        "maint",
        "labels",
        "force-leave",
        "watch",
        "run",
        "jobs",
        "logs",
        "cancel",
        "bench",
        "tls",
        "completions",
        "man",
    ];
    for c in commands {
        let out = run_gsp(&[c, "--help"], LIMIT);
        assert!(out.status.success(), "gsp {c} --help");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("Examples:"),
            "gsp {c} --help has no examples:\n{help}"
        );
    }
    let out = run_gsp(&["man"], LIMIT);
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.contains(".TH gsp 1") && page.contains("force\\-leave"),
        "{page}"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run_gsp(&["man", "--out", dir.path().to_str().unwrap()], LIMIT);
    assert!(out.status.success(), "{}", stderr(&out));
    for c in commands {
        let page = std::fs::read_to_string(dir.path().join(format!("gsp-{c}.1")))
            .unwrap_or_else(|e| panic!("gsp-{c}.1: {e}"));
        assert!(page.contains(".SH NAME"), "gsp-{c}.1");
    }
    let node = std::fs::read_to_string(dir.path().join("gsp-node.1")).unwrap();
    assert!(node.contains("on\\-event"), "gsp-node.1 lacks --on-event");
}

#[test]
fn node_and_bench_help_list_only_the_flags_they_use() {
    let help = |args: &[&str]| {
        let out = run_gsp(args, LIMIT);
        assert!(out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let node = help(&["node", "--help"]);
    for client_only in ["--addr", "--token", "--timeout"] {
        assert!(
            !node.contains(client_only),
            "gsp node --help lists {client_only}"
        );
    }
    assert!(
        node.contains("--tls-cert") && node.contains("TLS options:"),
        "{node}"
    );
    let bench = help(&["bench", "--help"]);
    for unused in ["--addr", "--token", "--tls-ca"] {
        assert!(!bench.contains(unused), "gsp bench --help lists {unused}");
    }
    let peers = help(&["peers", "--help"]);
    assert!(
        peers.contains("Client options:") && peers.contains("--addr"),
        "{peers}"
    );
    // Hidden, not refused: a shared GSP_ADDR or --addr in a wrapper still works.
    let out = run_gsp(&["node", "--addr", "127.0.0.1:1", "--check-config"], LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
