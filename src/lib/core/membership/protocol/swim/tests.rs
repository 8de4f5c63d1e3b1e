//! The SWIM cycle driven by hand: each test feeds inputs and checks the
//! actions and the member states that follow.

use std::time::{Duration, Instant};

use rand::{SeedableRng as _, rngs::StdRng};

use super::*;
use crate::ids::NodeId;
use crate::membership::{
    protocol::tests::{at, id, node, rec},
    record::MemberState,
};

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

/// `me` with members `b`, `c`, `d`, `e` (all alive).
fn cluster(t0: Instant) -> Membership {
    let mut m = node("me", t0);
    for n in ["b", "c", "d", "e"] {
        m.admit(rec(n, 1, MemberState::Alive), at(t0, 0));
    }
    m
}

fn pings(actions: &[Action]) -> Vec<(ProbeId, NodeId)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Ping { probe, target, .. } => Some((*probe, target.id.clone())),
            _ => None,
        })
        .collect()
}

fn timers(actions: &[Action]) -> Vec<Timer> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SetTimer { timer, .. } => Some(*timer),
            _ => None,
        })
        .collect()
}

fn helpers_asked(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::PingReq { .. }))
        .count()
}

/// Runs a round and returns its probe.
fn round_probe(m: &mut Membership, now: Now, r: &mut StdRng) -> (ProbeId, NodeId, Vec<Action>) {
    let out = m.handle(Input::Timer(Timer::Round), now, r);
    let (p, target) = pings(&out).pop().expect("the round probes a member");
    (p, target, out)
}

#[test]
fn the_first_round_is_set_within_one_interval() {
    let t0 = Instant::now();
    let mut m = cluster(t0);
    let out = m.start(at(t0, 0), &mut rng());
    let rounds: Vec<Instant> = out
        .iter()
        .filter_map(|a| match a {
            Action::SetTimer {
                at,
                timer: Timer::Round,
            } => Some(*at),
            _ => None,
        })
        .collect();
    let [when] = rounds[..] else {
        panic!("one round timer expected, got {out:?}");
    };
    assert!(when < t0 + m.config().gossip_interval);
}

#[test]
fn a_round_probes_one_member_and_schedules_the_next_round_and_the_direct_timeout() {
    let t0 = Instant::now();
    let mut m = cluster(t0);
    let mut r = rng();
    let (p, _, out) = round_probe(&mut m, at(t0, 0), &mut r);
    assert_eq!(pings(&out).len(), 1);
    let ts = timers(&out);
    assert!(ts.contains(&Timer::Round), "{ts:?}");
    assert!(ts.contains(&Timer::DirectTimeout(p)), "{ts:?}");
    assert_eq!(m.probes_in_flight(), 1);
}

#[test]
fn an_answered_probe_ends_and_its_late_timers_do_nothing() {
    let t0 = Instant::now();
    let mut m = cluster(t0);
    let mut r = rng();
    let (p, target, _) = round_probe(&mut m, at(t0, 0), &mut r);
    let out = m.handle(
        Input::Ping {
            probe: p,
            acked: true,
        },
        at(t0, 10),
        &mut r,
    );
    assert!(out.is_empty());
    assert_eq!(m.probes_in_flight(), 0);
    let late = m.handle(Input::Timer(Timer::DirectTimeout(p)), at(t0, 100), &mut r);
    assert!(late.is_empty(), "a stale timer must not restart the probe");
    assert_eq!(m.get(&target).map(|r| r.state), Some(MemberState::Alive));
}

#[test]
fn a_silent_target_is_probed_through_helpers_and_a_second_direct_ping_then_suspected() {
    let t0 = Instant::now();
    let mut m = cluster(t0);
    let mut r = rng();
    let (p, target, _) = round_probe(&mut m, at(t0, 0), &mut r);
    let out = m.handle(Input::Timer(Timer::DirectTimeout(p)), at(t0, 100), &mut r);
    assert_eq!(helpers_asked(&out), m.config().indirect_probes.min(3));
    assert_eq!(
        pings(&out),
        vec![(p, target.clone())],
        "second direct attempt"
    );
    assert!(timers(&out).contains(&Timer::ProbeEnd(p)));
    // Every helper answers with a nack, the second ping fails: suspect, and
    // this node's health is not blamed (the helpers did answer).
    for _ in 0..helpers_asked(&out) {
        m.handle(
            Input::Indirect {
                probe: p,
                ack: Some(false),
            },
            at(t0, 150),
            &mut r,
        );
    }
    assert_eq!(m.get(&target).map(|r| r.state), Some(MemberState::Alive));
    m.handle(
        Input::Ping {
            probe: p,
            acked: false,
        },
        at(t0, 160),
        &mut r,
    );
    assert_eq!(m.get(&target).map(|r| r.state), Some(MemberState::Suspect));
    assert_eq!(m.local_health(), 0);
    assert_eq!(m.counters().probe_failures, 1);
    assert_eq!(m.probes_in_flight(), 0);
}

