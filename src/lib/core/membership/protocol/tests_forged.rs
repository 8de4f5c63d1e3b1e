//! Forged and unverified records: a forged claim is refuted past the counter
//! cap, and a node heard of second-hand is listed only once it answers.

use std::time::Instant;

use rand::{SeedableRng as _, rngs::StdRng};

use super::{
    tests::{at, id, node, rec, run_checks},
    *,
};
use crate::membership::{events::EventKind, record::MAX_COUNTER, table::Applied};

#[test]
fn a_forged_death_at_an_absurd_version_is_checked_and_the_victim_stays_listed() {
    let t0 = Instant::now();
    let mut a = node("a", t0);
    let mut v = node("v", t0);
    a.admit(v.local().clone(), at(t0, 0));
    v.admit(a.local().clone(), at(t0, 0));
    let mut forged = MemberRecord::clone(v.local());
    forged.state = MemberState::Dead;
    forged.version.counter = MAX_COUNTER;
    forged.address = "203.0.113.9:1".into();
    // a takes the claim at the version it knows, not at the forger's, and
    // holds it: v is alive here, and only v's word lists it otherwise.
    assert_eq!(a.apply(forged.clone(), at(t0, 1)), Applied::Held);
    assert_eq!(a.counters().claims_clamped, 1);
    assert_eq!(a.get(&id("v")).unwrap().state, MemberState::Alive);
    // v answers its check: the claim is dropped.
    assert_eq!(
        run_checks(&mut a, Some(&[MemberRecord::clone(v.local())]), at(t0, 2)),
        [id("v")]
    );
    let listed = a.get(&id("v")).unwrap().clone();
    assert_eq!(listed.state, MemberState::Alive);
    assert_eq!(listed.address, "v:1");
    assert_eq!(a.counters().claims_refuted, 1);
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
    // Replaying the forgery changes nothing now: stale.
    a.apply(forged, at(t0, 4));
    assert_eq!(a.get(&id("v")).unwrap().state, MemberState::Alive);
}

#[test]
fn a_forged_record_moving_the_victim_is_checked_at_its_known_address() {
    let t0 = Instant::now();
    let mut a = node("a", t0);
    let v = node("v", t0);
    a.admit(v.local().clone(), at(t0, 0));
    let mut forged = MemberRecord::clone(v.local());
    forged.version.counter = MAX_COUNTER;
    forged.address = "203.0.113.9:1".into();
    assert_eq!(a.apply(forged, at(t0, 1)), Applied::Held);
    assert_eq!(a.get(&id("v")).unwrap().address, "v:1");
    // The check goes to the address v is known at, where v answers as
    // itself, with its own record.
    let mut rng = StdRng::seed_from_u64(1);
    let out = a.handle(swim::Input::Changed, at(t0, 1), &mut rng);
    let probe = out
        .iter()
        .find_map(|x| match x {
            swim::Action::Ping {
                probe,
                target,
                want_record: true,
                ..
            } if target.address == "v:1" => Some(*probe),
            _ => None,
        })
        .expect("a check of v at v:1");
    a.apply_answer(&id("v"), vec![v.local().clone()], at(t0, 2));
    a.handle(
        swim::Input::Ping { probe, acked: true },
        at(t0, 2),
        &mut rng,
    );
    let listed = a.get(&id("v")).unwrap();
    assert_eq!(listed.address, "v:1");
    assert_eq!(listed.version, v.local().version);
    assert_eq!(a.counters().claims_refuted, 1);
}

