//! Tests of the waiting set: bounds, per-source shares, vouching, probe order.

use super::*;
use crate::membership::record::{MemberState, testing::record};

#[test]
fn the_set_is_bounded_and_newer_records_replace_waiting_ones() {
    let t0 = Instant::now();
    let mut c = Candidates::new(2, 2, Duration::from_secs(5));
    assert_eq!(
        c.offer(record("a", 1, MemberState::Alive), None, t0),
        Offered::Queued
    );
    assert_eq!(
        c.offer(record("b", 1, MemberState::Alive), None, t0),
        Offered::Queued
    );
    assert_eq!(
        c.offer(record("c", 1, MemberState::Alive), None, t0),
        Offered::Full
    );
    assert_eq!(
        c.offer(record("a", 1, MemberState::Alive), None, t0),
        Offered::Stale
    );
    assert_eq!(
        c.offer(record("a", 3, MemberState::Alive), None, t0),
        Offered::Queued
    );
    let a = NodeId::parse("a").unwrap();
    assert_eq!(c.remove(&a).unwrap().version.counter, 3);
    assert_eq!(c.len(), 1);
}

#[test]
fn one_source_cannot_fill_the_set() {
    let t0 = Instant::now();
    let mut c = Candidates::new(8, 2, Duration::from_secs(5));
    let liar = Some(Source::caller("10.0.0.66", 1));
    assert_eq!(
        c.offer(record("a", 1, MemberState::Alive), liar, t0),
        Offered::Queued
    );
    assert_eq!(
        c.offer(record("b", 1, MemberState::Alive), liar, t0),
        Offered::Queued
    );
    assert_eq!(
        c.offer(record("c", 1, MemberState::Alive), liar, t0),
        Offered::SourceFull
    );
    assert_eq!(
        c.offer(
            record("c", 1, MemberState::Alive),
            Some(Source::caller("10.0.0.7", 1)),
            t0
        ),
        Offered::Queued
    );
    // A verdict frees the source's slot.
    c.remove(&NodeId::parse("a").unwrap());
    assert_eq!(
        c.offer(record("d", 1, MemberState::Alive), liar, t0),
        Offered::Queued
    );
    assert_eq!(c.expire(t0 + Duration::from_secs(5)), 3);
    assert!(c.per_source.is_empty());
}

#[test]
fn a_second_member_host_vouches_but_strangers_and_the_same_host_do_not() {
    let t0 = Instant::now();
    let mut c = Candidates::new(8, 8, Duration::from_secs(5));
    let member = |key| Some(Source::caller(key, 1));
    let stranger = |key| Some(Source::caller(key, 0));
    let a = || record("a", 1, MemberState::Alive);
    assert_eq!(c.offer(a(), member("10.0.0.1"), t0), Offered::Queued);
    assert_eq!(c.offer(a(), member("10.0.0.1"), t0), Offered::Stale);
    assert_eq!(c.offer(a(), stranger("10.0.0.9"), t0), Offered::Stale);
    assert_eq!(c.offer(a(), None, t0), Offered::Stale);
    assert_eq!(c.offer(a(), member("10.0.0.2"), t0), Offered::Vouched);
    // Introduced by a stranger: nobody can vouch, it must answer a probe.
    let b = || record("b", 1, MemberState::Alive);
    assert_eq!(c.offer(b(), stranger("10.0.0.9"), t0), Offered::Queued);
    assert_eq!(c.offer(b(), member("10.0.0.2"), t0), Offered::Stale);
    // A peer this node called (a push-pull reply) is not charged for what
    // it lists, but vouches like any member host.
    let mut one = Candidates::new(8, 1, Duration::from_secs(5));
    let seed = Some(Source::called("10.0.0.3", 1));
    assert_eq!(one.offer(a(), seed, t0), Offered::Queued);
    assert_eq!(one.offer(b(), seed, t0), Offered::Queued);
    assert_eq!(one.offer(a(), member("10.0.0.4"), t0), Offered::Vouched);
    assert_eq!(c.take_unprobed(8, t0).len(), 2);
}

