//! The `gsp` binary: everything lives in the library; see `gsp::cli`.

/// mimalloc instead of the system allocator: the data plane allocates and frees a
/// payload-sized buffer per received message, which glibc serves with fresh pages
/// (page faults and madvise on every message); `gsp bench` measures the difference.
/// Wrapped in a counter so `gsp bench` can report allocations per message.
#[global_allocator]
static GLOBAL: gsp::bench::alloc::CountingAlloc<mimalloc::MiMalloc> =
    gsp::bench::alloc::CountingAlloc(mimalloc::MiMalloc);

fn main() -> std::process::ExitCode {
    gsp::cli::main()
}
