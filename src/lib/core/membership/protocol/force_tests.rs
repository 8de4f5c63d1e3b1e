//! `gsp force-leave` in the pure core: a dead member marked left everywhere,
//! refused for an up one, refuted by a member that runs.

use std::time::Instant;

use super::{
    force::{ForceLeaveError, is_forced_leave},
    tests::{at, id, node, rec, run_checks},
    *,
};
use crate::membership::events::EventKind;

/// `me` with `b` admitted and then dead (suspected, expired, silent).
fn with_dead_b(t0: Instant) -> Membership {
    let mut m = node("me", t0);
    m.admit(rec("b", 1, MemberState::Alive), at(t0, 0));
    m.probe_failed(&id("b"), false, at(t0, 0));
    m.tick(at(t0, 60_000));
    m.expired_suspect_silent(&id("b"), at(t0, 60_000));
    assert_eq!(m.get(&id("b")).unwrap().state, MemberState::Dead);
    m.take_events();
    m
}

#[test]
fn a_dead_member_is_marked_left_and_the_claim_spreads_as_left() {
    let t0 = Instant::now();
    let mut m = with_dead_b(t0);
    let done = m
        .force_leave(&id("b"), false, false, at(t0, 61_000))
        .unwrap();
    assert_eq!(done.previous, MemberState::Dead);
    assert!(!done.removed);
    let b = m.get(&id("b")).unwrap().clone();
    assert_eq!(b.state, MemberState::Left);
    assert_eq!(
        b.version,
        rec("b", 1, MemberState::Alive).version,
        "a claim keeps the version"
    );
    assert!(is_forced_leave(&b));
    let kinds: Vec<_> = m.take_events().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::Left]);
    assert_eq!(m.counters().forced_leaves, 1);
    // It is no longer a reconnect target.
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
    assert!(m.random_dead(&mut rng).is_none());

    // A peer that holds b dead takes the claim as left.
    let mut peer = with_dead_b(t0);
    assert!(matches!(
        peer.apply(b, at(t0, 61_000)),
        crate::membership::table::Applied::Changed { .. }
    ));
    assert_eq!(peer.get(&id("b")).unwrap().state, MemberState::Left);
    // Again: nothing changes.
    assert!(
        m.force_leave(&id("b"), false, false, at(t0, 62_000))
            .is_ok()
    );
    assert_eq!(m.counters().forced_leaves, 1);
}

#[test]
fn prune_removes_now_and_stale_gossip_does_not_bring_it_back() {
    let t0 = Instant::now();
    let mut m = with_dead_b(t0);
    let done = m
        .force_leave(&id("b"), true, false, at(t0, 61_000))
        .unwrap();
    assert!(done.removed);
    assert!(m.get(&id("b")).is_none());
    let kinds: Vec<_> = m.take_events().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::Left, EventKind::Removed]);
    // The old alive record, heard again, is stale against the tombstone.
    m.apply(rec("b", 1, MemberState::Alive), at(t0, 62_000));
    assert!(m.get(&id("b")).is_none());
    // A restarted b (newer version) is welcome back once it answers.
    m.admit(rec("b", 2, MemberState::Alive), at(t0, 63_000));
    assert_eq!(m.get(&id("b")).unwrap().state, MemberState::Alive);
}

#[test]
fn an_up_member_is_refused_unless_forced_and_then_refutes() {
    let t0 = Instant::now();
    let mut m = node("me", t0);
    m.admit(rec("b", 1, MemberState::Alive), at(t0, 0));
    assert_eq!(
        m.force_leave(&id("b"), false, false, at(t0, 10)),
        Err(ForceLeaveError::Up {
            id: id("b"),
            name: "b".to_owned(),
            state: MemberState::Alive
        })
    );
    assert_eq!(
        m.force_leave(&id("me"), false, true, at(t0, 10)),
        Err(ForceLeaveError::Local(id("me")))
    );
    assert_eq!(
        m.force_leave(&id("zz"), false, true, at(t0, 10)),
        Err(ForceLeaveError::Unknown(id("zz")))
    );
    m.force_leave(&id("b"), false, true, at(t0, 10)).unwrap();
    let claim = m.get(&id("b")).unwrap().clone();

    // b itself hears the claim and refutes with a newer alive version.
    let mut b = node("b", t0);
    b.apply(claim.clone(), at(t0, 20));
    assert_eq!(b.local().state, MemberState::Alive);
    assert!(b.local().version > claim.version);
    // A third node that sees b up asks b first: b answers, and the claim is
    // dropped. Had nobody reached b, it would be weighed as a death claim:
    // suspect, never left on someone's word.
    let mut c = node("c", t0);
    c.admit(rec("b", 1, MemberState::Alive), at(t0, 0));
    c.apply(claim.clone(), at(t0, 30));
    run_checks(&mut c, Some(&[]), at(t0, 30));
    assert_eq!(c.get(&id("b")).unwrap().state, MemberState::Alive);
    let mut c2 = node("c2", t0);
    c2.admit(rec("b", 1, MemberState::Alive), at(t0, 0));
    c2.apply(claim, at(t0, 30));
    run_checks(&mut c2, None, at(t0, 30));
    assert_eq!(c2.get(&id("b")).unwrap().state, MemberState::Suspect);
    // The refutation wins everywhere.
    let refuted = MemberRecord::clone(b.local());
    m.apply(refuted.clone(), at(t0, 40));
    c2.apply(refuted, at(t0, 40));
    assert_eq!(m.get(&id("b")).unwrap().state, MemberState::Alive);
    assert_eq!(c2.get(&id("b")).unwrap().state, MemberState::Alive);
}