#[test]
fn helpers_that_never_answer_point_at_this_node_and_raise_its_local_health() {
    let t0 = Instant::now();
    let mut m = cluster(t0);
    let mut r = rng();
    let (p, target, _) = round_probe(&mut m, at(t0, 0), &mut r);
    m.handle(Input::Timer(Timer::DirectTimeout(p)), at(t0, 100), &mut r);
    m.handle(Input::Timer(Timer::ProbeEnd(p)), at(t0, 800), &mut r);
    assert_eq!(m.get(&target).map(|r| r.state), Some(MemberState::Suspect));
    assert_eq!(m.local_health(), 1);
}

#[test]
fn one_helper_ack_keeps_the_target_alive() {
    let t0 = Instant::now();
    let mut m = cluster(t0);
    let mut r = rng();
    let (p, target, _) = round_probe(&mut m, at(t0, 0), &mut r);
    m.handle(
        Input::Ping {
            probe: p,
            acked: false,
        },
        at(t0, 5),
        &mut r,
    );
    m.handle(
        Input::Indirect {
            probe: p,
            ack: Some(true),
        },
        at(t0, 50),
        &mut r,
    );
    m.handle(Input::Timer(Timer::ProbeEnd(p)), at(t0, 800), &mut r);
    assert_eq!(m.get(&target).map(|r| r.state), Some(MemberState::Alive));
    assert_eq!(m.counters().probe_failures, 0);
}

/// Suspects `b` and lets its suspicion run out; returns the last check's probe.
fn expire_b(m: &mut Membership, t0: Instant, r: &mut StdRng) -> (ProbeId, u64) {
    m.probe_failed(&id("b"), false, at(t0, 0));
    let (_, max) = m.config().suspicion_bounds(5);
    let t = u64::try_from(max.as_millis()).unwrap() + 1;
    let out = m.handle(Input::Timer(Timer::Round), at(t0, t), r);
    let p = pings(&out)
        .into_iter()
        .find(|(_, n)| *n == id("b"))
        .map(|(p, _)| p)
        .expect("the expired suspect gets a last probe");
    (p, t)
}

#[test]
fn an_expired_suspect_that_stays_silent_is_asked_about_then_dead() {
    let t0 = Instant::now();
    let mut m = cluster(t0);
    let mut r = rng();
    let (p, t) = expire_b(&mut m, t0, &mut r);
    m.handle(
        Input::Ping {
            probe: p,
            acked: false,
        },
        at(t0, t + 1),
        &mut r,
    );
    let out = m.handle(Input::Timer(Timer::ProbeEnd(p)), at(t0, t + 700), &mut r);
    let asks = out
        .iter()
        .filter(|a| matches!(a, Action::AskRecord { about, .. } if *about == id("b")))
        .count();
    assert_eq!(asks, 2, "{out:?}");
    assert_eq!(m.get(&id("b")).map(|r| r.state), Some(MemberState::Suspect));
    m.handle(Input::Asked { probe: p }, at(t0, t + 710), &mut r);
    assert_eq!(m.get(&id("b")).map(|r| r.state), Some(MemberState::Suspect));
    m.handle(Input::Asked { probe: p }, at(t0, t + 720), &mut r);
    assert_eq!(m.get(&id("b")).map(|r| r.state), Some(MemberState::Dead));
}

#[test]
fn an_expired_suspect_that_answers_its_last_probe_is_not_killed() {
    let t0 = Instant::now();
    let mut m = cluster(t0);
    let mut r = rng();
    let (p, t) = expire_b(&mut m, t0, &mut r);
    m.handle(
        Input::Ping {
            probe: p,
            acked: true,
        },
        at(t0, t + 5),
        &mut r,
    );
    assert_eq!(m.get(&id("b")).map(|r| r.state), Some(MemberState::Suspect));
    // Its suspicion started over: it is not due for another last check.
    assert!(m.tick(at(t0, t + 10)).is_empty());
    assert_eq!(m.get(&id("b")).map(|r| r.state), Some(MemberState::Suspect));
}

