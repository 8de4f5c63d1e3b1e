//! `gsp node` as a child process on an ephemeral port.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use super::gsp_bin;

/// Starts `gsp node` on an ephemeral port and returns the child and its address,
/// read from the node's startup log line.
pub fn spawn_node(data_dir: &std::path::Path) -> (std::process::Child, String) {
    spawn_node_with(data_dir, &[])
}

pub fn spawn_node_with(
    data_dir: &std::path::Path,
    extra: &[&str],
) -> (std::process::Child, String) {
    let mut child = Command::new(gsp_bin())
        .args([
            "node",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "off",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ])
        .args(extra)
        .env("GSP_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    let addr = loop {
        let Some(line) = lines.next() else {
            panic!("node exited before serving:\n{}", seen.join("\n"));
        };
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("node serving")
            && let Some(rest) = line.split(" listen=").nth(1)
        {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// Sends SIGTERM and waits (bounded) for the node to exit.
pub fn stop(child: &mut std::process::Child) -> std::process::ExitStatus {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
