//! Forged and unverified records: a forged claim is refuted past the counter
//! cap, and a node heard of second-hand is listed only once it answers.

use std::time::Instant;

use rand::{SeedableRng as _, rngs::StdRng};

use super::{
    tests::{at, id, node, rec},
    *,
};
use crate::core::membership::{events::EventKind, record::MAX_COUNTER, table::Applied};

#[test]
fn a_forged_death_at_an_absurd_version_is_refuted_and_the_victim_stays_listed() {
    let t0 = Instant::now();
    let mut a = node("a", t0);
    let mut v = node("v", t0);
    a.admit(v.local().clone(), at(t0, 0));
    v.admit(a.local().clone(), at(t0, 0));
    let mut forged = MemberRecord::clone(v.local());
    forged.state = MemberState::Dead;
    forged.version.counter = MAX_COUNTER;
    forged.address = "203.0.113.9:1".into();
    a.apply(forged.clone(), at(t0, 1));
    // a takes the claim at the version it knows, not at the forger's, and
    // only as a suspicion: a had no doubts of its own about v.
    let listed = a.get(&id("v")).unwrap().clone();
    assert_eq!(listed.state, MemberState::Suspect);
    assert_eq!(a.counters().death_claims_doubted, 1);
    assert_eq!(listed.version, v.local().version);
    assert_eq!(listed.address, "v:1");
    assert_eq!(a.counters().claims_clamped, 1);
    // v hears the claim itself; its answer is newer than the claim anyway.
    v.apply(forged.clone(), at(t0, 2));
    assert!(v.local().version > forged.version);
    assert_eq!(
        v.local().version.counter,
        1,
        "a new incarnation past the cap"
    );
    a.apply_all(v.piggyback(Some(&id("a"))), at(t0, 3));
    assert_eq!(a.get(&id("v")).unwrap().state, MemberState::Alive);
    // Replaying the forgery changes nothing now.
    a.apply(forged, at(t0, 4));
    assert_eq!(a.get(&id("v")).unwrap().state, MemberState::Alive);
}

#[test]
fn a_forged_record_of_the_victim_itself_is_refuted_past_the_counter_cap() {
    let t0 = Instant::now();
    let mut a = node("a", t0);
    let mut v = node("v", t0);
    a.admit(v.local().clone(), at(t0, 0));
    let mut forged = MemberRecord::clone(v.local());
    forged.version.counter = MAX_COUNTER;
    forged.address = "203.0.113.9:1".into();
    a.apply(forged.clone(), at(t0, 1));
    assert_eq!(a.get(&id("v")).unwrap().address, "203.0.113.9:1");
    v.apply(forged, at(t0, 2));
    a.apply_all(v.piggyback(Some(&id("a"))), at(t0, 3));
    assert_eq!(a.get(&id("v")).unwrap().address, "v:1");
    assert_eq!(a.get(&id("v")).unwrap().state, MemberState::Alive);
}

#[test]
fn a_node_heard_of_second_hand_is_listed_only_after_it_answers() {
    let t0 = Instant::now();
    let mut m = node("me", t0);
    assert_eq!(
        m.apply(rec("new", 1, MemberState::Alive), at(t0, 0)),
        Applied::Unverified
    );
    assert!(m.get(&id("new")).is_none());
    assert!(m.next_probe(&mut StdRng::seed_from_u64(1)).is_none());
    let waiting = m.take_unverified(8, at(t0, 0));
    assert_eq!(waiting[0].address, "new:1");
    assert!(
        m.take_unverified(8, at(t0, 0)).is_empty(),
        "handed out once"
    );
    m.candidate_answered(&id("new"), at(t0, 1));
    assert_eq!(m.get(&id("new")).unwrap().state, MemberState::Alive);
    assert_eq!(m.take_events()[0].kind, EventKind::Joined);
    assert_eq!(m.counters().candidates_verified, 1);
}

#[test]
fn made_up_nodes_are_never_listed_and_cannot_crowd_the_table() {
    let t0 = Instant::now();
    let mut m = node("me", t0);
    for i in 0..4000 {
        m.apply(rec(&format!("fake{i}"), 1, MemberState::Alive), at(t0, 0));
        m.apply(rec(&format!("ghost{i}"), 1, MemberState::Dead), at(t0, 0));
    }
    assert_eq!(m.len(), 1, "nothing listed on a peer's word");
    let cap = m.config().max_candidates;
    assert_eq!(m.unverified_count(), cap);
    assert_eq!(m.counters().candidates_dropped, 4000 - cap as u64);
    assert_eq!(m.counters().unknown_down_ignored, 4000);
    // Each gets a few probes, a round apart, then is forgotten.
    for round in 0..u64::from(crate::core::membership::candidates::MAX_MISSES) {
        let now = at(t0, round * 1000);
        let probed = m.take_unverified(cap, now);
        assert_eq!(probed.len(), cap, "round {round}");
        for t in probed {
            m.candidate_silent(&t.id, now);
        }
    }
    assert_eq!(m.unverified_count(), 0);
    assert_eq!(m.len(), 1);
    assert_eq!(m.counters().candidates_refused, cap as u64);
    // A real node offered now finds room again.
    m.apply(rec("real", 1, MemberState::Alive), at(t0, 1));
    m.candidate_answered(&id("real"), at(t0, 2));
    assert_eq!(m.len(), 2);
    assert_eq!(
        m.local_health(),
        0,
        "failed verifications are not this node's fault"
    );
}

#[test]
fn a_node_waiting_too_long_for_verification_is_forgotten() {
    let t0 = Instant::now();
    let mut m = node("me", t0);
    m.apply(rec("slow", 1, MemberState::Alive), at(t0, 0));
    m.take_unverified(8, at(t0, 0));
    let ttl = u64::try_from(m.config().candidate_ttl.as_millis()).unwrap();
    m.tick(at(t0, ttl));
    assert_eq!(m.unverified_count(), 0);
    // A late answer does not list it.
    m.candidate_answered(&id("slow"), at(t0, ttl + 1));
    assert!(m.get(&id("slow")).is_none());
}

#[test]
fn under_signed_records_an_unknown_node_is_listed_at_once_and_spread() {
    let t0 = Instant::now();
    let source = Some(crate::core::membership::candidates::Source::caller(
        "10.0.0.7", 1,
    ));
    // Without signatures: waits for its own answer or a second member host.
    let mut plain = node("a", t0);
    let applied = plain.apply_from(rec("n", 1, MemberState::Alive).into(), source, at(t0, 0));
    assert_eq!(applied, Applied::Unverified);
    assert!(plain.get(&id("n")).is_none());
    assert_eq!(plain.unverified_count(), 1);
    // Signed (the runtime checked the node's own signature): listed now, no
    // probe owed, and passed on as news.
    let mut signed = node("a", t0);
    signed.config.records_signed = true;
    let applied = signed.apply_from(rec("n", 1, MemberState::Alive).into(), source, at(t0, 0));
    assert_eq!(applied, Applied::New);
    assert_eq!(signed.get(&id("n")).unwrap().state, MemberState::Alive);
    assert_eq!(signed.unverified_count(), 0);
    assert_eq!(signed.counters().admitted_signed, 1);
    assert!(signed.piggyback(None).iter().any(|r| r.id == id("n")));
    // A claim that an unknown node is down is still ignored.
    let applied = signed.apply_from(rec("m", 1, MemberState::Dead).into(), source, at(t0, 1));
    assert_eq!(applied, Applied::Stale);
    assert!(signed.get(&id("m")).is_none());
}
