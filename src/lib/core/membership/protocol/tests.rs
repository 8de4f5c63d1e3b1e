//! Unit and property tests of the membership protocol state.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use proptest::prelude::*;
use rand::{SeedableRng as _, rngs::StdRng};

use super::*;
use crate::membership::{events::EventKind, record::Version, table::Applied};

pub(super) fn id(s: &str) -> NodeId {
    NodeId::parse(s).unwrap()
}

pub(super) fn at(t0: Instant, ms: u64) -> Now {
    Now {
        instant: t0 + Duration::from_millis(ms),
        unix_ns: i64::try_from(ms).unwrap() * 1_000_000,
    }
}

pub(super) fn rec(name: &str, counter: u64, state: MemberState) -> MemberRecord {
    crate::membership::record::testing::record(name, counter, state)
}

/// Runs the checks of the claims `m` holds, now: each member checked answers
/// (`answers`; its own record, if given, comes with the answer) or nobody
/// reaches it. Returns the members checked.
pub(super) fn run_checks(
    m: &mut Membership,
    answers: Option<&[MemberRecord]>,
    now: Now,
) -> Vec<NodeId> {
    let mut rng = StdRng::seed_from_u64(3);
    let out = m.handle(swim::Input::Changed, now, &mut rng);
    let mut checked = Vec::new();
    for a in out {
        let swim::Action::Ping {
            probe,
            target,
            want_record: true,
            ..
        } = a
        else {
            continue;
        };
        if let Some(own) = answers {
            let own: Vec<SharedRecord> = own
                .iter()
                .filter(|r| r.id == target.id)
                .map(|r| SharedRecord::new(r.clone()))
                .collect();
            m.apply_answer(&target.id, own, now);
            m.handle(swim::Input::Ping { probe, acked: true }, now, &mut rng);
        } else {
            m.handle(
                swim::Input::Ping {
                    probe,
                    acked: false,
                },
                now,
                &mut rng,
            );
            m.handle(
                swim::Input::Timer(swim::Timer::ProbeEnd(probe)),
                now,
                &mut rng,
            );
        }
        checked.push(target.id);
    }
    checked
}

pub(super) fn node(name: &str, t0: Instant) -> Membership {
    Membership::new(
        MembershipConfig::for_test(),
        rec(name, 1, MemberState::Alive),
        at(t0, 0),
    )
}

#[test]
fn a_suspicion_expires_into_death_and_the_node_is_removed_after_the_ttl() {
    let t0 = Instant::now();
    let mut m = node("me", t0);
    m.admit(rec("b", 1, MemberState::Alive), at(t0, 0));
    m.probe_failed(&id("b"), false, at(t0, 0));
    assert_eq!(m.get(&id("b")).unwrap().state, MemberState::Suspect);
    m.tick(at(t0, 100));
    assert_eq!(m.get(&id("b")).unwrap().state, MemberState::Suspect);
    // Unconfirmed, the suspicion runs its longest course.
    let (_, max) = m.config().suspicion_bounds(2);
    let due = m.tick(at(t0, u64::try_from(max.as_millis()).unwrap()));
    assert_eq!(due.len(), 1);
    // Still suspect until the last probe comes back empty.
    assert_eq!(m.get(&id("b")).unwrap().state, MemberState::Suspect);
    m.expired_suspect_silent(&id("b"), at(t0, 2000));
    assert_eq!(m.get(&id("b")).unwrap().state, MemberState::Dead);
    let ttl = u64::try_from(m.config().node_ttl.as_millis()).unwrap();
    m.tick(at(t0, ttl + 10_000));
    assert!(m.get(&id("b")).is_none());
    let kinds: Vec<_> = m.take_events().into_iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Joined,
            EventKind::Suspect,
            EventKind::Dead,
            EventKind::Removed
        ]
    );
    assert_eq!(m.counters().suspicions_expired, 1);
}

