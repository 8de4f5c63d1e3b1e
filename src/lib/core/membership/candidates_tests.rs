//! Tests of the waiting set: bounds, per-source shares, vouching, probe order.

use super::*;
use crate::core::membership::record::{MemberState, testing::record};

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
