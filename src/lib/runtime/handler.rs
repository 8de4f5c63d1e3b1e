//! Runs an operator's hook command (`--on-message`, `--on-event`): `sh -c CMD`
//! in its own process group, with variables in the environment and bytes on
//! stdin, killed (the whole group) at a timeout; the first
//! [`OUTPUT_LOG_BYTES`] of its stdout and stderr and its exit status are
//! logged, the rest of the output is read and dropped so it never blocks.

use std::{fmt::Write as _, process::Stdio, time::Duration};

use bytes::Bytes;
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _},
    process::Command,
};
use tracing::{debug, info, warn};

/// Bytes of each of stdout and stderr kept for the log.
pub const OUTPUT_LOG_BYTES: usize = 4096;
/// Time the group gets between SIGTERM and SIGKILL at the timeout.
const KILL_GRACE: Duration = Duration::from_secs(1);

/// One run of a hook.
#[derive(Debug)]
pub struct HookRun<'a> {
    /// Which hook, for the log: "on-message", "on-event".
    pub hook: &'static str,
    /// What it runs for, for the log (a message id, "dead n3").
    pub subject: String,
    /// The shell command line.
    pub command: &'a str,
    /// Environment variables set for it.
    pub env: Vec<(&'static str, String)>,
    /// Written to its stdin (then closed).
    pub stdin: Bytes,
    /// It is killed after this long.
    pub timeout: Duration,
    /// Log a success at info (otherwise debug: hooks that run per message).
    pub log_success: bool,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookOutcome {
    /// Exited 0.
    Succeeded,
    /// Could not start, or exited non-zero or by a signal.
    Failed,
    /// Killed at the timeout.
    TimedOut,
}

/// Runs `run` to its end; never fails, says how it went.
pub async fn run_hook(run: HookRun<'_>) -> HookOutcome {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(run.command)
        // systemd's socket is the node's, not its hooks'.
        .env_remove("NOTIFY_SOCKET")
        .envs(run.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            warn!(hook = run.hook, subject = %run.subject, command = %run.command, error = %e, "cannot start the {} command", run.hook);
            return HookOutcome::Failed;
        }
    };
    let stdin = child.stdin.take();
    let payload = run.stdin.clone();
    let feed = async move {
        if let Some(mut stdin) = stdin {
            // A command that ignores its input closes the pipe; that is fine.
            let _ = stdin.write_all(&payload).await;
        }
    };
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let finished = tokio::time::timeout(run.timeout, async {
        let ((), status, out, err) = tokio::join!(feed, child.wait(), capture(out), capture(err));
        (status, out, err)
    })
    .await;
    let Ok((status, out, err)) = finished else {
        super::jobs::runner::stop(&mut child, KILL_GRACE).await;
        warn!(hook = run.hook, subject = %run.subject, timeout = ?run.timeout, "{} command timed out; killed", run.hook);
        return HookOutcome::TimedOut;
    };
    let (stdout, stderr) = (out.text(), err.text());
    match status {
        Ok(s) if s.success() => {
            if run.log_success {
                info!(hook = run.hook, subject = %run.subject, status = 0, stdout, stderr, "{} command done", run.hook);
            } else {
                debug!(hook = run.hook, subject = %run.subject, stdout, stderr, "{} command done", run.hook);
            }
            HookOutcome::Succeeded
        }
        Ok(s) => {
            warn!(hook = run.hook, subject = %run.subject, status = %s, stdout, stderr, "{} command failed", run.hook);
            HookOutcome::Failed
        }
        Err(e) => {
            warn!(hook = run.hook, subject = %run.subject, error = %e, "{} command failed", run.hook);
            HookOutcome::Failed
        }
    }
}

/// What was kept of one output stream.
struct Captured {
    kept: Vec<u8>,
    dropped: u64,
}

impl Captured {
    fn text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.kept).trim_end().to_owned();
        if self.dropped > 0 {
            let _ = write!(s, " [... {} more bytes not logged]", self.dropped);
        }
        s
    }
}

async fn capture(pipe: Option<impl AsyncRead + Unpin>) -> Captured {
    let mut c = Captured {
        kept: Vec::new(),
        dropped: 0,
    };
    let Some(mut pipe) = pipe else { return c };
    // On the heap: two of these live in one future.
    let mut buf = vec![0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return c,
            Ok(n) => {
                let room = OUTPUT_LOG_BYTES - c.kept.len();
                let take = n.min(room);
                c.kept.extend_from_slice(&buf[..take]);
                c.dropped += (n - take) as u64;
            }
        }
    }
}
