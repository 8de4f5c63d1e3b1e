//! The upkeep driven by hand: joins, spread batches, verification slots,
//! reconnects and heals, each as the timers and actions a node's runtime and
//! the simulator carry out.

use std::time::{Duration, Instant};

use rand::{SeedableRng as _, rngs::StdRng};

use super::*;
use crate::membership::{
    protocol::tests::{at, node, rec},
    record::MemberState,
    swim::Input,
};

fn rng() -> StdRng {
    StdRng::seed_from_u64(11)
}

fn exchanges(actions: &[Action]) -> Vec<(String, Exchange)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Exchange { to, why } => Some((to.clone(), *why)),
            _ => None,
        })
        .collect()
}

fn timer_at(actions: &[Action], which: Timer) -> Option<Instant> {
    actions.iter().find_map(|a| match a {
        Action::SetTimer { at, timer } if *timer == which => Some(*at),
        _ => None,
    })
}

fn ms(t0: Instant, t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(t0).as_millis()).unwrap_or(u64::MAX)
}

#[test]
fn a_seed_that_does_not_answer_is_retried_with_doubling_jittered_waits_up_to_the_cap() {
    let t0 = Instant::now();
    let mut m = node("me", t0);
    m.add_seeds(["seed:1".to_owned()], false);
    let mut r = rng();
    let out = m.start(at(t0, 0), &mut r);
    let [(to, Exchange::Join { seed, attempt, .. })] = &exchanges(&out)[..] else {
        panic!("the seed is tried at once: {out:?}");
    };
    let seed = *seed;
    assert_eq!((to.as_str(), *attempt), ("seed:1", 1));
    // 200 ms rounds: the backoff starts at one round and doubles to the cap.
    let cap = m.config().join_backoff_max;
    let mut now = 0;
    let mut backoff = Duration::from_millis(200);
    for expected in 2..=12 {
        let out = m.handle(
            Input::Exchanged {
                why: Exchange::Join {
                    seed,
                    attempt: expected - 1,
                    retry_in: Duration::ZERO,
                },
                ok: false,
            },
            at(t0, now),
            &mut r,
        );
        let when = timer_at(&out, Timer::Join(seed)).expect("a retry is set");
        let wait = ms(t0, when) - now;
        let (lo, hi) = (backoff.as_millis() / 2, backoff.as_millis() * 3 / 2);
        assert!(
            (lo..=hi).contains(&u128::from(wait)),
            "attempt {expected}: waited {wait} ms, backoff {backoff:?}"
        );
        now = ms(t0, when);
        let out = m.handle(Input::Timer(Timer::Join(seed)), at(t0, now), &mut r);
        let tried = exchanges(&out);
        assert!(
            matches!(tried[..], [(_, Exchange::Join { attempt, .. })] if attempt == expected),
            "{tried:?}"
        );
        backoff = (backoff * 2).min(cap);
    }
    assert_eq!(backoff, cap, "the cap was reached");
}

#[test]
fn a_seed_is_not_tried_again_once_an_exchange_with_it_completed() {
    let t0 = Instant::now();
    let mut m = node("me", t0);
    let mut r = rng();
    m.start(at(t0, 0), &mut r);
    // Added at run time (`MembershipAgent::add_seeds`): tried at the next input.
    assert_eq!(
        m.add_seeds(["s:1".into(), "s:1".into(), "me:1".into()], false),
        ["s:1"]
    );
    assert!(m.needs_upkeep(at(t0, 1)));
    let out = m.handle(Input::Changed, at(t0, 1), &mut r);
    let [(_, why)] = exchanges(&out)[..] else {
        panic!("{out:?}");
    };
    assert!(!m.needs_upkeep(at(t0, 1)));
    let out = m.handle(Input::Exchanged { why, ok: true }, at(t0, 2), &mut r);
    assert!(timer_at(&out, Timer::Join(0)).is_none());
    // A stale timer finds nothing to retry.
    let out = m.handle(Input::Timer(Timer::Join(0)), at(t0, 5_000), &mut r);
    assert!(exchanges(&out).is_empty(), "{out:?}");
}

