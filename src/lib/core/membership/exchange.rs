//! Push-pull and probe answers as pure steps, so a node and a simulation run
//! the same exchange: the caller opens with its table hash; the callee answers
//! in sync, or with its digests; the caller then pushes what the callee lacks
//! and asks for what it lacks itself. An iarnet callee answers the hash step
//! with its whole table (no digests), and gets the caller's whole table back.
//!
//! Records here have passed the runtime's checks (domain, signatures): these
//! functions decide what to merge and what to answer, not whom to believe.

use super::{
    Membership,
    candidates::Source,
    messages::{Phase, PushPullReply},
    record::{MemberState, SharedRecord},
};
use crate::core::{ids::NodeId, now::Now};

/// Records pushed, returned or wanted in one push-pull message, at most: a
/// larger difference takes several exchanges (the churn rounds' push-pulls
/// follow one another), and a message stays far below the 8 MiB limit.
pub const MAX_EXCHANGE_RECORDS: usize = 4096;

fn capped<T>(mut v: Vec<T>) -> Vec<T> {
    v.truncate(MAX_EXCHANGE_RECORDS);
    v
}

/// One request of a push-pull exchange, without the caller's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The step.
    pub phase: Phase,
    /// Records pushed.
    pub records: Vec<SharedRecord>,
    /// The caller's table hash (hash step).
    pub table_hash: u64,
    /// Records wanted (records step).
    pub want: Vec<NodeId>,
}

impl Request {
    /// A request for the records of `about` alone (the last check of an
    /// expired suspect asks peers for theirs).
    pub fn ask(about: NodeId) -> Self {
        Self {
            phase: Phase::Records,
            records: Vec::new(),
            table_hash: 0,
            want: vec![about],
        }
    }
}

impl Membership {
    /// The first request of an exchange: this node's record and table hash.
    pub fn push_pull_open(&self) -> Request {
        Request {
            phase: Phase::Hash,
            records: vec![self.local().clone()],
            table_hash: self.table_hash(),
            want: Vec::new(),
        }
    }

    /// The request that follows `reply` to a request of step `sent` (whose
    /// records the caller has merged already), or `None` when the exchange is
    /// over.
    pub fn push_pull_next(&self, sent: Phase, reply: &PushPullReply) -> Option<Request> {
        if sent != Phase::Hash || reply.in_sync {
            return None;
        }
        if reply.digests.is_empty() {
            return Some(Request {
                phase: Phase::Full,
                records: capped(self.all_records()),
                table_hash: 0,
                want: Vec::new(),
            });
        }
        let (records, want) = self.diff(&reply.digests);
        Some(Request {
            phase: Phase::Records,
            records: capped(records),
            table_hash: 0,
            want: capped(want),
        })
    }

    /// The callee's side of one push-pull request from `from`, whose records
    /// `source` delivered.
    pub fn answer_push_pull(
        &mut self,
        from: &NodeId,
        request: Request,
        source: Option<Source<'_>>,
        now: Now,
    ) -> PushPullReply {
        let callers_own = request.records.iter().find(|r| &r.id == from).cloned();
        // The caller's own record is news (a joiner, a refutation); the rest
        // of its table is not, to anyone but this node.
        let (own, rest): (Vec<_>, Vec<_>) =
            request.records.into_iter().partition(|r| &r.id == from);
        self.apply_all_from(own, source, now);
        self.apply_synced(rest, source, now);
        self.probe_succeeded(from, now);
        let mut reply = match request.phase {
            Phase::Hash if self.table_hash() == request.table_hash => PushPullReply {
                in_sync: true,
                ..PushPullReply::default()
            },
            Phase::Hash => PushPullReply {
                records: vec![self.local().clone()],
                in_sync: false,
                digests: self.digests(),
            },
            Phase::Records => PushPullReply {
                records: capped(self.records_for(&request.want)),
                ..PushPullReply::default()
            },
            Phase::Full => PushPullReply {
                records: capped(self.all_records()),
                ..PushPullReply::default()
            },
        };
        // The caller believes itself alive here while this node holds it
        // removed: tell it, so it can refute.
        if let Some(claim) = callers_own.and_then(|r| self.removed_claim(&r)) {
            reply.in_sync = false;
            reply.records.push(claim.into());
        }
        reply
    }

    /// The answer to a direct probe from `from` carrying `updates`: the
    /// updates to piggyback on the ack. A prober that still doubts this node
    /// gets its current record, whatever the update queue holds.
    pub fn answer_ping(
        &mut self,
        from: &NodeId,
        updates: Vec<SharedRecord>,
        source: Option<Source<'_>>,
        now: Now,
    ) -> Vec<SharedRecord> {
        let local = self.local().id.clone();
        let doubted = updates
            .iter()
            .any(|r| r.id == local && r.state != MemberState::Alive);
        self.apply_all_from(updates, source, now);
        self.probe_succeeded(from, now);
        let mut out = self.piggyback(Some(from));
        if doubted && !out.iter().any(|r| r.id == local) {
            out.insert(0, self.local().clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::core::membership::{config::MembershipConfig, record::testing::record};

    fn now(t0: Instant) -> Now {
        Now {
            instant: t0,
            unix_ns: 1,
        }
    }

    fn table(n: usize, t0: Instant) -> Membership {
        let config = MembershipConfig {
            max_members: n + 1,
            ..MembershipConfig::for_test()
        };
        let mut m = Membership::new(config, record("me", 1, MemberState::Alive), now(t0));
        for i in 0..n {
            m.admit(record(&format!("n{i:05}"), 1, MemberState::Alive), now(t0));
        }
        m
    }

    #[test]
    fn a_difference_larger_than_a_message_is_sent_in_parts() {
        let t0 = Instant::now();
        let big = table(MAX_EXCHANGE_RECORDS + 500, t0);
        let small = table(0, t0);
        // The small side opens; the big side answers with its digests.
        let open = small.push_pull_open();
        let mut b = big;
        let reply = b.answer_push_pull(&small.local().id, open, None, now(t0));
        assert_eq!(reply.digests.len(), MAX_EXCHANGE_RECORDS + 501);
        let next = small.push_pull_next(Phase::Hash, &reply).unwrap();
        assert_eq!(next.phase, Phase::Records);
        assert_eq!(next.want.len(), MAX_EXCHANGE_RECORDS);
        let answer = b.answer_push_pull(&small.local().id, next, None, now(t0));
        assert_eq!(answer.records.len(), MAX_EXCHANGE_RECORDS);
    }

    #[test]
    fn equal_tables_stop_at_the_hash() {
        let t0 = Instant::now();
        let a = table(3, t0);
        let mut b = table(4, t0);
        // Different tables: b answers with its digests.
        let reply = b.answer_push_pull(&a.local().id, a.push_pull_open(), None, now(t0));
        assert!(!reply.in_sync);
        assert_eq!(reply.digests.len(), 5);
        let mut c = table(0, t0);
        let open = Request {
            table_hash: c.table_hash(),
            ..c.push_pull_open()
        };
        let id = c.local().id.clone();
        let same = c.answer_push_pull(&id, open, None, now(t0));
        assert!(same.in_sync, "a table compared with itself is in sync");
    }
}
