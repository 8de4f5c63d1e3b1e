//! Compiles `proto/` with protox (pure Rust, no protoc), generates tonic code,
//! writes the descriptor set served by gRPC reflection, and records the git sha
//! shown by `gsp --version`.

use std::{env, fs, path::PathBuf, process::Command};

use prost::Message as _;

const PROTOS: &[&str] = &[
    "gsp/gossip/v1/gossip.proto",
    "discovery/discovery.proto",
    "gsp/membership/v1/membership.proto",
    "gsp/admin/v1/admin.proto",
    "gsp/jobs/v1/jobs.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    let fds = protox::compile(PROTOS, ["proto"])?;
    fs::write(out_dir.join("gsp_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        // Payloads are `bytes::Bytes` end to end so relaying never copies them.
        .bytes(".")
        .compile_fds(fds)?;

    println!("cargo:rustc-env=GSP_GIT_SHA={}", git_sha());
    println!("cargo:rerun-if-env-changed=GSP_GIT_SHA");
    if let Some(head) = git_path("HEAD") {
        println!("cargo:rerun-if-changed={head}");
    }
    if let Some(refs) = git_path("refs") {
        println!("cargo:rerun-if-changed={refs}");
    }
    Ok(())
}

/// The short commit hash, from `GSP_GIT_SHA` (for builds outside a checkout) or git.
fn git_sha() -> String {
    if let Ok(sha) = env::var("GSP_GIT_SHA") {
        return sha;
    }
    Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "unknown".to_owned(), |s| s.trim().to_owned())
}

fn git_path(name: &str) -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--git-path", name])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let p = String::from_utf8(out.stdout).ok()?;
    Some(p.trim().to_owned())
}
