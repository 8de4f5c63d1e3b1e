//! This process's open-file limit (`RLIMIT_NOFILE`): read by the server's
//! connection table to size its budget, raised by in-process bench clusters
//! and by clients that hold a stream per node (`gsp run --all`).

/// The soft limit (`None`: unlimited, or unknown).
#[must_use]
pub fn soft() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes a complete rlimit into the pointer.
    #[expect(unsafe_code, reason = "getrlimit has no safe wrapper in std")]
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } == 0;
    (ok && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// Raises the soft limit towards `wanted` (up to the hard limit, and the hard
/// limit too when privileged); the soft limit then.
#[allow(
    unsafe_code,
    reason = "getrlimit/setrlimit have no safe wrapper in std"
)]
pub fn raise(wanted: usize) -> Option<u64> {
    let wanted = libc::rlim_t::try_from(wanted).unwrap_or(libc::rlim_t::MAX);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes a complete rlimit into the pointer; setrlimit only
    // reads it.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) == 0 && lim.rlim_cur < wanted {
            let raised = libc::rlimit {
                rlim_cur: wanted,
                rlim_max: lim.rlim_max.max(wanted),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) != 0 {
                let capped = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                libc::setrlimit(libc::RLIMIT_NOFILE, &raw const capped);
            }
        }
    }
    soft()
}
