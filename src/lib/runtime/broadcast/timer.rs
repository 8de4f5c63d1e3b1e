//! The broadcast timer loop: pulls that wait too long, stalled assemblies,
//! receipt deadlines, expiry, and the batched announcements, at the short
//! tick while any of them waits and at [`QUIET_TICK`] otherwise.

use std::{
    sync::{Arc, PoisonError, atomic::Ordering},
    time::Duration,
};

use super::{Inner, exec, stats};

/// How often the timer loop runs while the state is quiet and no
/// announcement waits (only the store's and the seen set's expiry to do,
/// whose TTLs are minutes). An idle node then wakes once a second for
/// broadcast rather than 50 times.
pub(super) const QUIET_TICK: Duration = Duration::from_secs(1);

/// Runs the state's timers every `tick` while something waits on them, and
/// every [`QUIET_TICK`] otherwise. Woken from a quiet sleep by a change that
/// gives it work or a queued announcement (see [`Inner::with_state`]), it
/// ticks `tick` later, so announcements still go out batched, one control
/// frame per peer per tick, and a node relaying a stream of small messages
/// wakes no more often than before.
pub(super) async fn run(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(inner.config.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Announced before the check: a change made after it wakes the loop
        // (a stored permit), one made before it is seen by it.
        inner.timer_quiet.store(true, Ordering::SeqCst);
        let quiet = inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .quiet();
        // Whether to wait for the short tick: busy, or woken from a quiet
        // sleep by work (ticked a period on, with whatever else comes
        // meanwhile); a quiet second that passed is ticked at once.
        let wait_tick = !quiet || {
            let woken = tokio::select! {
                () = tokio::time::sleep(QUIET_TICK) => false,
                () = inner.wake.notified() => true,
                () = inner.shutdown.cancelled() => return,
            };
            tick.reset();
            woken
        };
        inner.timer_quiet.store(false, Ordering::SeqCst);
        if wait_tick {
            tokio::select! {
                _ = tick.tick() => {}
                () = inner.shutdown.cancelled() => return,
            }
        }
        stats::inc(&inner.stats.timer_runs);
        let now = tokio::time::Instant::now().into_std();
        // Not `with_state`: the loop does not wake itself.
        let peers = inner.peers.ids();
        let actions = {
            let mut state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
            let mut rng = inner.rng.lock().unwrap_or_else(PoisonError::into_inner);
            let mut actions = state.tick(now);
            actions.extend(state.digest_tick(&peers, now, &mut *rng));
            actions
        };
        exec::run(&inner, actions);
    }
}
