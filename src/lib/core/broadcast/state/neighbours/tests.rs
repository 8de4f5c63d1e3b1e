//! Announcement batches, digests and catching up, driven by hand.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::{SeedableRng as _, rngs::StdRng};

use super::*;
use crate::{
    broadcast::config::{BroadcastConfig, Relay},
    message::{InboundMessage, OutboundMessage},
};

fn id(s: &str) -> NodeId {
    NodeId::parse(s).unwrap()
}

fn state() -> BroadcastState {
    let config = BroadcastConfig {
        relay: Relay::All,
        ..BroadcastConfig::default()
    };
    BroadcastState::new(id("me"), config)
}

/// A small broadcast from `o`, arriving from `o` itself.
fn direct(k: u8) -> InboundMessage {
    let mut out = OutboundMessage::new(id("o"), "t", Bytes::from(vec![k; 64]), 1);
    out.meta.ttl = 4;
    InboundMessage {
        meta: out.meta,
        sender: id("o"),
        payload: out.payload,
        crc32: out.crc32,
    }
}

fn announces(actions: &[Action]) -> Vec<(NodeId, usize)> {
    let mut v: Vec<(NodeId, usize)> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Announce { to, entries } => Some((to.clone(), entries.len())),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

#[test]
fn announcements_wait_for_the_tick_and_leave_one_frame_per_peer() {
    let t0 = Instant::now();
    let mut s = state();
    let mut rng = StdRng::seed_from_u64(1);
    let peers = [id("o"), id("p"), id("q")];
    for k in 0..3 {
        let (_, a) = s.on_payload(direct(k), &peers, t0, &mut rng);
        assert!(announces(&a).is_empty(), "held for the tick");
    }
    assert!(!s.quiet(), "the tick has announcements to send");
    let a = s.tick(t0);
    assert_eq!(announces(&a), [(id("p"), 3), (id("q"), 3)]);
    assert!(announces(&s.tick(t0)).is_empty(), "sent once");
}

#[test]
fn announcements_over_the_bound_for_one_peer_are_dropped_and_counted() {
    let mut s = state();
    let entry = Announce {
        id: crate::ids::MessageId::new(),
        origin: id("o"),
        size: 1,
    };
    for _ in 0..MAX_CONTROL_ENTRIES + 5 {
        s.queue_announce(id("p"), entry.clone());
    }
    assert_eq!(s.counters().announces_dropped, 5);
    assert_eq!(
        announces(&s.tick(Instant::now())),
        [(id("p"), MAX_CONTROL_ENTRIES)]
    );
}

#[test]
fn a_digest_goes_to_one_peer_every_interval_and_covers_what_it_could_have_missed() {
    let t0 = Instant::now();
    let mut s = state();
    let mut rng = StdRng::seed_from_u64(1);
    s.on_member_up(&id("p"), 1, t0);
    s.on_payload(direct(0), &[id("o"), id("p")], t0, &mut rng);
    let interval = s.config().digest_interval;
    let peers = [id("p")];
    assert!(
        s.digest_tick(&peers, t0, &mut rng).is_empty(),
        "first due an interval on"
    );
    assert!(
        s.digest_tick(&peers, t0 + interval / 2, &mut rng)
            .is_empty()
    );
    let a = s.digest_tick(&peers, t0 + interval, &mut rng);
    assert_eq!(announces(&a), [(id("p"), 1)]);
    assert!(
        s.digest_tick(&peers, t0 + interval, &mut rng).is_empty(),
        "once an interval"
    );
    // Past the window (five intervals, at least 10 s), nothing is offered.
    let late = t0 + MIN_DIGEST_WINDOW.max(interval * 5) + interval * 2;
    assert!(s.digest_tick(&peers, late, &mut rng).is_empty());
}

#[test]
fn a_member_back_is_caught_up_on_what_it_missed_and_a_restarted_one_is_not() {
    let t0 = Instant::now();
    let mut s = state();
    let mut rng = StdRng::seed_from_u64(1);
    s.on_member_up(&id("p"), 1, t0);
    s.on_member_up(&id("r"), 1, t0);
    let at = |secs| t0 + Duration::from_secs(secs);
    s.on_member_gone(&id("p"), at(30));
    s.on_member_gone(&id("r"), at(30));
    // Broadcast while they were away, long after the digest window.
    s.on_payload(direct(0), &[id("o")], at(60), &mut rng);
    // p comes back in the same incarnation: told of it.
    let a = s.on_member_back(&id("p"), false, at(120));
    assert_eq!(announces(&a), [(id("p"), 1)]);
    // r restarted (a new incarnation): nothing from before it was seen.
    s.on_member_up(&id("r"), 2, at(120));
    assert!(s.on_member_back(&id("r"), false, at(120)).is_empty());
    // A member never seen gone, joining: nothing.
    s.on_member_up(&id("n"), 1, at(120));
    assert!(s.on_member_back(&id("n"), false, at(120)).is_empty());
}
