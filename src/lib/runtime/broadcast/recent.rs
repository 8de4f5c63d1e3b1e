//! The node's own last broadcasts with their ACK counts, for the side port's
//! `/api/broadcasts` and web view. At most [`RECENT_BROADCASTS`] are kept; a
//! new one pushes the oldest out, finished or not (its sender still gets its
//! progress; only this list forgets it).

use std::{
    collections::VecDeque,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use serde::Serialize;

use crate::core::{ack_tracker::Ending, ids::MessageId};

/// Broadcasts kept in the list.
pub const RECENT_BROADCASTS: usize = 32;

/// One broadcast this node sent, as `/api/broadcasts` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecentBroadcast {
    /// The message id.
    pub id: String,
    /// Its topic.
    pub topic: String,
    /// Payload bytes.
    pub bytes: u64,
    /// When it was sent, Unix nanoseconds.
    pub sent_unix_ns: i64,
    /// Members expected to confirm delivery (this node included).
    pub expected: usize,
    /// Members that confirmed so far.
    pub acked: usize,
    /// `sending`, `converged` or `timed_out`.
    pub state: &'static str,
    /// Members that never confirmed (once timed out).
    pub missing: usize,
    /// Members no longer waited for because they died or left.
    pub departed: usize,
    /// From the send to the last ACK or the deadline, once finished.
    pub duration_ms: Option<u64>,
}

/// The list; shared by the engine's send path and its executor.
#[derive(Debug, Default)]
pub(super) struct Recent {
    list: Mutex<VecDeque<(MessageId, RecentBroadcast)>>,
}

impl Recent {
    fn with<R>(&self, f: impl FnOnce(&mut VecDeque<(MessageId, RecentBroadcast)>) -> R) -> R {
        f(&mut self.list.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A broadcast started.
    pub(super) fn sent(
        &self,
        id: MessageId,
        topic: &str,
        bytes: u64,
        sent_unix_ns: i64,
        expected: usize,
    ) {
        self.with(|l| {
            if l.len() >= RECENT_BROADCASTS {
                l.pop_front();
            }
            l.push_back((
                id,
                RecentBroadcast {
                    id: id.to_string(),
                    topic: topic.to_owned(),
                    bytes,
                    sent_unix_ns,
                    expected,
                    acked: 0,
                    state: "sending",
                    missing: 0,
                    departed: 0,
                    duration_ms: None,
                },
            ));
        });
    }

    /// One more member confirmed `id`.
    pub(super) fn acked(&self, id: MessageId) {
        self.with(|l| {
            if let Some((_, b)) = l.iter_mut().rev().find(|(m, _)| *m == id) {
                b.acked += 1;
            }
        });
    }

    /// `id` is over.
    pub(super) fn done(
        &self,
        id: MessageId,
        ending: Ending,
        missing: usize,
        departed: usize,
        took: Duration,
    ) {
        self.with(|l| {
            if let Some((_, b)) = l.iter_mut().rev().find(|(m, _)| *m == id) {
                b.state = match ending {
                    Ending::Converged => "converged",
                    Ending::TimedOut => "timed_out",
                };
                b.missing = missing;
                b.departed = departed;
                b.duration_ms = Some(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
            }
        });
    }

    /// Newest first.
    pub(super) fn list(&self) -> Vec<RecentBroadcast> {
        self.with(|l| l.iter().rev().map(|(_, b)| b.clone()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_with_their_acks_and_endings() {
        let r = Recent::default();
        let ids: Vec<MessageId> = (0..RECENT_BROADCASTS + 2)
            .map(|_| MessageId::new())
            .collect();
        for (i, id) in ids.iter().enumerate() {
            r.sent(*id, "t", 10, i64::try_from(i).unwrap_or(0), 3);
        }
        let last = ids[ids.len() - 1];
        r.acked(last);
        r.acked(last);
        r.done(last, Ending::TimedOut, 1, 0, Duration::from_millis(1500));
        // The oldest two fell out; acks of a forgotten one change nothing.
        r.acked(ids[0]);
        let shown = r.list();
        assert_eq!(shown.len(), RECENT_BROADCASTS);
        assert_eq!(shown[0].id, last.to_string());
        assert_eq!(
            (shown[0].acked, shown[0].state, shown[0].missing),
            (2, "timed_out", 1)
        );
        assert_eq!(shown[0].duration_ms, Some(1500));
        assert_eq!(shown[1].state, "sending");
        assert!(shown.iter().all(|b| b.id != ids[0].to_string()));
    }
}
