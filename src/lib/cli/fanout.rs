//! Calls to many nodes at once (`gsp run --all`, `gsp jobs` across the
//! cluster): at most [`WINDOW`] in flight, and never more connections held
//! than the process may open files.
//!
//! Without a window, `gsp jobs` on a cluster of 5,000 opened 5,000
//! connections at once: past the open-file limit (1,024 by default on most
//! systems) every further node failed with "too many open files" and was
//! reported unreachable. `gsp run --all` keeps one stream per job open until
//! the job ends, so the limit caps how many nodes it can follow: it raises
//! its soft limit as far as the hard one allows and, when that is still too
//! few, refuses before starting anything rather than start the job on some
//! nodes only.

use std::{future::Future, sync::Arc};

use tokio::{sync::Semaphore, task::JoinSet};

use super::exit::UsageError;
use crate::transport::fd_limit;

/// Calls to different nodes in flight at once (as pdsh's fanout): enough to
/// keep a client busy, few enough that a cluster of thousands is not one
/// burst of connections (and TLS handshakes) that times itself out.
pub(crate) const WINDOW: usize = 64;

/// Open files a client needs besides its streams: standard streams, the
/// runtime's poller and waker, signal pipes, the connection to `--addr` and
/// the certificate files it reads.
pub(crate) const RESERVED_FILES: usize = 32;

/// A member that did not answer a fanned-out call, as the `unanswered` lists
/// of `--json` output name it.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Unanswered {
    pub(crate) node_id: String,
    pub(crate) node_name: String,
    pub(crate) error: String,
}

/// One line per member that did not answer, for the text output.
pub(crate) fn unanswered_lines(list: &[Unanswered]) -> String {
    use std::fmt::Write as _;
    list.iter().fold(String::new(), |mut s, u| {
        let _ = writeln!(s, "{}: no answer: {}", u.node_name, u.error);
        s
    })
}

/// Exit 0 when every member answered, 1 when some did not.
pub(crate) fn status(unanswered: &[Unanswered]) -> super::exit::ExitStatus {
    if unanswered.is_empty() {
        super::exit::ExitStatus::Success
    } else {
        super::exit::ExitStatus::Negative
    }
}

/// Runs `call` on every item, at most `window` at once; the results come in
/// the items' order. A call that panicked is left out.
pub(crate) async fn each<T, R, F, Fut>(items: Vec<T>, window: usize, call: F) -> Vec<R>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(window.max(1)));
    let mut set = JoinSet::new();
    for (i, item) in items.into_iter().enumerate() {
        // Not polled (so nothing connects) before it holds a permit.
        let fut = call(item);
        let permits = Arc::clone(&permits);
        set.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (i, fut.await)
        });
    }
    let mut out = Vec::with_capacity(set.len());
    while let Some(joined) = set.join_next().await {
        if let Ok(r) = joined {
            out.push(r);
        }
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// [`WINDOW`], or fewer where the open-file limit (raised first if it can
/// be) leaves room for fewer connections.
pub(crate) fn window() -> usize {
    fd_limit::raise(WINDOW + RESERVED_FILES).map_or(WINDOW, window_under)
}

fn window_under(limit: u64) -> usize {
    usize::try_from(limit).map_or(WINDOW, |l| {
        l.saturating_sub(RESERVED_FILES).clamp(1, WINDOW)
    })
}

/// Makes room to hold `streams` connections open at once: raises the soft
/// open-file limit (up to the hard one) if it is short.
///
/// # Errors
/// Even the hard limit is too low: nothing should be started.
pub(crate) fn room_for(streams: usize, what: &str) -> Result<(), UsageError> {
    match fd_limit::raise(streams.saturating_add(RESERVED_FILES)) {
        Some(limit) => enough(streams, what, limit),
        None => Ok(()),
    }
}

/// Whether `streams` connections fit under the open-file limit `limit`.
fn enough(streams: usize, what: &str, limit: u64) -> Result<(), UsageError> {
    let needed = streams.saturating_add(RESERVED_FILES);
    if u64::try_from(needed).is_ok_and(|n| n <= limit) {
        return Ok(());
    }
    Err(UsageError(format!(
        "{what} {streams} nodes, and following their jobs holds one connection to each: \
         this process may open {limit} files (`ulimit -n`, and its hard limit), \
         {needed} needed; nothing was started. Raise the limit (`ulimit -n {needed}`) \
         or narrow the filters"
    )))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use std::{
        sync::atomic::{AtomicUsize, Ordering},
        time::Duration,
    };

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn each_keeps_at_most_the_window_in_flight_and_the_items_order() {
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let items: Vec<u64> = (0..200).collect();
        let out = each(items, 8, |i| {
            let (now, peak) = (Arc::clone(&now), Arc::clone(&peak));
            async move {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                // Later items finish first: order comes from the items.
                tokio::time::sleep(Duration::from_millis(1000 - i * 5)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                i * 2
            }
        })
        .await;
        assert_eq!(peak.load(Ordering::SeqCst), 8);
        assert_eq!(out, (0..200).map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn the_window_shrinks_to_what_the_open_file_limit_leaves() {
        assert_eq!(window_under(1024), WINDOW);
        assert_eq!(window_under(40), 8);
        assert_eq!(window_under(20), 1);
    }

    #[test]
    fn too_many_nodes_for_the_open_file_limit_are_refused_naming_it() {
        assert!(enough(992, "--all matched", 1024).is_ok());
        let e = enough(993, "--all matched", 1024).unwrap_err().0;
        assert!(
            e.contains("--all matched 993 nodes")
                && e.contains("may open 1024 files")
                && e.contains("1025 needed")
                && e.contains("nothing was started"),
            "{e}"
        );
    }
}