#[test]
fn rounds_missed_during_a_stall_are_not_caught_up() {
    let t0 = Instant::now();
    let mut m = cluster(t0);
    let mut r = rng();
    m.start(at(t0, 0), &mut r);
    let out = m.handle(Input::Timer(Timer::Round), at(t0, 10_000), &mut r);
    let next = out
        .iter()
        .find_map(|a| match a {
            Action::SetTimer {
                at,
                timer: Timer::Round,
            } => Some(*at),
            _ => None,
        })
        .unwrap();
    assert_eq!(next, t0 + Duration::from_secs(10) + m.probe_interval());
}

#[test]
fn probes_in_flight_are_bounded() {
    let t0 = Instant::now();
    let mut m = node("me", t0);
    for i in 0..(MAX_PROBES_IN_FLIGHT + 10) {
        m.admit(rec(&format!("n{i}"), 1, MemberState::Alive), at(t0, 0));
    }
    let mut r = rng();
    for i in 0..(MAX_PROBES_IN_FLIGHT as u64 + 10) {
        m.handle(Input::Timer(Timer::Round), at(t0, i * 1000), &mut r);
    }
    assert_eq!(m.probes_in_flight(), MAX_PROBES_IN_FLIGHT);
}

fn syncs(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Sync { .. }))
        .count()
}

#[test]
fn a_quiet_cluster_runs_no_extra_push_pulls() {
    let t0 = Instant::now();
    let mut m = cluster(t0);
    let mut r = rng();
    let mut n = 0;
    // Well after the members joined.
    for i in 0..50u64 {
        n += syncs(&m.handle(Input::Timer(Timer::Round), at(t0, 10_000 + i * 200), &mut r));
    }
    assert_eq!(n, 0);
}

#[test]
fn while_members_join_a_node_push_pulls_each_round_within_a_budget() {
    let t0 = Instant::now();
    let mut m = cluster(t0);
    let mut r = rng();
    let interval = m.config().gossip_interval;
    let window = m.config().anti_entropy_interval;
    let rounds = 50u64;
    let mut per_round = Vec::new();
    for i in 0..rounds {
        let t = at(t0, i * u64::try_from(interval.as_millis()).unwrap());
        // A member joins every round (or one keeps flapping).
        m.admit(rec(&format!("j{i}"), 1, MemberState::Alive), t);
        per_round.push(syncs(&m.handle(Input::Timer(Timer::Round), t, &mut r)));
    }
    assert_eq!(per_round[0], 1, "the first changed round push-pulls");
    let total: usize = per_round.iter().sum();
    let windows = (rounds * u64::try_from(interval.as_millis()).unwrap())
        .div_ceil(u64::try_from(window.as_millis()).unwrap());
    let budget = usize::try_from(windows * u64::from(CHURN_ROUNDS)).unwrap();
    assert!(
        total <= budget && total >= usize::try_from(CHURN_ROUNDS).unwrap(),
        "{total} push-pulls over {rounds} rounds of churn, budget {budget}"
    );
}

#[test]
fn a_churn_longer_than_the_budget_ends_with_one_more_push_pull() {
    let t0 = Instant::now();
    let mut m = cluster(t0);
    // One budget window over the whole test (the default is 50 rounds; the
    // test config's 10 would refill the budget mid-churn).
    m.config.anti_entropy_interval = std::time::Duration::from_secs(60);
    let mut r = rng();
    let ms = u64::try_from(m.config().gossip_interval.as_millis()).unwrap();
    let churn = 2 * u64::from(CHURN_ROUNDS);
    let mut during = 0;
    for i in 0..churn {
        let t = at(t0, i * ms);
        m.admit(rec(&format!("j{i}"), 1, MemberState::Alive), t);
        during += syncs(&m.handle(Input::Timer(Timer::Round), t, &mut r));
    }
    assert_eq!(during, usize::try_from(CHURN_ROUNDS).unwrap(), "the budget");
    // Quiet again: one closing push-pull once the churn window has passed,
    // then none (the periodic one is the sync loop's, not the cycle's).
    let after: Vec<usize> = (churn..churn + 20)
        .map(|i| syncs(&m.handle(Input::Timer(Timer::Round), at(t0, i * ms), &mut r)))
        .collect();
    assert_eq!(after.iter().sum::<usize>(), 1, "{after:?}");
    let first_quiet = usize::try_from(CHURN_ROUNDS - 1).unwrap();
    assert_eq!(
        after[first_quiet], 1,
        "due as the churn window closes: {after:?}"
    );
}
