//! What a record about a member means when it comes from someone other than the
//! member. Only the member raises its own version: a record saying it is
//! suspect, dead or gone is a claim, taken at the version known here. And only
//! the member's own word lists an alive member differently: a claim that it is
//! down, or a record that changes its maintenance state or address, waits until
//! the member is asked (see `protocol/checks.rs`).

use super::record::{MemberRecord, MemberState, SharedRecord};

/// `claim` about the member `known` describes, as it may be merged.
///
/// A record in any state but alive (suspect, dead, left, or a state added
/// later) never raises the member's version and never changes what the member
/// says about itself (address, name, resources, labels, maintenance): it is
/// taken as "the member as known here is down", at the known version, with the
/// claim's state and suspecter. A member announces its own leave at its
/// current version (left outranks alive at one version), so its own leave
/// loses nothing. A claimer that truly holds a newer version loses nothing
/// either: the member's own newer record reaches this node too. A liar gains
/// nothing: a claim at an absurd version lands at the real one.
///
/// Returns the record to merge and whether the claim's version was lowered.
pub(super) fn at_known_version(known: &MemberRecord, claim: SharedRecord) -> (SharedRecord, bool) {
    if claim.state == MemberState::Alive {
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

/// Whether `record` (already at the known version if it is a claim) would list
/// the alive member `known` differently in a way only the member may: down in
/// any state, in another maintenance state, or at another address. Such a
/// record is not merged on a peer's word; the member is asked first.
pub(super) fn needs_members_word(known: &MemberRecord, record: &MemberRecord) -> bool {
    known.state == MemberState::Alive
        && record.supersedes(known)
        && (record.state != MemberState::Alive
            || record.maintenance != known.maintenance
            || record.address != known.address)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::membership::record::{MAX_COUNTER, Maintenance, Version, testing::record};

    const STATES: [MemberState; 4] = [
        MemberState::Alive,
        MemberState::Suspect,
        MemberState::Dead,
        MemberState::Left,
    ];

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
    fn alive_records_pass_unchanged() {
        let known = record("v", 5, MemberState::Alive);
        let own = record("v", 9, MemberState::Alive);
        assert_eq!(
            at_known_version(&known, own.clone().into()),
            (own.into(), false)
        );
    }

    #[test]
    fn what_only_the_member_may_change_needs_its_word() {
        let known = record("v", 5, MemberState::Alive);
        let mut drained = record("v", 6, MemberState::Alive);
        drained.maintenance = Maintenance::Disabled;
        assert!(needs_members_word(&known, &drained));
        let mut moved = record("v", 6, MemberState::Alive);
        moved.address = "elsewhere:1".into();
        assert!(needs_members_word(&known, &moved));
        let mut busier = record("v", 6, MemberState::Alive);
        busier.labels.insert("rack".into(), "7".into());
        assert!(
            !needs_members_word(&known, &busier),
            "an update of its resources or labels"
        );
        // A member already suspect or down here is weighed as before.
        let suspect = record("v", 5, MemberState::Suspect);
        let dead = record("v", 5, MemberState::Dead);
        assert!(!needs_members_word(&suspect, &dead));
    }

    fn state() -> impl Strategy<Value = MemberState> {
        prop::sample::select(STATES.to_vec())
    }

    proptest! {
        /// One rule for every state but alive: a record by anyone but the
        /// member never raises the member's version, never moves it, and
        /// never lists an alive member down without its word.
        #[test]
        fn claims_never_raise_a_members_version(
            known_state in state(),
            claim_state in state(),
            known_counter in 1u64..1000,
            claim_inc in 0u64..=MAX_COUNTER,
            incarnation_step in 0u64..3,
            suspecter in prop::option::of(Just("x")),
        ) {
            let mut known = record("v", known_counter, known_state);
            known.version = Version { incarnation: 5, counter: known_counter };
            let mut claim = record("v", 0, claim_state);
            claim.version = Version {
                incarnation: 5 + incarnation_step,
                counter: known_counter.saturating_add(claim_inc).min(MAX_COUNTER),
            };
            claim.address = "203.0.113.9:1".into();
            claim.suspected_by = suspecter.map(|s| crate::ids::NodeId::parse(s).unwrap());
            let (r, _) = at_known_version(&known, claim.clone().into());
            if claim_state != MemberState::Alive && claim.version >= known.version {
                prop_assert_eq!(r.version, known.version);
                prop_assert_eq!(&r.address, &known.address);
                prop_assert_eq!(r.state, claim_state);
            }
            if known_state == MemberState::Alive && claim_state != MemberState::Alive
                && r.supersedes(&known)
            {
                prop_assert!(needs_members_word(&known, &r));
            }
        }
    }
}
