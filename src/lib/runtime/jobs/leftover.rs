//! Processes a node left running when it died. A step's process leads its own
//! process group, so a node killed with SIGKILL (or by the OOM killer, or a
//! crash) leaves it running, holding the resources its job had reserved. Its
//! record names the group, the leader's start time and the boot; when the node
//! starts again it kills the group if, and only if, the same process still
//! leads it, so a reused pid is never signalled.

use crate::core::jobs::state::ProcessRef;

/// What became of a process a previous run of the node left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leftover {
    /// Gone already (exited, or another boot).
    Gone,
    /// Still running: its process group was sent SIGKILL.
    Killed,
    /// Still running, but it could not be signalled.
    NotKilled,
}

/// Names the process `pid` as [`ProcessRef`] (`None` where the system does not
/// say when it started).
pub fn identify(pid: u32) -> Option<ProcessRef> {
    Some(ProcessRef {
        pgid: i32::try_from(pid).ok()?,
        start_ticks: start_ticks(pid)?,
        boot_id: boot_id()?,
    })
}

/// Kills the process group `r` names if its leader is still the process that
/// started then.
pub fn stop(r: &ProcessRef) -> Leftover {
    let Ok(pid) = u32::try_from(r.pgid) else {
        return Leftover::Gone;
    };
    if r.pgid <= 1
        || boot_id().as_deref() != Some(r.boot_id.as_str())
        || start_ticks(pid) != Some(r.start_ticks)
    {
        return Leftover::Gone;
    }
    if kill_group(r.pgid) {
        Leftover::Killed
    } else {
        Leftover::NotKilled
    }
}

#[cfg(target_os = "linux")]
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after
    // the last ')'. The start time is field 22, the 20th after it.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    if fields.next()? == "Z" {
        // A zombie has exited already; only its parent's wait is missing.
        return None;
    }
    fields.nth(18)?.parse().ok()
}

#[cfg(not(target_os = "linux"))]
fn start_ticks(_pid: u32) -> Option<u64> {
    None
}

/// Read once: it cannot change while the node runs, and every step start
/// asks for it.
#[cfg(target_os = "linux")]
fn boot_id() -> Option<String> {
    static BOOT_ID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BOOT_ID
        .get_or_init(|| {
            std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .clone()
}

#[cfg(not(target_os = "linux"))]
fn boot_id() -> Option<String> {
    None
}

#[cfg(unix)]
#[allow(unsafe_code, reason = "kill(2) has no safe wrapper in std")]
fn kill_group(pgid: i32) -> bool {
    // SAFETY: kill takes plain integers; a negative pid names a process group.
    unsafe { libc::kill(-pgid, libc::SIGKILL) == 0 }
}

#[cfg(not(unix))]
fn kill_group(_pgid: i32) -> bool {
    false
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_live_group_is_killed_and_a_reused_or_gone_one_is_left_alone() {
        use std::os::unix::process::CommandExt as _;
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .expect("sleep runs");
        let r = identify(child.id()).expect("a running process is identified");
        // The same pid with another start time is another process.
        let other = ProcessRef {
            start_ticks: r.start_ticks + 1,
            ..r.clone()
        };
        assert_eq!(stop(&other), Leftover::Gone);
        let rebooted = ProcessRef {
            boot_id: "another-boot".into(),
            ..r.clone()
        };
        assert_eq!(stop(&rebooted), Leftover::Gone);
        assert!(child.try_wait().expect("wait").is_none(), "still running");
        assert_eq!(stop(&r), Leftover::Killed);
        let status = child.wait().expect("wait");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
        // Reaped now: nothing is left to stop.
        assert_eq!(stop(&r), Leftover::Gone);
    }
}
