//! What a record about a member means when it comes from someone other than the
//! member: a node's own records (alive, left) carry what it publishes about
//! itself; a record saying it is suspect or dead is a claim by another node, and a
//! claim can be about the member only as this node knows it.

use super::record::{MemberRecord, MemberState, SharedRecord};

/// `claim` about the member `known` describes, as it may be merged.
///
/// A suspect or dead claim never raises the member's version, and never changes
/// what the member says about itself (address, name, resources, labels,
/// maintenance): it is taken as "the member as known here is down", at the known
/// version, with the claim's state and suspecter. A claimer that truly holds a
/// newer version loses nothing: the member's own newer record reaches this node
/// too, and anti-entropy then carries the claim at that version. A liar gains
/// nothing: a claim at an absurd version lands at the real one, where the
/// member's refutation wins.
///
/// Returns the record to merge and whether the claim's version was lowered.
pub(super) fn at_known_version(known: &MemberRecord, claim: SharedRecord) -> (SharedRecord, bool) {
    if !matches!(claim.state, MemberState::Suspect | MemberState::Dead)
        && !super::protocol::force::is_forced_leave(&claim)
    {
        return (claim, false);
    }
    if claim.version < known.version {
        // Stale whatever it says; the table refuses it.
        return (claim, false);
    }
    let clamped = claim.version > known.version;
    let mut r = known.clone();
    r.state = claim.state;
    r.suspected_by.clone_from(&claim.suspected_by);
    (SharedRecord::new(r), clamped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::membership::record::{MAX_COUNTER, testing::record};

    #[test]
    fn a_down_claim_at_an_absurd_version_lands_at_the_known_one() {
        let known = record("v", 5, MemberState::Alive);
        let mut forged = record("v", MAX_COUNTER, MemberState::Dead);
        forged.address = "203.0.113.9:1".into();
        let (r, clamped) = at_known_version(&known, forged.into());
        assert!(clamped);
        assert_eq!(r.version, known.version);
        assert_eq!(r.state, MemberState::Dead);
        assert_eq!(r.address, known.address, "a claim cannot move the member");
    }

    #[test]
    fn the_members_own_records_pass_unchanged() {
        let known = record("v", 5, MemberState::Alive);
        for state in [MemberState::Alive, MemberState::Left] {
            let own = record("v", 9, state);
            assert_eq!(
                at_known_version(&known, own.clone().into()),
                (own.into(), false)
            );
        }
    }
}
