//! `gsp node` as a child process on an ephemeral port.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use std::sync::{Arc, Mutex};

use super::{gsp_bin, run_gsp};

/// Kills the node when dropped: a failed assertion must not leave it
/// running (loading the machine for the tests that follow).
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `gsp node` on an ephemeral port and returns the child and its address,
/// read from the node's startup log line.
pub fn spawn_node(data_dir: &std::path::Path) -> (std::process::Child, String) {
    spawn_node_with(data_dir, &[])
}

pub fn spawn_node_with(
    data_dir: &std::path::Path,
    extra: &[&str],
) -> (std::process::Child, String) {
    let (child, addr, _) = spawn_node_logged(data_dir, extra, &[]);
    (child, addr)
}

/// Everything a node wrote to stderr so far.
pub type Log = Arc<Mutex<String>>;

/// The node is killed when the thread that started it ends: a test that
/// fails before it stops its nodes (a panic unwinds past `stop`) leaves none
/// running to load the machine for the tests after it.
fn die_with_test(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    #[allow(
        unsafe_code,
        reason = "pre_exec runs between fork and exec; prctl is async-signal-safe"
    )]
    // SAFETY: the closure only calls prctl, which allocates nothing and takes
    // no lock.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// Like [`spawn_node_with`], with extra environment variables, keeping the
/// node's whole log.
pub fn spawn_node_logged(
    data_dir: &std::path::Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Child, String, Log) {
    let mut cmd = Command::new(gsp_bin());
    cmd.args(["node", "--listen", "127.0.0.1:0"]);
    if !extra.contains(&"--http-listen") {
        cmd.args(["--http-listen", "off"]);
    }
    cmd.args(["--data-dir", data_dir.to_str().unwrap()])
        .args(extra)
        .envs(env.iter().copied())
        .env("GSP_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    die_with_test(&mut cmd);
    let mut child = cmd.spawn().unwrap();
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
    let log: Log = Arc::new(Mutex::new(seen.join("\n") + "\n"));
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    (child, addr, log)
}

/// `n` nodes (gossip every 0.1 s) joined through the first, all seeing `n`
/// alive members; node `i` gets `extra[i]` flags.
pub fn cluster(
    n: usize,
    dirs: &[tempfile::TempDir],
    extra: &[&[&str]],
) -> Vec<(std::process::Child, String)> {
    let mut nodes: Vec<(std::process::Child, String)> = Vec::new();
    for (i, dir) in dirs.iter().enumerate().take(n) {
        let mut args: Vec<&str> = vec!["--gossip-interval", "0.1"];
        let join;
        if i > 0 {
            join = nodes[0].1.clone();
            args.extend(["--join", join.as_str()]);
        }
        if let Some(e) = extra.get(i) {
            args.extend_from_slice(e);
        }
        nodes.push(spawn_node_with(dir.path(), &args));
    }
    for (_, addr) in &nodes {
        wait_for_members(addr, n, &[]);
    }
    nodes
}

/// Waits (up to 30 s) until the node at `addr` lists `n` alive members.
pub fn wait_for_members(addr: &str, n: usize, extra: &[&str]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut args = vec!["peers", "--addr", addr, "--json", "--state", "alive"];
        args.extend_from_slice(extra);
        let out = run_gsp(&args, Duration::from_secs(60));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if v["total"] == n {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no convergence: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
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
