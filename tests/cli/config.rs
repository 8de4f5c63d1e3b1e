//! Configuration: `--check-config`, iarnet config files, and an old
//! `gsp-data` in the working directory.

use serde_json::Value;

use super::{LIMIT, peers_json};
use crate::common::{
    self,
    procs::{spawn_node_with, stop},
    run_gsp, stderr,
};

#[test]
fn check_config_prints_the_effective_settings_or_names_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "gsp:\n  fanout: 5\n  exec: true\n  labels: {zone: eu}\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let out = run_gsp(
        &[
            "node",
            "--check-config",
            "--json",
            "--config",
            good.to_str().unwrap(),
            "--label",
            "rack=r3",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema"], "gsp.node-config.v1");
    assert_eq!(
        (v["fanout"].as_u64(), v["exec"].as_bool()),
        (Some(5), Some(true))
    );
    assert_eq!(
        v["labels"]["rack"], "r3",
        "the flag wins over the file's labels: {v}"
    );
    assert_eq!(v["admin_token"], "none");
    assert_eq!(v["data_dir"], data.to_str().unwrap());
    assert!(!data.exists(), "--check-config leaves the data dir alone");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "gsp:\n  fanout: lots\n  bogus: 1\n").unwrap();
    let out = run_gsp(
        &["node", "--check-config", "--config", bad.to_str().unwrap()],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("gsp.bogus: unknown key") && err.contains("gsp.fanout"),
        "{err}"
    );
}

#[test]
fn an_iarnet_config_loads_and_bad_configs_list_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = dir.path().join("config.yaml");
    std::fs::write(
        &cfg,
        format!(
            "host: 127.0.0.1\ninitial_peers: []\ndata_dir: {}\napplication:\n  workspace_dir: ../w\nresource:\n  name: node.0\n  domain_id: domain.abc\n  discovery:\n    enabled: true\n    gossip_interval_seconds: 30\n    node_ttl_seconds: 180\n    max_gossip_peers: 10\n    max_hops: 5\n    query_timeout_seconds: 5\n    fanout: 3\n    use_anti_entropy: true\n    anti_entropy_interval_seconds: 300\nenable_local_docker: true\ntransport:\n  http:\n    port: 8083\n  rpc:\n    discovery:\n      port: 50005\nlogging:\n  enabled: true\n",
            data.display()
        ),
    )
    .unwrap();
    let (mut node, addr) = spawn_node_with(&data, &["--config", cfg.to_str().unwrap()]);
    let v = peers_json(&addr);
    assert_eq!(v["nodes"][0]["node_name"], "node.0");
    assert_eq!(v["nodes"][0]["domain_id"], "domain.abc");
    assert!(data.join("node_id").exists());
    assert_eq!(stop(&mut node).code(), Some(0));

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "inital_peers: [x]\ngsp:\n  fanout: many\n  gossip_interval: -2\n",
    )
    .unwrap();
    let out = run_gsp(
        &[
            "node",
            "--config",
            bad.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("inital_peers: unknown key (did you mean 'initial_peers'?)"),
        "{err}"
    );
    assert!(
        err.contains("gsp.fanout") && err.contains("gsp.gossip_interval"),
        "{err}"
    );

    let out = run_gsp(
        &[
            "node",
            "--fanout",
            "0",
            "--max-members",
            "8",
            "--listen",
            "nowhere",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--fanout")
            && stderr(&out).contains("--listen")
            && stderr(&out).contains("--max-members / gsp.max_members: must be between 16"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_old_gsp_data_in_the_working_directory_is_still_used_and_said() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::create_dir(cwd.path().join("gsp-data")).unwrap();
    std::fs::write(cwd.path().join("gsp-data/node_id"), "x").unwrap();
    let out = std::process::Command::new(common::gsp_bin())
        .args(["node", "--check-config", "--json"])
        .current_dir(cwd.path())
        .env_remove("GSP_DATA_DIR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["data_dir"], "gsp-data", "{v}");
    assert!(
        v["notes"][0].as_str().unwrap().contains("./gsp-data"),
        "{v}"
    );
    // Elsewhere the default is a per-user (or, as root, system) state dir.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::gsp_bin())
        .args(["node", "--check-config", "--json"])
        .current_dir(elsewhere.path())
        .env_remove("GSP_DATA_DIR")
        .env_remove("XDG_STATE_HOME")
        .env("HOME", "/home/someone")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dir = v["data_dir"].as_str().unwrap();
    assert!(
        dir == "/var/lib/gsp" || dir == "/home/someone/.local/state/gsp",
        "{v}"
    );
}
