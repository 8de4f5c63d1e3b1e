//! The standard process metrics (`process_*`, as the Go and Python clients
//! export them) and `gsp_build_info`, read from `/proc/self` on each scrape
//! (absent where there is no `/proc`).

use crate::runtime::metrics::encode::Out;

/// Clock ticks per second in `/proc/self/stat` (USER_HZ: 100 on every Linux
/// ABI gsp builds for).
const TICKS_PER_SECOND: f64 = 100.0;

pub(super) fn render(o: &mut Out) {
    o.metric(
        "gsp_build_info",
        "gauge",
        "Always 1; the labels say which build is running.",
        &[(
            &format!(
                "version=\"{}\",git_sha=\"{}\"",
                env!("CARGO_PKG_VERSION"),
                env!("GSP_GIT_SHA")
            ),
            1,
        )],
    );
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    if let (Some(utime), Some(stime)) = (field(14), field(15)) {
        o.counter_f64(
            "process_cpu_seconds_total",
            "User and system CPU time spent, in seconds.",
            (utime + stime) as f64 / TICKS_PER_SECOND,
        );
    }
    if let (Some(start), Some(boot)) = (field(22), boot_time()) {
        o.gauge_f64(
            "process_start_time_seconds",
            "Start time of the process since the unix epoch, in seconds.",
            &[("", boot as f64 + start as f64 / TICKS_PER_SECOND)],
        );
    }
    if let Some(vsize) = field(23) {
        o.metric(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            &[("", vsize)],
        );
    }
    if let Some(rss) = status_kib("VmRSS:") {
        o.metric(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            &[("", rss * 1024)],
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        o.metric(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            &[("", fds.count() as u64)],
        );
    }
    if let Some(max) = max_open_files() {
        o.metric(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            &[("", max)],
        );
    }
}

fn boot_time() -> Option<u64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn status_kib(key: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn max_open_files() -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
}