#[test]
fn an_expired_suspect_that_still_answers_is_suspected_again_not_killed() {
    let t0 = Instant::now();
    let mut m = node("me", t0);
    m.admit(rec("b", 1, MemberState::Alive), at(t0, 0));
    m.probe_failed(&id("b"), false, at(t0, 0));
    assert_eq!(m.tick(at(t0, 60_000)).len(), 1);
    m.expired_suspect_answered(&id("b"), at(t0, 60_000));
    // A silent report that arrives after the answer is ignored: a new suspicion runs.
    m.expired_suspect_silent(&id("b"), at(t0, 60_001));
    assert_eq!(m.get(&id("b")).unwrap().state, MemberState::Suspect);
    assert!(m.tick(at(t0, 60_010)).is_empty());
}

#[test]
fn confirmations_shorten_the_suspicion() {
    let t0 = Instant::now();
    let mut m = node("me", t0);
    for n in ["b", "c", "d", "e", "f"] {
        m.admit(rec(n, 1, MemberState::Alive), at(t0, 0));
    }
    m.probe_failed(&id("b"), false, at(t0, 0));
    for by in ["c", "d", "e"] {
        let mut s = rec("b", 1, MemberState::Suspect);
        s.suspected_by = Some(id(by));
        m.apply(s, at(t0, 1));
    }
    let (min, _) = m.config().suspicion_bounds(6);
    assert_eq!(
        m.tick(at(t0, u64::try_from(min.as_millis()).unwrap()))
            .len(),
        1
    );
    m.expired_suspect_silent(&id("b"), at(t0, 2000));
    assert_eq!(m.get(&id("b")).unwrap().state, MemberState::Dead);
}

#[test]
fn a_suspected_node_refutes_and_is_alive_again_everywhere() {
    let t0 = Instant::now();
    let mut a = node("a", t0);
    let mut b = node("b", t0);
    a.admit(b.local().clone(), at(t0, 0));
    b.admit(a.local().clone(), at(t0, 0));
    a.probe_failed(&id("b"), false, at(t0, 0));
    // The buddy system: a's next message to b carries b's suspicion.
    let to_b = a.piggyback(Some(&id("b")));
    assert_eq!(to_b[0].state, MemberState::Suspect);
    let before = b.local().version;
    b.apply_all(to_b, at(t0, 10));
    assert!(b.local().version > before, "b must publish a newer version");
    assert_eq!(b.local().state, MemberState::Alive);
    assert_eq!(b.counters().refutations, 1);
    assert_eq!(b.local_health(), 1);
    a.apply_all(b.piggyback(Some(&id("a"))), at(t0, 20));
    assert_eq!(a.get(&id("b")).unwrap().state, MemberState::Alive);
    assert!(a.tick(at(t0, 600_000)).is_empty());
    assert_eq!(a.get(&id("b")).unwrap().state, MemberState::Alive);
    assert!(
        a.take_events()
            .iter()
            .any(|e| e.kind == EventKind::AliveAgain)
    );
}

#[test]
fn every_member_is_probed_once_per_pass() {
    let t0 = Instant::now();
    let mut m = node("me", t0);
    let names: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
    for n in &names {
        m.admit(rec(n, 1, MemberState::Alive), at(t0, 0));
    }
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..3 {
        let pass: HashSet<String> = (0..10)
            .map(|_| m.next_probe(&mut rng).unwrap().id.to_string())
            .collect();
        assert_eq!(pass.len(), 10);
    }
}

#[test]
fn a_node_that_joins_mid_pass_is_probed_within_that_pass() {
    let t0 = Instant::now();
    let mut m = node("me", t0);
    for i in 0..10 {
        m.admit(rec(&format!("n{i}"), 1, MemberState::Alive), at(t0, 0));
    }
    let mut rng = StdRng::seed_from_u64(3);
    m.next_probe(&mut rng).unwrap();
    m.admit(rec("late", 1, MemberState::Alive), at(t0, 1));
    let rest: Vec<String> = (0..10)
        .map(|_| m.next_probe(&mut rng).unwrap().id.to_string())
        .collect();
    assert!(rest.contains(&"late".to_owned()), "{rest:?}");
}

