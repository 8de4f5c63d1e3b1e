//! The deployment examples under scripts/deploy/ (systemd unit, Dockerfile,
//! Kubernetes manifests) checked as far as this machine allows, with the
//! built binary: see scripts/deploy/check.sh for what runs where.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

#[test]
fn the_deployment_examples_check_out() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new("bash")
        .arg(format!("{root}/scripts/deploy/check.sh"))
        .arg(common::gsp_bin())
        // A docker build compiles the whole project again: not in the test
        // suite (run the script by hand where a daemon answers).
        .env("GSP_CHECK_DOCKER", "0")
        .env("GSP_CHECK_KUBECTL", "0")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    // Whatever else the machine lacks, the shipped command lines resolve.
    assert!(text.contains("PASS  systemd ExecStart"), "{text}");
    assert!(text.contains("PASS  docker CMD"), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
}
