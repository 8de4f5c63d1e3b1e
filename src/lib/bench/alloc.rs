//! Allocation counting for the bench's "allocations per message" figure (the Go
//! seed reported allocs/op). The `gsp` binary installs [`CountingAlloc`] as its
//! global allocator, and it counts only once [`start_counting`] was called,
//! which `gsp bench` does: a production node pays one relaxed load of a flag
//! that never changes per allocation, not two atomic additions to counters
//! every thread shares. A library user that does not install it gets no
//! allocation figures.

use std::{
    alloc::{GlobalAlloc, Layout},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
};

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);

/// Makes [`CountingAlloc`] count from now on (for the rest of the process).
pub fn start_counting() {
    COUNTING.store(true, Ordering::Relaxed);
}

/// Wraps an allocator and counts allocations (reallocations count as one) and
/// the bytes requested.
#[derive(Debug)]
pub struct CountingAlloc<A>(pub A);

#[allow(
    unsafe_code,
    reason = "a GlobalAlloc implementation is unsafe by definition"
)]
// SAFETY: every method forwards to the wrapped allocator with the caller's
// arguments unchanged; counting touches only atomics.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CountingAlloc<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded as is.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is; `ptr` came from this allocator.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: forwarded as is; `ptr` came from this allocator.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}

fn count(bytes: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// `(allocations, bytes)` counted so far, or `None` when [`CountingAlloc`] is
/// not installed or not counting.
pub fn snapshot() -> Option<(u64, u64)> {
    let n = ALLOCATIONS.load(Ordering::Relaxed);
    (n > 0).then(|| (n, ALLOCATED_BYTES.load(Ordering::Relaxed)))
}

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout, System};

    use super::*;

    #[test]
    fn counts_only_once_started() {
        let a = CountingAlloc(System);
        let layout = Layout::from_size_align(64, 8).unwrap();
        let alloc_free = || {
            // SAFETY: a fresh allocation of a non-zero size, freed with its layout.
            #[allow(unsafe_code, reason = "exercising the allocator")]
            unsafe {
                let p = a.alloc(layout);
                assert!(!p.is_null());
                a.dealloc(p, layout);
            }
        };
        alloc_free();
        assert_eq!(snapshot(), None, "a production process counts nothing");
        start_counting();
        alloc_free();
        alloc_free();
        assert_eq!(snapshot(), Some((2, 128)));
    }
}