#[test]
fn leaving_publishes_a_left_record_at_the_current_version() {
    let t0 = Instant::now();
    let mut a = node("a", t0);
    let mut b = node("b", t0);
    let mut c = node("c", t0);
    b.admit(a.local().clone(), at(t0, 0));
    c.admit(a.local().clone(), at(t0, 0));
    let before = a.local().version;
    let left = a.leave(at(t0, 5));
    assert_eq!(left.state, MemberState::Left);
    assert_eq!(left.version, before, "left outranks alive at one version");
    // A record saying a left may come from anyone: held until a is asked.
    assert_eq!(b.apply(left.clone(), at(t0, 6)), Applied::Held);
    assert_eq!(b.get(&id("a")).unwrap().state, MemberState::Alive);
    // a is gone by the time b asks: listed left (never suspect first).
    assert_eq!(run_checks(&mut b, None, at(t0, 6)), [id("a")]);
    assert_eq!(b.get(&id("a")).unwrap().state, MemberState::Left);
    // c reaches a while it still answers: a's own word, first-hand.
    c.apply(left.clone(), at(t0, 6));
    run_checks(&mut c, Some(&[left]), at(t0, 6));
    assert_eq!(c.get(&id("a")).unwrap().state, MemberState::Left);
    let kinds: Vec<_> = b.take_events().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::Joined, EventKind::Left]);
    // Stale alive gossip about a does not bring it back.
    b.apply(rec("a", 1, MemberState::Alive), at(t0, 7));
    assert_eq!(b.get(&id("a")).unwrap().state, MemberState::Left);
    // Nor does a hearing its own leave make it refute.
    let echoed = MemberRecord::clone(a.local());
    a.apply(echoed, at(t0, 8));
    assert_eq!(a.local().state, MemberState::Left);
}

#[test]
fn anti_entropy_by_digests_converges_two_tables() {
    let t0 = Instant::now();
    let mut a = node("a", t0);
    let mut b = node("b", t0);
    for i in 0..20 {
        a.admit(rec(&format!("x{i}"), 1, MemberState::Alive), at(t0, 0));
        b.admit(
            rec(
                &format!("x{i}"),
                if i % 3 == 0 { 2 } else { 1 },
                MemberState::Alive,
            ),
            at(t0, 0),
        );
    }
    b.admit(rec("only-b", 1, MemberState::Alive), at(t0, 0));
    assert_ne!(a.table_hash(), b.table_hash());
    // a -> b: b's digests; a sends what b lacks and asks for what it lacks.
    let (to_b, want) = a.diff(&b.digests());
    b.apply_all(to_b, at(t0, 1));
    a.apply_all(b.records_for(&want), at(t0, 1));
    // Nodes never heard of (b itself, only-b; a for b) wait until they answer
    // a probe of their own.
    assert_eq!((a.len(), a.unverified_count()), (21, 2));
    assert_eq!((b.len(), b.unverified_count()), (22, 1));
    for m in [&mut a, &mut b] {
        for t in m.take_unverified(8, at(t0, 2)) {
            m.candidate_answered(&t.id, at(t0, 2));
        }
    }
    assert_eq!(a.table_hash(), b.table_hash());
    assert_eq!(a.len(), 23);
}

fn arb_record() -> impl Strategy<Value = MemberRecord> {
    (0u8..4, 1u64..3, 0u64..4, 0u8..4, 0u8..3).prop_map(|(n, inc, counter, state, by)| {
        let mut r = rec(&format!("n{n}"), counter, MemberState::Alive);
        r.version.incarnation = inc;
        r.state = [
            MemberState::Alive,
            MemberState::Suspect,
            MemberState::Dead,
            MemberState::Left,
        ][usize::from(state)];
        if r.state == MemberState::Suspect {
            r.suspected_by = Some(id(&format!("s{by}")));
        }
        r
    })
}

/// Node n0 that has heard first-hand from n1..n3 (at the lowest version), so
/// records about them merge instead of waiting for verification.
fn known_peers(t0: Instant) -> Membership {
    let mut m = node("n0", t0);
    for n in 1..4 {
        let mut r = rec(&format!("n{n}"), 0, MemberState::Alive);
        r.version.incarnation = 0;
        m.admit(r, at(t0, 0));
        m.get(&id(&format!("n{n}"))).unwrap();
    }
    m
}

fn summary(m: &Membership) -> HashMap<String, (Version, MemberState)> {
    m.all_records()
        .into_iter()
        .filter(|r| r.id != m.local().id)
        .map(|r| (r.id.to_string(), (r.version, r.state)))
        .collect()
}

