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
