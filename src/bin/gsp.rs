//! The `gsp` binary: everything lives in the library; see `gsp::cli`.

/// mimalloc instead of the system allocator: the data plane allocates and frees a
/// payload-sized buffer per received message, which glibc serves with fresh pages
/// (page faults and madvise on every message); `gsp bench` measures the difference.
/// Wrapped in a counter so `gsp bench` can report allocations per message.
#[global_allocator]
static GLOBAL: gsp::bench::alloc::CountingAlloc<mimalloc::MiMalloc> =
    gsp::bench::alloc::CountingAlloc(mimalloc::MiMalloc);

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e`.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// How long freed memory stays with the allocator before it goes back to the OS.
/// mimalloc's default (10 ms) returns payload buffers between messages, and every
/// message then faults in (and the kernel zeroes) fresh huge pages: `gsp bench
/// broadcast` measured 5x the CPU and 5x the convergence time with it.
const PURGE_DELAY_MS: std::ffi::c_long = 1000;

/// Transparent huge pages off from the start (before the runtime's first
/// allocation, which `main` is too late for): mimalloc asks for them on the
/// heap it reserves at the first allocation, and the kernel zeroes a whole
/// 2 MiB page on first touch.
/// - Clients: `gsp peers` (p50 of 100 runs) took 4.5 ms with them, 4.1 ms
///   without.
/// - Nodes keep each broadcast they receive (to serve pulls), so every large
///   one is fresh memory. 16 nodes in network namespaces (2-core Intel Xeon
///   VM, `scripts/bench-broadcast-netns.sh 16 10gbit 16M`) spent 1.2
///   CPU-seconds per 16 MiB broadcast with huge pages, 60% of it zeroing them
///   (on a VM that reports free memory to its host, each zeroed page is also
///   faulted in from the host), and 0.5 without: 560-650 ms -> 235-290 ms to
///   the last delivery. Node RSS is lower too (`gsp bench`: 75 -> 55 MB).
///   The price: the seed flood (`gsp bench`), whose memory is reused rather
///   than kept, loses what huge pages save it in TLB misses, efficiency 0.80
///   against 0.85 (means of 4 interleaved runs each, `MIMALLOC_ALLOW_THP=0`
///   and `=1` before this change).
#[cfg(target_os = "linux")]
#[used]
#[allow(
    unsafe_code,
    reason = "a constructor is the only hook before the first allocation"
)]
#[unsafe(link_section = ".init_array")]
static HUGE_PAGES_OFF_AT_START: extern "C" fn() = huge_pages_off;

#[cfg(target_os = "linux")]
extern "C" fn huge_pages_off() {
    gsp::bench::sys::disable_transparent_huge_pages();
}

fn main() -> std::process::ExitCode {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option; mimalloc reads options atomically.
        #[allow(unsafe_code, reason = "mimalloc's option API is C")]
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
        }
    }
    gsp::cli::main()
}
