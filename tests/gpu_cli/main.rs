//! GPUs as users meet them, through a mock NVML library loaded by gsp's own
//! code path (`gsp node --nvml-library`): per-device records, filters, jobs
//! bound to their own devices, and NVML's failures. The mock
//! (`tests/mock_nvml/mock_nvml.c`) is compiled here with `cc` and reads its
//! devices from the file `$GSP_MOCK_NVML` names, anew on every call.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "../common/mod.rs"]
mod common;

mod binding;
mod check_script;
mod faults;
mod placement;
mod stress;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::Duration,
};

use common::{
    procs::{Killed, Log, spawn_node_logged},
    run_gsp, stderr,
};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);
const GIB: u64 = 1 << 30;

/// The mock NVML library, compiled once per test binary.
fn mock_nvml() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let out = dir.join("libnvidia-ml-mock.so");
        // Built under a name of its own, then renamed: test binaries run at
        // once must not load a half-written library.
        let tmp = dir.join(format!("libnvidia-ml-mock.{}.so", std::process::id()));
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mock_nvml/mock_nvml.c");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
        let status = Command::new(&cc)
            .args([
                "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror", "-o",
            ])
            .arg(&tmp)
            .arg(src)
            .status()
            .unwrap_or_else(|e| panic!("{cc} (a C compiler) builds the mock NVML: {e}"));
        assert!(status.success(), "{cc} failed on {src}");
        std::fs::rename(&tmp, &out).unwrap();
        out
    })
}

/// A mock GPU: `gpu INDEX UUID TOTAL USED UTIL NAME`.
fn gpu(index: u32, uuid: &str, total_gib: u64, used_gib: u64, name: &str) -> String {
    format!(
        "gpu {index} {uuid} {} {} 0 {name}",
        total_gib * GIB,
        used_gib * GIB
    )
}

/// A `gsp node --exec` whose GPUs are the mock's, read every 0.3 s; killed
/// when dropped.
struct GpuNode {
    _node: Killed,
    addr: String,
    log: Log,
    nvml: PathBuf,
    _dir: tempfile::TempDir,
}

impl GpuNode {
    fn start(name: &str, devices: &[String], extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let nvml = dir.path().join("nvml.txt");
        std::fs::write(&nvml, devices.join("\n") + "\n").unwrap();
        let lib = mock_nvml().to_str().unwrap().to_owned();
        let mut args = vec![
            "--name",
            name,
            "--exec",
            "--nvml-library",
            &lib,
            "--resource-interval",
            "0.3",
            "--gossip-interval",
            "0.1",
        ];
        args.extend_from_slice(extra);
        let (child, addr, log) = spawn_node_logged(
            &dir.path().join("data"),
            &args,
            &[("GSP_MOCK_NVML", nvml.to_str().unwrap())],
        );
        Self {
            _node: Killed(child),
            addr,
            log,
            nvml,
            _dir: dir,
        }
    }

    /// Replaces the mock's devices (seen at the next reading).
    fn set_devices(&self, devices: &[String]) {
        let tmp = self.nvml.with_extension("new");
        std::fs::write(&tmp, devices.join("\n") + "\n").unwrap();
        std::fs::rename(tmp, &self.nvml).unwrap();
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// `gsp peers --json` (with `extra` flags) at `addr`: its nodes.
fn peers(addr: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["peers", "--addr", addr, "--json"];
    args.extend_from_slice(extra);
    let o = run_gsp(&args, LIMIT);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["nodes"].as_array().unwrap().clone()
}

/// The devices node `name` publishes, as `addr` sees them.
fn devices(addr: &str, name: &str) -> Vec<Value> {
    peers(addr, &[])
        .into_iter()
        .find(|n| n["node_name"] == name)
        .map(|n| n["gpus"].as_array().unwrap().clone())
        .unwrap_or_default()
}

/// `gsp jobs --json` at `addr`.
fn jobs(addr: &str) -> Vec<Value> {
    let o = run_gsp(&["jobs", "--addr", addr, "--json"], LIMIT);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["jobs"].as_array().unwrap().clone()
}

/// The output lines a `gsp run --json` printed on stdout.
fn output_lines(o: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|e| e["event"] == "log" && e["stream"] == "stdout")
        .map(|e| e["line"].as_str().unwrap().to_owned())
        .collect()
}

/// The node names a `gsp query --json` returned, best first.
fn query(addr: &str, filters: &[&str]) -> (Option<i32>, Vec<String>) {
    let mut args = vec!["query", "--addr", addr, "--json"];
    args.extend_from_slice(filters);
    let o = run_gsp(&args, LIMIT);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    let names = v["nodes"]
        .as_array()
        .map(|n| {
            n.iter()
                .map(|n| n["node_name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    (o.status.code(), names)
}

fn until(what: &str, ok: impl FnMut() -> bool) {
    common::until(what, LIMIT, ok);
}
