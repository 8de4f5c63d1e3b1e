//! `gsp force-leave`: an operator's claim that a member is gone for good, so
//! the cluster stops trying to reach it (and, with prune, forgets it) now
//! instead of after the node TTL. A claim like a death: it never raises the
//! member's version, and a member that is in fact running refutes it.

use super::Membership;
use crate::{
    ids::NodeId,
    membership::record::{MemberRecord, MemberState},
    now::Now,
};

/// Why a force-leave was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForceLeaveError {
    /// The member is not listed here (never known, or already removed).
    #[error("no member {0} is listed here")]
    Unknown(NodeId),
    /// The node was asked to force itself out.
    #[error("{0} is this node; stop it (SIGTERM) to leave gracefully")]
    Local(NodeId),
    /// The member is believed up here and the caller did not insist.
    #[error(
        "member {name} ({id}) is {state} here; force-leave is for members that are gone (--force claims it anyway; a running member refutes and stays)"
    )]
    Up {
        /// The member.
        id: NodeId,
        /// Its name.
        name: String,
        /// Its state here.
        state: MemberState,
    },
}

/// What a force-leave did here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForceLeft {
    /// The member's state before.
    pub previous: MemberState,
    /// Whether it was also removed from the table (kept as a tombstone).
    pub removed: bool,
}

impl Membership {
    /// Marks `id` left on this node's word (the record keeps the member's
    /// version; `suspected_by` names this node, which makes it a claim) and
    /// spreads it; with `prune`, also removes it now. A member believed up is
    /// refused unless `force`; forced, the claim reaches the member, which
    /// refutes it if it runs.
    ///
    /// # Errors
    /// Unknown member, this node, or an up member without `force`.
    pub fn force_leave(
        &mut self,
        id: &NodeId,
        prune: bool,
        force: bool,
        now: Now,
    ) -> Result<ForceLeft, ForceLeaveError> {
        if *id == self.local.id {
            return Err(ForceLeaveError::Local(id.clone()));
        }
        let Some(e) = self.table.get(id) else {
            return Err(ForceLeaveError::Unknown(id.clone()));
        };
        let previous = e.record.state;
        if previous.is_up() && !force {
            return Err(ForceLeaveError::Up {
                id: id.clone(),
                name: e.record.name.clone(),
                state: previous,
            });
        }
        if previous != MemberState::Left {
            let mut left = MemberRecord::clone(&e.record);
            left.state = MemberState::Left;
            left.suspected_by = Some(self.local.id.clone());
            self.counters.forced_leaves += 1;
            // This node's own verdict: merged as is; a running member hears it
            // and refutes.
            self.merge(left.into(), now);
            self.mark_urgent(id);
        }
        let removed = prune
            && self.table.remove(id, now).is_some_and(|event| {
                self.suspicions.remove(id);
                self.events.push(event);
                true
            });
        Ok(ForceLeft { previous, removed })
    }
}

/// Whether `r` is someone's force-leave claim rather than the member's own
/// (signed, under TLS) record of a graceful leave.
pub fn is_forced_leave(r: &MemberRecord) -> bool {
    r.state == MemberState::Left && r.suspected_by.is_some()
}
