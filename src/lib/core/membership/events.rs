//! Membership events: what changed, as seen by this node. Streamed by `gsp watch`,
//! counted in metrics, logged.

use super::record::{Maintenance, MemberRecord, MemberState, Version};
use crate::ids::NodeId;

/// What happened to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A node was seen for the first time (or again after removal).
    Joined,
    /// A node published a newer record (resources, labels, address).
    Updated,
    /// A node's maintenance state changed (normal, maintenance, disabled).
    Maintenance,
    /// A node missed probes and is suspected.
    Suspect,
    /// A suspected, dead or left node is alive again (refuted, or restarted).
    AliveAgain,
    /// A suspicion expired: the node is considered dead.
    Dead,
    /// A node announced a graceful leave.
    Left,
    /// A dead or left node was dropped after the node TTL.
    Removed,
}

impl EventKind {
    /// Every kind, for metrics.
    pub const ALL: [Self; 8] = [
        Self::Joined,
        Self::Updated,
        Self::Maintenance,
        Self::Suspect,
        Self::AliveAgain,
        Self::Dead,
        Self::Left,
        Self::Removed,
    ];

    /// The snake_case name used in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Joined => "joined",
            Self::Updated => "updated",
            Self::Maintenance => "maintenance",
            Self::Suspect => "suspect",
            Self::AliveAgain => "alive_again",
            Self::Dead => "dead",
            Self::Left => "left",
            Self::Removed => "removed",
        }
    }

    /// The event a transition from `from` (None: unknown) to `to` produces.
    pub fn for_transition(from: Option<MemberState>, to: MemberState) -> Option<Self> {
        use MemberState::{Alive, Dead, Left, Suspect};
        match (from, to) {
            (None, Alive | Suspect) => Some(Self::Joined),
            (Some(Alive), Alive) => Some(Self::Updated),
            (Some(Suspect | Dead | Left), Alive) => Some(Self::AliveAgain),
            (Some(Alive | Dead | Left), Suspect) => Some(Self::Suspect),
            (Some(Suspect), Suspect) => None,
            (_, Dead) => Some(Self::Dead),
            (_, Left) => Some(Self::Left),
        }
    }
}

/// One membership change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipEvent {
    /// What happened.
    pub kind: EventKind,
    /// The node it happened to.
    pub id: NodeId,
    /// Its name.
    pub name: String,
    /// Its address.
    pub address: String,
    /// Its state after the change.
    pub state: MemberState,
    /// Its version after the change.
    pub version: Version,
    /// Its maintenance state after the change.
    pub maintenance: Maintenance,
    /// When this node noticed, unix nanoseconds.
    pub at_unix_ns: i64,
}

impl MembershipEvent {
    /// An event about `record`.
    pub fn new(kind: EventKind, record: &MemberRecord, at_unix_ns: i64) -> Self {
        Self {
            kind,
            id: record.id.clone(),
            name: record.name.clone(),
            address: record.address.clone(),
            state: record.state,
            version: record.version,
            maintenance: record.maintenance,
            at_unix_ns,
        }
    }
}
