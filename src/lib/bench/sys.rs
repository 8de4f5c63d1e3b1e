//! Process and host measurements: CPU time, peak RSS, and what machine this is.

use std::time::Duration;

/// CPU time (user + system) this process has used so far.
pub fn cpu_time() -> Duration {
    rusage().map_or(Duration::ZERO, |(cpu, _)| cpu)
}

/// CPU time (user + system) the calling thread has used so far.
#[cfg(target_os = "linux")]
#[allow(unsafe_code, reason = "getrusage has no safe wrapper in std")]
pub fn thread_cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage writes a complete `rusage` into the pointer on success and
    // we read it only then.
    let usage = unsafe {
        if libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) != 0 {
            return Duration::ZERO;
        }
        usage.assume_init()
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Process CPU time where per-thread figures are not available.
#[cfg(not(target_os = "linux"))]
pub fn thread_cpu_time() -> Duration {
    cpu_time()
}

/// Current resident set size of this process, in bytes (Linux: /proc/self/statm;
/// elsewhere the peak, the best available).
pub fn current_rss_bytes() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let pages = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok());
        if let Some(p) = pages {
            return p * page_size();
        }
    }
    peak_rss_bytes()
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code, reason = "sysconf has no safe wrapper in std")]
fn page_size() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).ok().filter(|n| *n > 0).unwrap_or(4096)
}

/// Peak resident set size of this process so far, in bytes.
pub fn peak_rss_bytes() -> u64 {
    rusage().map_or(0, |(_, rss)| rss)
}

#[cfg(unix)]
#[allow(unsafe_code, reason = "getrusage has no safe wrapper in std")]
fn rusage() -> Option<(Duration, u64)> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage writes a complete `rusage` into the pointer on success and
    // we read it only then.
    let usage = unsafe {
        if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
            return None;
        }
        usage.assume_init()
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    let cpu = tv(usage.ru_utime) + tv(usage.ru_stime);
    // Linux reports ru_maxrss in KiB (macOS in bytes).
    let max_rss = u64::try_from(usage.ru_maxrss).unwrap_or(0);
    let rss = if cfg!(target_os = "macos") {
        max_rss
    } else {
        max_rss * 1024
    };
    Some((cpu, rss))
}

#[cfg(not(unix))]
fn rusage() -> Option<(Duration, u64)> {
    None
}

/// Counts of the whole process that move with the work done more than with
/// how fast the host is: system calls and context switches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessCounters {
    /// write(2)-family calls (`syscw` in `/proc/self/io`: write, writev,
    /// pwrite; sockets are written this way). Reads are not counted: the
    /// standard library reads sockets with recv(2), which `syscr` leaves out.
    pub write_syscalls: u64,
    /// Voluntary and involuntary context switches (getrusage).
    pub context_switches: u64,
}

impl ProcessCounters {
    /// What was counted between `before` and `self`.
    #[must_use]
    pub fn since(self, before: Self) -> Self {
        Self {
            write_syscalls: self.write_syscalls.saturating_sub(before.write_syscalls),
            context_switches: self
                .context_switches
                .saturating_sub(before.context_switches),
        }
    }
}

/// The process's counters now; `None` where `/proc/self/io` or getrusage
/// cannot be read (not Linux, or a sandbox that hides them).
#[cfg(target_os = "linux")]
#[allow(unsafe_code, reason = "getrusage has no safe wrapper in std")]
pub fn process_counters() -> Option<ProcessCounters> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    let field = |name: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage writes a complete `rusage` into the pointer on success and
    // we read it only then.
    let usage = unsafe {
        if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
            return None;
        }
        usage.assume_init()
    };
    let switches =
        u64::try_from(usage.ru_nvcsw).unwrap_or(0) + u64::try_from(usage.ru_nivcsw).unwrap_or(0);
    Some(ProcessCounters {
        write_syscalls: field("syscw:")?,
        context_switches: switches,
    })
}

/// Not measured off Linux.
#[cfg(not(target_os = "linux"))]
pub fn process_counters() -> Option<ProcessCounters> {
    None
}

/// Turns transparent huge pages off for this process (memory faulted in from
/// now on comes in 4 KiB pages); returns whether that worked. `gsp` does it
/// before its first allocation (`src/bin/gsp.rs`, which says why for clients
/// and nodes); an in-process cluster run from a test, without that start,
/// calls it itself.
///
/// An in-process cluster runs each node on its own thread, and the allocator
/// gives each thread its own pages, which it asks the kernel to back with
/// 2 MiB huge pages: a node whose live heap is under 1 MiB then held 7 MiB
/// of RSS (`gsp bench membership --nodes 100`: 720 MiB with huge pages, 224 MiB
/// without).
#[cfg(target_os = "linux")]
#[allow(unsafe_code, reason = "prctl has no safe wrapper in std")]
pub fn disable_transparent_huge_pages() -> bool {
    // SAFETY: PR_SET_THP_DISABLE takes plain integer arguments and touches no
    // memory of ours.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, libc::c_ulong::from(true), 0, 0, 0) == 0 }
}

/// No transparent huge pages to turn off.
#[cfg(not(target_os = "linux"))]
pub fn disable_transparent_huge_pages() -> bool {
    false
}

/// The machine a report came from.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct HostInfo {
    /// CPU brand string.
    pub cpu_model: String,
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// Kernel version.
    pub kernel: String,
    /// Operating system.
    pub os: String,
}

impl HostInfo {
    /// Reads this machine's description.
    pub fn detect() -> Self {
        use sysinfo::{CpuRefreshKind, RefreshKind, System};
        let cpu_model =
            System::new_with_specifics(RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing()))
                .ok()
                .and_then(|sys| sys.cpus().first().map(|c| c.brand().trim().to_owned()))
                .unwrap_or_default();
        Self {
            cpu_model,
            cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            kernel: System::kernel_version().unwrap_or_default(),
            os: System::long_os_version().unwrap_or_default(),
        }
    }
}
