//! Receipt batching and hop retries, driven by hand.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::{SeedableRng as _, rngs::StdRng};

use super::*;
use crate::{
    broadcast::config::BroadcastConfig,
    message::{InboundMessage, OutboundMessage},
};

fn id(s: &str) -> NodeId {
    NodeId::parse(s).unwrap()
}

fn state() -> BroadcastState {
    BroadcastState::new(id("me"), BroadcastConfig::default())
}

/// A small broadcast from `origin`, relayed here by `relay`.
fn relayed(origin: &str, relay: &str, k: u8) -> InboundMessage {
    let out = OutboundMessage::new(id(origin), "t", Bytes::from(vec![k; 64]), 1);
    InboundMessage {
        meta: out.meta,
        sender: id(relay),
        payload: out.payload,
        crc32: out.crc32,
    }
}

fn receipts(actions: &[Action]) -> Vec<(NodeId, usize, u32)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Receipts {
                origin,
                ids,
                attempt,
            } => Some((origin.clone(), ids.len(), *attempt)),
            _ => None,
        })
        .collect()
}

#[test]
fn receipts_to_one_origin_wait_for_the_message_in_flight_and_leave_together() {
    let t0 = Instant::now();
    let mut s = state();
    let mut rng = StdRng::seed_from_u64(1);
    let peers = [id("o"), id("r")];
    let (_, a) = s.on_payload(relayed("o", "r", 0), &peers, t0, &mut rng);
    assert_eq!(receipts(&a), [(id("o"), 1, 0)], "the first leaves at once");
    let mut waiting = Vec::new();
    for k in 1..=5 {
        let (_, a) = s.on_payload(relayed("o", "r", k), &peers, t0, &mut rng);
        waiting.extend(receipts(&a));
    }
    assert!(waiting.is_empty(), "one message in flight per origin");
    let a = s.on_receipts_sent(&id("o"), SendOutcome::Delivered, t0);
    assert_eq!(receipts(&a), [(id("o"), 5, 0)], "the next carries the rest");
    let a = s.on_receipts_sent(&id("o"), SendOutcome::Delivered, t0);
    assert!(receipts(&a).is_empty());
    assert_eq!(s.counters().receipt_messages_sent, 2);
    assert_eq!(s.counters().receipts_sent, 6);
    assert!(s.quiet());
}

#[test]
fn a_failed_receipt_message_is_retried_with_doubling_waits_then_dropped() {
    let t0 = Instant::now();
    let mut s = state();
    let mut rng = StdRng::seed_from_u64(1);
    let (_, a) = s.on_payload(relayed("o", "r", 0), &[id("o")], t0, &mut rng);
    assert_eq!(receipts(&a).len(), 1);
    let failed = SendOutcome::Failed { retryable: true };
    let mut now = t0;
    let mut waits = Vec::new();
    for attempt in 1..=s.config().send_retries {
        assert!(s.on_receipts_sent(&id("o"), failed, now).is_empty());
        assert!(!s.quiet(), "a retry waits on the timer");
        // Not before its time.
        let mut at = now;
        loop {
            at += Duration::from_millis(10);
            let r = receipts(&s.tick(at));
            if !r.is_empty() {
                assert_eq!(r, [(id("o"), 1, attempt)]);
                break;
            }
        }
        waits.push(at.duration_since(now).as_millis());
        now = at;
    }
    assert_eq!(waits, [100, 200, 400, 800]);
    assert!(s.on_receipts_sent(&id("o"), failed, now).is_empty());
    assert_eq!(s.counters().receipts_dropped, 1);
    assert!(s.quiet());
}

#[test]
fn a_payload_send_is_retried_to_a_member_still_up_and_not_to_one_gone() {
    let t0 = Instant::now();
    let mut s = state();
    let mut rng = StdRng::seed_from_u64(1);
    let m = relayed("o", "r", 0);
    let mid = m.meta.id;
    s.on_payload(m, &[id("o")], t0, &mut rng);
    assert!(!s.on_send_failed(&id("x"), mid, (0, true), t0), "retried");
    assert!(
        s.tick(t0 + Duration::from_millis(50))
            .iter()
            .all(|a| !matches!(a, Action::Send { .. }))
    );
    let a = s.tick(t0 + Duration::from_millis(100));
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::Send { to, attempt: 1, .. } if *to == id("x"))),
        "{a:?}"
    );
    // A refusal, or the last attempt, is final.
    assert!(s.on_send_failed(&id("x"), mid, (1, false), t0));
    let last = s.config().send_retries;
    assert!(s.on_send_failed(&id("x"), mid, (last, true), t0));
    // A member gone takes its retries with it.
    assert!(!s.on_send_failed(&id("y"), mid, (0, true), t0));
    s.on_member_gone(&id("y"), t0);
    let a = s.tick(t0 + Duration::from_secs(5));
    assert!(a.iter().all(|a| !matches!(a, Action::Send { .. })), "{a:?}");
}

#[test]
fn receipts_over_the_bound_for_one_origin_are_dropped_and_counted() {
    let t0 = Instant::now();
    let mut s = state();
    let o = id("o");
    assert!(s.queue_receipt(&o, MessageId::new()).is_some());
    for _ in 0..MAX_PENDING_RECEIPTS_PER_ORIGIN + 10 {
        assert!(s.queue_receipt(&o, MessageId::new()).is_none());
    }
    assert_eq!(s.counters().receipts_dropped, 10);
    let a = s.on_receipts_sent(&o, SendOutcome::Delivered, t0);
    assert_eq!(receipts(&a), [(o, MAX_RECEIPTS_PER_MESSAGE, 0)]);
}
