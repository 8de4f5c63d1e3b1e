//! The membership protocol's messages, in domain terms. The transport maps them to
//! `gsp.membership.v1` and iarnet's `discovery` messages.

use std::time::Duration;

use super::record::{Digest, SharedRecord};
use crate::ids::NodeId;

/// A direct probe.
#[derive(Debug, Clone)]
pub struct Ping {
    /// The prober.
    pub from: NodeId,
    /// The prober's domain.
    pub domain: String,
    /// The node the prober means to reach.
    pub target: NodeId,
    /// Correlates the reply.
    pub seq: u64,
    /// Piggybacked updates.
    pub updates: Vec<SharedRecord>,
    /// The prober checks a claim about the target: the ack carries the
    /// target's own record first.
    pub want_record: bool,
}

/// The answer to a probe: an ack, or a nack from an intermediary.
#[derive(Debug, Clone)]
pub struct PingReply {
    /// The answering node.
    pub from: NodeId,
    /// The probe's sequence number.
    pub seq: u64,
    /// Whether the target answered.
    pub ack: bool,
    /// Piggybacked updates.
    pub updates: Vec<SharedRecord>,
}

/// A request to probe `target` on the caller's behalf.
#[derive(Debug, Clone)]
pub struct IndirectPing {
    /// The node that asks.
    pub from: NodeId,
    /// Its domain.
    pub domain: String,
    /// The node to probe.
    pub target: NodeId,
    /// Where to reach it.
    pub target_address: String,
    /// Correlates the reply.
    pub seq: u64,
    /// How long to wait for the target.
    pub timeout: Duration,
    /// Piggybacked updates.
    pub updates: Vec<SharedRecord>,
}

/// Pending updates pushed to a peer.
#[derive(Debug, Clone)]
pub struct Gossip {
    /// The sender.
    pub from: NodeId,
    /// Its domain.
    pub domain: String,
    /// The updates.
    pub updates: Vec<SharedRecord>,
}

/// Which step of a push-pull exchange a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// iarnet's exchange: push records, get the callee's back.
    Full,
    /// Compare table hashes; the callee answers in sync, or with its digests.
    Hash,
    /// Push what the callee lacks, ask for what the caller lacks.
    Records,
}

/// One push-pull call.
#[derive(Debug, Clone)]
pub struct PushPull {
    /// The caller.
    pub from: NodeId,
    /// Where it can be reached.
    pub from_address: String,
    /// Its domain.
    pub domain: String,
    /// The step.
    pub phase: Phase,
    /// Records pushed (the caller's own record in the hash phase).
    pub records: Vec<SharedRecord>,
    /// The caller's table hash (hash phase).
    pub table_hash: u64,
    /// Ids whose records the caller wants (records phase).
    pub want: Vec<NodeId>,
}

/// The callee's side of a push-pull call.
#[derive(Debug, Clone, Default)]
pub struct PushPullReply {
    /// Records returned: the callee's own in the hash phase, the wanted ones in the
    /// records phase, every record in the full phase.
    pub records: Vec<SharedRecord>,
    /// The tables already match.
    pub in_sync: bool,
    /// The callee's digests, when not in sync (hash phase).
    pub digests: Vec<Digest>,
}