#[test]
fn each_node_is_handed_out_for_probing_once_and_unconcluded_ones_expire() {
    let t0 = Instant::now();
    let mut c = Candidates::new(8, 8, Duration::from_secs(5));
    c.offer(record("a", 1, MemberState::Alive), None, t0);
    c.offer(record("b", 1, MemberState::Alive), None, t0);
    assert_eq!(c.take_unprobed(1, t0).len(), 1);
    assert!(c.has_unprobed(t0));
    assert_eq!(c.take_unprobed(8, t0).len(), 1);
    assert!(!c.has_unprobed(t0));
    assert!(c.take_unprobed(8, t0).is_empty());
    // A miss hands it out again, but only from the retry time, and only
    // until it has missed MAX_MISSES.
    let a = NodeId::parse("a").unwrap();
    let later = t0 + Duration::from_millis(200);
    assert!(!c.missed(&a, later));
    assert!(c.take_unprobed(8, t0).is_empty());
    assert_eq!(c.take_unprobed(8, later).len(), 1);
    for i in 1..MAX_MISSES {
        assert_eq!(c.missed(&a, later), i + 1 == MAX_MISSES);
        c.take_unprobed(8, later);
    }
    assert_eq!(c.len(), 1, "a is forgotten, b still waits");
    assert_eq!(c.expire(t0 + Duration::from_secs(4)), 0);
    assert_eq!(c.expire(t0 + Duration::from_secs(5)), 1);
    assert!(c.is_empty());
}

#[test]
fn two_colluding_member_hosts_list_one_share_of_made_up_nodes_per_window() {
    let t0 = Instant::now();
    let ttl = Duration::from_secs(5);
    let mut c = Candidates::new(64, 2, ttl);
    let liar = Some(Source::caller("10.0.0.66", 1));
    let accomplice = Some(Source::caller("10.0.0.67", 1));
    let made_up = |i: usize| record(&format!("fake-{i}"), 1, MemberState::Alive);
    // Each vouched listing frees the liar's waiting slot, so it can introduce
    // again at once; the share of vouched listings is what stops it.
    let mut listed = 0;
    let mut limited = 0;
    for i in 0..10 {
        if c.offer(made_up(i), liar, t0) != Offered::Queued {
            continue;
        }
        match c.offer(made_up(i), accomplice, t0) {
            Offered::Vouched => {
                listed += 1;
                c.take(&NodeId::parse(&format!("fake-{i}")).unwrap());
            }
            Offered::VouchLimited => limited += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(listed, 2, "one share (2) per window");
    assert_eq!(limited, 2, "then the liar's slots fill with nodes to probe");
    assert_eq!(c.len(), 2, "the limited ones still wait for their probe");
    // The accomplice's own share is spent too, whoever introduced the node.
    let honest = Some(Source::caller("10.0.0.5", 1));
    c.offer(made_up(100), honest, t0);
    assert_eq!(c.offer(made_up(100), accomplice, t0), Offered::VouchLimited);
    // A peer this node called vouches without being charged, for a node a
    // charged introducer with its share left introduced.
    let called = Some(Source::called("10.0.0.9", 1));
    assert_eq!(c.offer(made_up(100), called, t0), Offered::Vouched);
    // The next window grants a share again.
    let later = t0 + ttl;
    c.expire(later);
    assert_eq!(c.offer(made_up(200), liar, later), Offered::Queued);
    assert_eq!(c.offer(made_up(200), accomplice, later), Offered::Vouched);
}

#[test]
fn nodes_a_called_peer_listed_are_vouched_for_without_charging_it() {
    // A seed answering a joiner lists its whole table: the second member
    // host that mentions those nodes vouches, one share of them per window,
    // and another called peer vouches for all of them.
    let t0 = Instant::now();
    let mut c = Candidates::new(64, 2, Duration::from_secs(5));
    let seed = Some(Source::called("10.0.0.1", 1));
    for i in 0..20 {
        assert_eq!(
            c.offer(record(&format!("n{i}"), 1, MemberState::Alive), seed, t0),
            Offered::Queued
        );
    }
    let gossiper = Some(Source::caller("10.0.0.2", 1));
    let peer = Some(Source::called("10.0.0.3", 1));
    let outcomes: Vec<Offered> = (0..20)
        .map(|i| {
            let r = record(&format!("n{i}"), 1, MemberState::Alive);
            match c.offer(r.clone(), gossiper, t0) {
                Offered::VouchLimited => c.offer(r, peer, t0),
                o => o,
            }
        })
        .collect();
    assert!(
        outcomes.iter().all(|o| *o == Offered::Vouched),
        "{outcomes:?}"
    );
}

#[test]
fn a_sources_share_grows_with_its_members_only_up_to_the_cap() {
    let t0 = Instant::now();
    let mut c = Candidates::new(1000, 2, Duration::from_secs(60));
    let mut queued = 0;
    for i in 0..100 {
        let r = record(&format!("n{i}"), 1, MemberState::Alive);
        if c.offer(r, Some(Source::caller("10.0.0.1", 1000)), t0) == Offered::Queued {
            queued += 1;
        }
    }
    assert_eq!(queued, 2 * MAX_SOURCE_WEIGHT);
}
