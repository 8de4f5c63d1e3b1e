//! Claims arriving when a partition heals: the far side's verdicts are old
//! news and must not kill members this node has good reason to think alive.

use std::time::Instant;

use super::{
    tests::{at, id, node, rec, run_checks},
    *,
};

/// Node `me` with member `b` alive, heard from at 0 ms.
fn with_b(t0: Instant) -> Membership {
    let mut m = node("me", t0);
    m.admit(rec("b", 1, MemberState::Alive), at(t0, 0));
    m
}

fn dead_claim() -> MemberRecord {
    rec("b", 1, MemberState::Dead)
}

#[test]
fn a_death_nobody_here_suspected_is_only_a_suspicion() {
    let t0 = Instant::now();
    let mut m = with_b(t0);
    m.apply(dead_claim(), at(t0, 5_000));
    // Held until b is asked; nobody reaches it, and the claim is weighed.
    assert_eq!(m.get(&id("b")).unwrap().state, MemberState::Alive);
    run_checks(&mut m, None, at(t0, 5_000));
    assert_eq!(m.get(&id("b")).unwrap().state, MemberState::Suspect);
    assert_eq!(m.counters().death_claims_doubted, 1);
    // The member refutes, and is alive again.
    m.apply(rec("b", 2, MemberState::Alive), at(t0, 5_100));
    assert_eq!(m.get(&id("b")).unwrap().state, MemberState::Alive);
    let kinds: Vec<_> = m.take_events().into_iter().map(|e| e.kind).collect();
    assert!(!kinds.contains(&EventKind::Dead), "{kinds:?}");
}

#[test]
fn a_death_confirming_an_old_silent_suspicion_is_taken() {
    let t0 = Instant::now();
    let mut m = with_b(t0);
    m.probe_failed(&id("b"), false, at(t0, 1_000));
    // One round later, nothing heard from b since: another node's verdict stands.
    let round = u64::try_from(m.config().gossip_interval.as_millis()).unwrap();
    m.apply(dead_claim(), at(t0, 1_000 + round));
    assert_eq!(m.get(&id("b")).unwrap().state, MemberState::Dead);
    assert_eq!(m.counters().death_claims_doubted, 0);
}

#[test]
fn a_death_right_after_a_stale_suspicion_is_still_doubted() {
    // The far side sends "suspect" then "dead" in one exchange: the suspicion
    // it started here is too young to back the verdict.
    let t0 = Instant::now();
    let mut m = with_b(t0);
    let mut suspect = rec("b", 1, MemberState::Suspect);
    suspect.suspected_by = Some(id("far"));
    m.apply(suspect, at(t0, 5_000));
    m.apply(dead_claim(), at(t0, 5_000));
    run_checks(&mut m, None, at(t0, 5_000));
    assert_eq!(m.get(&id("b")).unwrap().state, MemberState::Suspect);
}

#[test]
fn a_death_claim_about_a_member_that_answers_is_dropped() {
    let t0 = Instant::now();
    let mut m = with_b(t0);
    m.apply(dead_claim(), at(t0, 5_000));
    run_checks(&mut m, Some(&[]), at(t0, 5_000));
    assert_eq!(m.get(&id("b")).unwrap().state, MemberState::Alive);
    assert_eq!(m.counters().claims_refuted, 1);
    assert_eq!(m.claims_waiting(), 0);
}

#[test]
fn a_sign_of_life_since_the_suspicion_began_overrules_the_claim() {
    let t0 = Instant::now();
    let mut m = with_b(t0);
    m.probe_failed(&id("b"), false, at(t0, 1_000));
    // b answered a later probe (its refutation is on the way).
    m.probe_succeeded(&id("b"), at(t0, 1_500));
    m.apply(dead_claim(), at(t0, 3_000));
    assert_eq!(m.get(&id("b")).unwrap().state, MemberState::Suspect);
}
