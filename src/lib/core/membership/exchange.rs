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
    record::{MemberRecord, MemberState},
};
use crate::core::{ids::NodeId, now::Now};

/// One request of a push-pull exchange, without the caller's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The step.
    pub phase: Phase,
    /// Records pushed.
    pub records: Vec<MemberRecord>,
    /// The caller's table hash (hash step).
    pub table_hash: u64,
    /// Records wanted (records step).
    pub want: Vec<NodeId>,
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
                records: self.all_records(),
                table_hash: 0,
                want: Vec::new(),
            });
        }
        let (records, want) = self.diff(&reply.digests);
        Some(Request {
            phase: Phase::Records,
            records,
            table_hash: 0,
            want,
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
                records: self.records_for(&request.want),
                ..PushPullReply::default()
            },
            Phase::Full => PushPullReply {
                records: self.all_records(),
                ..PushPullReply::default()
            },
        };
        // The caller believes itself alive here while this node holds it
        // removed: tell it, so it can refute.
        if let Some(claim) = callers_own.and_then(|r| self.removed_claim(&r)) {
            reply.in_sync = false;
            reply.records.push(claim);
        }
        reply
    }

    /// The answer to a direct probe from `from` carrying `updates`: the
    /// updates to piggyback on the ack. A prober that still doubts this node
    /// gets its current record, whatever the update queue holds.
    pub fn answer_ping(
        &mut self,
        from: &NodeId,
        updates: Vec<MemberRecord>,
        source: Option<Source<'_>>,
        now: Now,
    ) -> Vec<MemberRecord> {
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