#[test]
fn an_earlier_runs_peer_is_tried_four_times_at_most_and_not_once_another_member_is_known() {
    let t0 = Instant::now();
    let mut r = rng();
    let mut m = node("me", t0);
    m.add_seeds(["old:1".to_owned()], true);
    let out = m.start(at(t0, 0), &mut r);
    let mut tries = exchanges(&out).len();
    let mut now = 0;
    for attempt in 1..=10 {
        let out = m.handle(
            Input::Exchanged {
                why: Exchange::Rejoin { seed: 0, attempt },
                ok: false,
            },
            at(t0, now),
            &mut r,
        );
        let Some(when) = timer_at(&out, Timer::Join(0)) else {
            break;
        };
        now = ms(t0, when);
        tries += exchanges(&m.handle(Input::Timer(Timer::Join(0)), at(t0, now), &mut r)).len();
    }
    assert_eq!(tries, REJOIN_ATTEMPTS as usize);

    // Another member known before the retry: no more attempts.
    let mut m = node("me", t0);
    m.add_seeds(["old:1".to_owned()], true);
    m.start(at(t0, 0), &mut r);
    let out = m.handle(
        Input::Exchanged {
            why: Exchange::Rejoin {
                seed: 0,
                attempt: 1,
            },
            ok: false,
        },
        at(t0, 0),
        &mut r,
    );
    let when = timer_at(&out, Timer::Join(0)).expect("a retry is set");
    m.admit(rec("b", 1, MemberState::Alive), at(t0, 1));
    let out = m.handle(Input::Timer(Timer::Join(0)), at(t0, ms(t0, when)), &mut r);
    assert!(exchanges(&out).is_empty(), "{out:?}");
}

#[test]
fn urgent_changes_leave_in_one_batch_and_at_most_two_batches_a_round() {
    let t0 = Instant::now();
    let mut r = rng();
    let mut m = node("me", t0);
    for n in ["b", "c", "d", "e"] {
        m.admit(rec(n, 1, MemberState::Alive), at(t0, 0));
    }
    m.start(at(t0, 0), &mut r);
    // The joins above went out with the first batch.
    m.handle(Input::Timer(Timer::Spread), at(t0, 0), &mut r);
    // Two joins in one window: one timer, one batch carrying both.
    m.admit(rec("x", 1, MemberState::Alive), at(t0, 100));
    assert!(m.needs_upkeep(at(t0, 100)));
    let out = m.handle(Input::Changed, at(t0, 100), &mut r);
    let first = timer_at(&out, Timer::Spread).expect("a batch is set");
    assert_eq!(ms(t0, first), 110, "a window of a twentieth of a round");
    m.admit(rec("y", 1, MemberState::Alive), at(t0, 105));
    let out = m.handle(Input::Changed, at(t0, 105), &mut r);
    assert!(timer_at(&out, Timer::Spread).is_none(), "one batch pending");
    let out = m.handle(Input::Timer(Timer::Spread), at(t0, 110), &mut r);
    let batches: Vec<_> = out
        .iter()
        .filter_map(|a| match a {
            Action::Gossip { updates, .. } => Some(updates.len()),
            _ => None,
        })
        .collect();
    assert_eq!(batches, vec![2; m.config().fanout], "{out:?}");
    // The next change waits until half a round after the last batch.
    m.admit(rec("z", 1, MemberState::Alive), at(t0, 120));
    let out = m.handle(Input::Changed, at(t0, 120), &mut r);
    let next = timer_at(&out, Timer::Spread).expect("a batch is set");
    assert_eq!(ms(t0, next), 210);
}

