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
use crate::{ids::NodeId, now::Now};

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

/// The caller's side of one push-pull exchange in progress: the step last
/// sent and, after the digests step, what is left to push and to ask for.
/// A difference larger than one message is sent in parts within the same
/// exchange (4,096 records a step), so a node joining a 10,000-member cluster
/// gets the whole table from its seed at once rather than a part per
/// anti-entropy round. The parts are bounded: what is pushed by this node's
/// table, what is asked for by its member cap.
#[derive(Debug, Clone)]
pub struct PushPullSession {
    sent: Phase,
    push: Vec<SharedRecord>,
    want: Vec<NodeId>,
    steps: u32,
}

impl Default for PushPullSession {
    /// A session with nothing left to send after its request (a single
    /// request, such as [`Request::ask`]).
    fn default() -> Self {
        Self {
            sent: Phase::Records,
            push: Vec::new(),
            want: Vec::new(),
            steps: 1,
        }
    }
}

impl PushPullSession {
    /// Requests sent so far.
    pub fn steps(&self) -> u32 {
        self.steps
    }

    /// The next records step, or `None` when nothing is left.
    fn next_part(&mut self) -> Option<Request> {
        if self.push.is_empty() && self.want.is_empty() {
            return None;
        }
        let records: Vec<_> = self
            .push
            .drain(..self.push.len().min(MAX_EXCHANGE_RECORDS))
            .collect();
        let want: Vec<_> = self
            .want
            .drain(..self.want.len().min(MAX_EXCHANGE_RECORDS))
            .collect();
        self.sent = Phase::Records;
        self.steps += 1;
        Some(Request {
            phase: Phase::Records,
            records,
            table_hash: 0,
            want,
        })
    }
}

impl Membership {
    /// The first request of an exchange (this node's record and table hash)
    /// and the session that follows its replies.
    pub fn push_pull_open(&self) -> (PushPullSession, Request) {
        let session = PushPullSession {
            sent: Phase::Hash,
            push: Vec::new(),
            want: Vec::new(),
            steps: 1,
        };
        let request = Request {
            phase: Phase::Hash,
            records: vec![self.local().clone()],
            table_hash: self.table_hash(),
            want: Vec::new(),
        };
        (session, request)
    }

    /// The request that follows `reply` (whose records the caller has merged
    /// already) in `session`, or `None` when the exchange is over.
    pub fn push_pull_next(
        &self,
        session: &mut PushPullSession,
        reply: &PushPullReply,
    ) -> Option<Request> {
        match session.sent {
            Phase::Full => None,
            Phase::Records => session.next_part(),
            Phase::Hash if reply.in_sync => None,
            Phase::Hash if reply.digests.is_empty() => {
                session.sent = Phase::Full;
                session.steps += 1;
                Some(Request {
                    phase: Phase::Full,
                    records: capped(self.all_records()),
                    table_hash: 0,
                    want: Vec::new(),
                })
            }
            Phase::Hash => {
                let (push, mut want) = self.diff(&reply.digests);
                // A callee cannot make this node ask for more than it can list.
                want.truncate(self.config().max_members);
                session.push = push;
                session.want = want;
                session.next_part()
            }
        }
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
    /// updates to piggyback on the ack. A prober that still doubts this node,
    /// or checks a claim about it (`want_record`), gets its current record
    /// first, whatever the update queue holds.
    pub fn answer_ping(
        &mut self,
        from: &NodeId,
        updates: Vec<SharedRecord>,
        want_record: bool,
        source: Option<Source<'_>>,
        now: Now,
    ) -> Vec<SharedRecord> {
        let local = self.local().id.clone();
        let doubted = want_record
            || updates
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
    use crate::membership::{config::MembershipConfig, record::testing::record};

    fn now(t0: Instant) -> Now {
        Now {
            instant: t0,
            unix_ns: 1,
        }
    }

    fn table(n: usize, t0: Instant) -> Membership {
        let config = MembershipConfig {
            max_members: 2 * MAX_EXCHANGE_RECORDS,
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
        let mut small = table(0, t0);
        // The small side opens; the big side answers with its digests.
        let (mut session, open) = small.push_pull_open();
        let mut b = big;
        let id = small.local().id.clone();
        let reply = b.answer_push_pull(&id, open, None, now(t0));
        assert_eq!(reply.digests.len(), MAX_EXCHANGE_RECORDS + 501);
        let next = small.push_pull_next(&mut session, &reply).unwrap();
        assert_eq!(next.phase, Phase::Records);
        assert_eq!(next.want.len(), MAX_EXCHANGE_RECORDS);
        let mut answer = b.answer_push_pull(&id, next, None, now(t0));
        assert_eq!(answer.records.len(), MAX_EXCHANGE_RECORDS);
        for r in answer.records.drain(..) {
            small.admit(r, now(t0));
        }
        // The rest comes in the same exchange, not at the next one.
        let next = small.push_pull_next(&mut session, &answer).unwrap();
        assert_eq!(next.want.len(), 500);
        let mut answer = b.answer_push_pull(&id, next, None, now(t0));
        for r in answer.records.drain(..) {
            small.admit(r, now(t0));
        }
        assert!(small.push_pull_next(&mut session, &answer).is_none());
        assert_eq!(session.steps(), 3);
        assert_eq!(
            small.table_hash(),
            b.table_hash(),
            "one exchange syncs the whole table"
        );
    }

    #[test]
    fn equal_tables_stop_at_the_hash() {
        let t0 = Instant::now();
        let a = table(3, t0);
        let mut b = table(4, t0);
        // Different tables: b answers with its digests.
        let reply = b.answer_push_pull(&a.local().id, a.push_pull_open().1, None, now(t0));
        assert!(!reply.in_sync);
        assert_eq!(reply.digests.len(), 5);
        let mut c = table(0, t0);
        let open = Request {
            table_hash: c.table_hash(),
            ..c.push_pull_open().1
        };
        let id = c.local().id.clone();
        let same = c.answer_push_pull(&id, open, None, now(t0));
        assert!(same.in_sync, "a table compared with itself is in sync");
    }
}