proptest! {
    /// Any order of the same records gives the same table once they have all
    /// been seen twice (as anti-entropy repeats them: a claim can land only at a
    /// version known when it arrives), and applying them again changes nothing.
    #[test]
    fn merge_is_commutative_and_idempotent(records in proptest::collection::vec(arb_record(), 0..40), seed in any::<u64>()) {
        let t0 = Instant::now();
        let mut shuffled = records.clone();
        rand::seq::SliceRandom::shuffle(shuffled.as_mut_slice(), &mut StdRng::seed_from_u64(seed));
        let mut a = known_peers(t0);
        let mut b = known_peers(t0);
        for _ in 0..2 {
            a.apply_all(records.clone(), at(t0, 0));
            b.apply_all(shuffled.clone(), at(t0, 0));
        }
        prop_assert_eq!(summary(&a), summary(&b));
        let before = summary(&a);
        a.apply_all(records, at(t0, 0));
        prop_assert_eq!(summary(&a), before);
    }

    /// Known versions only grow, whatever arrives; the local version grows with
    /// every refutation.
    #[test]
    fn versions_only_grow(records in proptest::collection::vec(arb_record(), 0..60)) {
        let t0 = Instant::now();
        let mut m = known_peers(t0);
        let mut seen: HashMap<String, Version> = HashMap::new();
        let mut local = m.local().version;
        for r in records {
            m.apply(r, at(t0, 0));
            prop_assert!(m.local().version >= local);
            local = m.local().version;
            prop_assert_eq!(m.local().state, MemberState::Alive);
            for r in m.all_records() {
                let prev = seen.insert(r.id.to_string(), r.version);
                prop_assert!(prev.is_none_or(|p| p <= r.version));
            }
        }
    }
}

#[test]
fn a_backlog_of_updates_is_carried_in_bigger_messages() {
    let t0 = Instant::now();
    let mut m = node("me", t0);
    m.config.max_members = 1000;
    m.config.max_queued_updates = 1000;
    m.queue = super::super::queue::UpdateQueue::new(1000);
    // A few queued: the usual 8 a message.
    for i in 0..6 {
        m.admit(rec(&format!("n{i:03}"), 1, MemberState::Alive), at(t0, 0));
    }
    assert_eq!(m.piggyback(None).len(), 6);
    for i in 6..100 {
        m.admit(rec(&format!("n{i:03}"), 1, MemberState::Alive), at(t0, 0));
    }
    // 100 waiting: a quarter of them.
    assert_eq!(m.piggyback(None).len(), 25);
    for i in 100..600 {
        m.admit(rec(&format!("n{i:03}"), 1, MemberState::Alive), at(t0, 0));
    }
    // Hundreds: at most 8 times the usual.
    assert_eq!(m.piggyback(None).len(), 8 * m.config.max_piggyback);
    m.queue = super::super::queue::UpdateQueue::new(1000);
    for i in 0..20 {
        m.admit(rec(&format!("x{i:03}"), 1, MemberState::Alive), at(t0, 0));
    }
    assert_eq!(m.piggyback(None).len(), m.config.max_piggyback);
}

#[test]
fn a_packed_message_stays_within_its_byte_budget_whatever_the_records_carry() {
    let t0 = Instant::now();
    let mut m = node("me", t0);
    m.config.max_members = 1000;
    m.config.max_queued_updates = 1000;
    m.queue = super::super::queue::UpdateQueue::new(1000);
    // 600 records with 64 labels of 100 bytes each: about 6.6 KiB apiece.
    for i in 0..600 {
        let mut r = rec(&format!("n{i:03}"), 1, MemberState::Alive);
        for l in 0..64 {
            r.labels.insert(format!("{l:050}"), "v".repeat(50));
        }
        m.admit(r, at(t0, 0));
    }
    let msg = m.piggyback(None);
    let size: usize = msg.iter().map(|r| r.approx_wire_len()).sum();
    let usual = m.config.max_piggyback;
    // The usual count always goes; beyond it, at most PACK_BYTES more.
    assert!(msg.len() > usual, "{} records", msg.len());
    assert!(msg.len() < 8 * usual, "{} records", msg.len());
    let one = msg[0].approx_wire_len();
    assert!(
        size <= usual * one + super::PACK_BYTES,
        "{size} bytes in {} records",
        msg.len()
    );
}