#[test]
fn at_most_sixteen_verifications_run_at_once_and_an_answer_frees_a_slot() {
    let t0 = Instant::now();
    let mut r = rng();
    let mut m = node("me", t0);
    m.config.max_candidates_per_source = 64;
    m.start(at(t0, 0), &mut r);
    for i in 0..20 {
        m.apply(rec(&format!("n{i}"), 1, MemberState::Alive), at(t0, 1));
    }
    assert!(m.needs_upkeep(at(t0, 1)));
    let out = m.handle(Input::Changed, at(t0, 1), &mut r);
    let probed: Vec<_> = out
        .iter()
        .filter_map(|a| match a {
            Action::Verify { target, .. } => Some(target.id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(probed.len(), MAX_VERIFYING);
    assert_eq!(m.verifying(), MAX_VERIFYING);
    assert!(!m.needs_upkeep(at(t0, 1)), "no slot free");
    let out = m.handle(
        Input::Verified {
            id: probed[0].clone(),
            answered: true,
        },
        at(t0, 2),
        &mut r,
    );
    assert!(m.get(&probed[0]).is_some(), "listed after answering");
    let more = out
        .iter()
        .filter(|a| matches!(a, Action::Verify { .. }))
        .count();
    assert_eq!(more, 1, "the freed slot is used at once");
    assert_eq!(m.verifying(), MAX_VERIFYING);
}

#[test]
fn a_member_back_alive_has_the_dead_tried_at_once_and_at_most_once_a_round() {
    let t0 = Instant::now();
    let mut r = rng();
    let mut m = node("me", t0);
    for n in ["b", "c", "d"] {
        m.admit(rec(n, 1, MemberState::Dead), at(t0, 0));
    }
    m.start(at(t0, 0), &mut r);
    m.admit(rec("b", 2, MemberState::Alive), at(t0, 10));
    assert!(m.needs_upkeep(at(t0, 10)));
    let out = m.handle(Input::Changed, at(t0, 10), &mut r);
    let mut tried: Vec<String> = exchanges(&out)
        .into_iter()
        .filter(|(_, why)| *why == Exchange::Retry)
        .map(|(to, _)| to)
        .collect();
    tried.sort();
    assert_eq!(tried, ["c:1", "d:1"]);
    // Another comes back within the round: the retry waits for the round.
    m.admit(rec("c", 2, MemberState::Alive), at(t0, 50));
    let out = m.handle(Input::Changed, at(t0, 50), &mut r);
    assert!(exchanges(&out).is_empty());
    assert_eq!(timer_at(&out, Timer::Heal).map(|t| ms(t0, t)), Some(210));
    assert!(!m.needs_upkeep(at(t0, 60)), "waiting for the timer");
    let out = m.handle(Input::Timer(Timer::Heal), at(t0, 210), &mut r);
    assert_eq!(exchanges(&out), [("d:1".to_owned(), Exchange::Retry)]);
}

#[test]
fn the_reconnect_timer_tries_a_dead_member_and_a_seed_no_member_lives_at() {
    let t0 = Instant::now();
    let mut r = rng();
    let mut m = node("me", t0);
    m.admit(rec("b", 1, MemberState::Alive), at(t0, 0));
    m.admit(rec("c", 1, MemberState::Dead), at(t0, 0));
    m.add_seeds(["b:1".to_owned(), "gone:1".to_owned()], false);
    let out = m.start(at(t0, 0), &mut r);
    let when = timer_at(&out, Timer::Reconnect).expect("reconnect is set");
    assert_eq!(when, t0 + m.config().reconnect_interval);
    let now = at(t0, ms(t0, when));
    let out = m.handle(Input::Timer(Timer::Reconnect), now, &mut r);
    let mut tried = exchanges(&out);
    tried.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        tried,
        [
            ("c:1".to_owned(), Exchange::Reconnect),
            ("gone:1".to_owned(), Exchange::AbsentSeed)
        ]
    );
    assert!(
        timer_at(&out, Timer::Reconnect).is_some(),
        "and again later"
    );
    // One answered: the dead are tried at once.
    let out = m.handle(
        Input::Exchanged {
            why: Exchange::Reconnect,
            ok: true,
        },
        now,
        &mut r,
    );
    assert_eq!(exchanges(&out), [("c:1".to_owned(), Exchange::Retry)]);
}

#[test]
fn without_periodic_anti_entropy_no_push_pull_timer_is_set() {
    let t0 = Instant::now();
    let mut r = rng();
    let mut m = node("me", t0);
    let out = m.start(at(t0, 0), &mut r);
    let when = timer_at(&out, Timer::AntiEntropy).expect("set by default");
    let ae = m.config().anti_entropy_interval;
    assert!(when >= t0 + ae && when < t0 + ae * 2);
    let mut m = node("me", t0);
    m.config.periodic_anti_entropy = false;
    let out = m.start(at(t0, 0), &mut r);
    assert!(timer_at(&out, Timer::AntiEntropy).is_none());
}
