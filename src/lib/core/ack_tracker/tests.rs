//! Unit and property tests of the ACK tracker: completion, expiry, capacity
//! and departed receivers.

use proptest::prelude::*;

use super::*;

fn n(i: u8) -> NodeId {
    NodeId::parse(&format!("n{i}")).unwrap()
}

#[test]
fn completes_once_when_the_last_receiver_answers() {
    let t0 = Instant::now();
    let mut t = AckTracker::new(8);
    let id = MessageId::from_u128(1);
    t.track(id, [n(1), n(2)], t0, t0 + Duration::from_secs(5), "tok")
        .unwrap();
    assert!(matches!(
        t.on_ack(id, &n(1), Answer::Delivered, t0 + Duration::from_millis(3)),
        AckEffect::Progress
    ));
    // A duplicate ACK changes nothing.
    assert!(matches!(
        t.on_ack(id, &n(1), Answer::Delivered, t0),
        AckEffect::Ignored
    ));
    let AckEffect::Completed(c) =
        t.on_ack(id, &n(2), Answer::Delivered, t0 + Duration::from_millis(7))
    else {
        panic!("expected completion")
    };
    assert_eq!(c.ending, Ending::Converged);
    assert_eq!(c.token, "tok");
    assert_eq!(c.receipts[1].latency, Duration::from_millis(7));
    assert!(c.missing.is_empty());
    // After completion, further ACKs are ignored and nothing expires.
    assert!(matches!(
        t.on_ack(id, &n(2), Answer::Delivered, t0),
        AckEffect::Ignored
    ));
    assert!(t.expire(t0 + Duration::from_secs(60)).is_empty());
}

#[test]
fn expires_at_the_deadline_with_the_missing_set() {
    let t0 = Instant::now();
    let mut t = AckTracker::new(8);
    let id = MessageId::from_u128(1);
    t.track(id, [n(1), n(2), n(3)], t0, t0 + Duration::from_secs(1), ())
        .unwrap();
    t.on_ack(id, &n(2), Answer::Delivered, t0);
    assert!(t.expire(t0 + Duration::from_millis(999)).is_empty());
    let done = t.expire(t0 + Duration::from_secs(1));
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].ending, Ending::TimedOut);
    assert_eq!(done[0].missing, vec![n(1), n(3)]);
    assert!(t.is_empty());
}

#[test]
fn capacity_and_duplicate_ids_are_refused() {
    let t0 = Instant::now();
    let mut t = AckTracker::new(1);
    let id = MessageId::from_u128(1);
    t.track(id, [n(1)], t0, t0, ()).unwrap();
    assert_eq!(
        t.track(id, [n(1)], t0, t0, ()).unwrap_err(),
        TrackError::DuplicateId(id)
    );
    assert_eq!(
        t.track(MessageId::from_u128(2), [n(1)], t0, t0, ())
            .unwrap_err(),
        TrackError::Full(1)
    );
}

#[test]
fn forgetting_a_dead_receiver_completes_what_waited_only_for_it() {
    let t0 = Instant::now();
    let mut t = AckTracker::new(8);
    let (a, b) = (MessageId::from_u128(1), MessageId::from_u128(2));
    t.track(a, [n(1)], t0, t0 + Duration::from_secs(9), ())
        .unwrap();
    t.track(b, [n(1), n(2)], t0, t0 + Duration::from_secs(9), ())
        .unwrap();
    let done = t.forget_receiver(&n(1), t0);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].id, a);
    assert_eq!(done[0].departed, vec![n(1)]);
    assert!(done[0].missing.is_empty());
    let AckEffect::Completed(c) = t.on_ack(b, &n(2), Answer::Delivered, t0) else {
        panic!("b should complete once n2 answers");
    };
    assert_eq!(c.departed, vec![n(1)]);
}

#[derive(Debug, Clone)]
enum Op {
    Track(u8, u8, u64),
    Ack(u8, u8, u64),
    Expire(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..8, 1u8..4, 1u64..100).prop_map(|(m, k, d)| Op::Track(m, k, d)),
        (0u8..8, 0u8..4, 0u64..100).prop_map(|(m, r, t)| Op::Ack(m, r, t)),
        (0u64..200).prop_map(Op::Expire),
    ]
}

proptest! {
    /// Every tracked message completes exactly once, and never after its deadline
    /// has been passed to `expire`.
    #[test]
    fn every_entry_completes_exactly_once_by_its_deadline(ops in proptest::collection::vec(op(), 1..200)) {
        let t0 = Instant::now();
        let mut t = AckTracker::new(64);
        let mut now = 0u64;
        let mut tracked = HashMap::new();
        let mut completed: HashMap<MessageId, usize> = HashMap::new();
        let mut record = |c: Completion<()>, now: u64, deadlines: &HashMap<MessageId, u64>| {
            *completed.entry(c.id).or_default() += 1;
            if c.ending == Ending::TimedOut {
                assert!(deadlines[&c.id] <= now);
            }
        };
        for op in ops {
            match op {
                Op::Track(m, k, d) => {
                    let id = MessageId::from_u128(u128::from(m));
                    if tracked.contains_key(&id) { continue; }
                    let deadline = now + d;
                    let r = t.track(id, (0..k).map(n), t0 + Duration::from_millis(now), t0 + Duration::from_millis(deadline), ());
                    if r.is_ok() { tracked.insert(id, deadline); }
                }
                Op::Ack(m, r, dt) => {
                    now += dt;
                    if let AckEffect::Completed(c) = t.on_ack(MessageId::from_u128(u128::from(m)), &n(r), Answer::Delivered, t0 + Duration::from_millis(now)) {
                        record(c, now, &tracked);
                    }
                }
                Op::Expire(dt) => {
                    now += dt;
                    for c in t.expire(t0 + Duration::from_millis(now)) { record(c, now, &tracked); }
                }
            }
        }
        for c in t.expire(t0 + Duration::from_secs(3600)) { record(c, 3_600_000, &tracked); }
        prop_assert!(t.is_empty());
        for id in tracked.keys() {
            prop_assert_eq!(completed.get(id).copied(), Some(1), "message {} completed {:?} times", id, completed.get(id));
        }
    }
}