#[test]
fn a_flood_of_forged_claims_in_every_state_costs_one_check_a_round_and_lists_nothing() {
    let t0 = Instant::now();
    let mut a = node("a", t0);
    let v = node("v", t0);
    a.admit(v.local().clone(), at(t0, 0));
    let round = u64::try_from(a.config().gossip_interval.as_millis()).unwrap();
    let mut rng = StdRng::seed_from_u64(2);
    let mut checks = 0;
    // One forgery every 10 ms for 20 rounds, cycling through every state but
    // alive, at the victim's version, one past it and the cap, and a record
    // draining it.
    for step in 0..(20 * round / 10) {
        let now = at(t0, 1 + step * 10);
        let mut forged = MemberRecord::clone(v.local());
        forged.state = [MemberState::Suspect, MemberState::Dead, MemberState::Left]
            [usize::try_from(step % 3).unwrap()];
        forged.suspected_by = (step % 2 == 0).then(|| id("x"));
        forged.version.counter = [1, 2, MAX_COUNTER][usize::try_from(step % 3).unwrap()];
        if step % 5 == 0 {
            forged.state = MemberState::Alive;
            forged.suspected_by = None;
            forged.maintenance = crate::membership::record::Maintenance::Disabled;
            forged.version.counter = 2;
        }
        a.apply(forged, now);
        for x in a.handle(swim::Input::Changed, now, &mut rng) {
            if let swim::Action::Ping {
                probe,
                target,
                want_record: true,
                ..
            } = x
            {
                checks += 1;
                a.apply_answer(&target.id, vec![v.local().clone()], now);
                a.handle(swim::Input::Ping { probe, acked: true }, now, &mut rng);
            }
        }
        let listed = a.get(&id("v")).unwrap();
        assert_eq!(listed.state, MemberState::Alive, "step {step}");
        assert_eq!(listed.maintenance, v.local().maintenance, "step {step}");
    }
    assert!((19..=21).contains(&checks), "{checks} checks in 20 rounds");
    assert_eq!(a.counters().claims_unanswered, 0);
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
    for round in 0..u64::from(crate::membership::candidates::MAX_MISSES) {
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
    let source = Some(crate::membership::candidates::Source::caller("10.0.0.7", 1));
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

#[test]
fn one_up_member_per_address_and_per_certified_name() {
    let t0 = Instant::now();
    let mut m = node("me", t0);
    m.admit(rec("real", 1, MemberState::Alive), at(t0, 0));
    // Made-up ids announced at the address a member holds: refused at once,
    // without a probe.
    for i in 0..100 {
        let mut fake = rec(&format!("fake{i}"), 1, MemberState::Alive);
        fake.address = "real:1".into();
        assert_eq!(m.apply(fake, at(t0, 1)), Applied::Stale);
    }
    assert_eq!(m.unverified_count(), 0);
    assert_eq!(m.counters().refused_address_taken, 100);
    // Two waiting at one free address: the first to answer is listed, the
    // second refused.
    for name in ["x", "y"] {
        let mut r = rec(name, 1, MemberState::Alive);
        r.address = "shared:1".into();
        m.apply(r, at(t0, 2));
    }
    m.candidate_answered(&id("x"), at(t0, 3));
    m.candidate_answered(&id("y"), at(t0, 3));
    assert!(m.get(&id("x")).is_some());
    assert!(m.get(&id("y")).is_none());
    // Once the holder is down, a new id at its address is listed (a node
    // restarted with a fresh data dir).
    m.probe_failed(&id("real"), false, at(t0, 4));
    m.tick(at(t0, 60_000));
    m.expired_suspect_silent(&id("real"), at(t0, 60_000));
    let mut successor = rec("successor", 1, MemberState::Alive);
    successor.address = "real:1".into();
    m.admit(successor, at(t0, 60_001));
    assert!(m.get(&id("successor")).is_some());
    // With certified names, one name is one member too.
    let mut certified = node("me", t0);
    certified.config.names_certified = true;
    certified.admit(rec("mallory", 1, MemberState::Alive), at(t0, 0));
    let mut fake = rec("m2", 1, MemberState::Alive);
    fake.name = "mallory".into();
    fake.address = "elsewhere:1".into();
    assert_eq!(certified.admit(fake.clone(), at(t0, 1)), Applied::Stale);
    assert_eq!(certified.counters().refused_name_taken, 1);
    // Plaintext names are not certified: two nodes may share one.
    let mut plain = node("me", t0);
    plain.admit(rec("mallory", 1, MemberState::Alive), at(t0, 0));
    assert_eq!(plain.admit(fake, at(t0, 1)), Applied::New);
}
