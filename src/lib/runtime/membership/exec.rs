//! The executor of the SWIM cycle ([`crate::core::membership::swim`]): it
//! feeds inputs to the pure core and carries out the actions that come back:
//! calls to peers (whose replies' piggybacked records it merges before it
//! reports the outcome) and timers, each a task sleeping until its instant.
//! One more task feeds `Input::Changed` whenever the core says work is due
//! after a change of its state. Everything the cycle decides (the rounds and
//! the upkeep beside them: spread, anti-entropy, reconnects, verification,
//! joins), it decides in the core; the membership simulator carries out the
//! same actions over its simulated network.

use std::{
    sync::{Arc, PoisonError},
    time::Duration,
};

use tokio::time::sleep_until;
use tracing::debug;

use super::{
    agent::{Shared, now, spawn},
    stats::MembershipStats,
};

mod upkeep;
use crate::{
    core::membership::{
        exchange::Request,
        messages::{Gossip, IndirectPing},
        swim::{Action, Input, Timer},
    },
    transport::membership::CallError,
};

/// Starts the cycle (its first round, the upkeep's timers, the joins), and
/// the task that feeds `Input::Changed` when the core has work due.
pub(super) fn start(s: &Arc<Shared>) {
    let actions = s.with_state(|st| {
        let mut rng = s.rng.lock().unwrap_or_else(PoisonError::into_inner);
        st.start(now(), &mut *rng)
    });
    execute(s, actions);
    let s2 = Arc::clone(s);
    spawn(s, async move {
        loop {
            s2.poke.notified().await;
            feed(&s2, Input::Changed);
        }
    });
}

/// Feeds `input` to the cycle and carries out what it answers.
pub(super) fn feed(s: &Arc<Shared>, input: Input) {
    if s.shutdown.is_cancelled() {
        return;
    }
    if matches!(input, Input::Timer(Timer::Round)) {
        MembershipStats::inc(&s.stats.rounds);
    }
    let actions = s.with_state(|st| {
        let mut rng = s.rng.lock().unwrap_or_else(PoisonError::into_inner);
        st.handle(input, now(), &mut *rng)
    });
    execute(s, actions);
}

fn execute(s: &Arc<Shared>, actions: Vec<Action>) {
    for a in actions {
        let s2 = Arc::clone(s);
        match a {
            Action::SetTimer { at, timer } => spawn(s, async move {
                sleep_until(at.into()).await;
                feed(&s2, Input::Timer(timer));
            }),
            Action::Ping {
                probe,
                target,
                timeout,
                updates,
                want_record,
            } => {
                MembershipStats::inc(&s.stats.probes);
                spawn(s, async move {
                    let acked = match s2
                        .ping_with(
                            &target.id,
                            &target.address,
                            probe,
                            (updates, want_record),
                            timeout,
                        )
                        .await
                    {
                        Ok(reply) => {
                            s2.merge_answer(&target.id, reply.updates);
                            true
                        }
                        // An iarnet member answers, but not to gsp's probe: it is
                        // up. A member that speaks gsp does not answer so.
                        Err(CallError::NotGsp) => {
                            s2.with_state(|st| st.get(&target.id).is_some_and(|r| r.protocol == 0))
                        }
                        Err(e) => {
                            debug!(peer = %target.id, error = %e, "probe not answered");
                            false
                        }
                    };
                    feed(&s2, Input::Ping { probe, acked });
                });
            }
            Action::PingReq {
                probe,
                helper,
                target,
                helper_timeout,
                timeout,
                updates,
            } => {
                MembershipStats::inc(&s.stats.indirect_probes);
                spawn(s, async move {
                    let msg = IndirectPing {
                        from: s2.local_id.clone(),
                        domain: s2.domain.clone(),
                        target: target.id,
                        target_address: target.address,
                        seq: probe,
                        timeout: helper_timeout,
                        updates,
                    };
                    let ack = match s2.transport.ping_req(&helper.address, msg, timeout).await {
                        Ok(reply) => {
                            s2.merge(reply.updates);
                            Some(reply.ack)
                        }
                        Err(_) => None,
                    };
                    feed(&s2, Input::Indirect { probe, ack });
                });
            }
            Action::AskRecord {
                probe,
                peer,
                about,
                timeout,
            } => spawn(s, async move {
                let msg = s2.push_pull_msg(Request::ask(about));
                if let Ok(reply) = s2.transport.push_pull(&peer.address, msg, timeout).await {
                    s2.merge(reply.records);
                }
                feed(&s2, Input::Asked { probe });
            }),
            Action::Sync { to } => spawn(s, async move {
                if let Err(e) = push_pull(&s2, &to.address).await {
                    debug!(peer = %to.id, error = %e, "push-pull failed");
                }
            }),
            Action::Exchange { to, why } => spawn(s, async move {
                let ok = upkeep::exchange(&s2, &to, why).await;
                feed(&s2, Input::Exchanged { why, ok });
            }),
            Action::Verify {
                target,
                updates,
                timeout,
            } => spawn(s, async move {
                upkeep::verify(&s2, target, updates, timeout).await;
            }),
            Action::Gossip {
                to,
                updates,
                timeout,
            } => {
                MembershipStats::inc(&s.stats.gossip_pushes);
                spawn(s, async move {
                    let msg = Gossip {
                        from: s2.local_id.clone(),
                        domain: s2.domain.clone(),
                        updates,
                    };
                    if let Err(e) = s2.transport.gossip(&to.address, msg, timeout).await {
                        debug!(peer = %to.id, error = %e, "gossip push failed");
                    }
                });
            }
        }
    }
}

/// One push-pull exchange with the node at `addr`: hashes first, then digests,
/// then only the records that differ (in parts of 4,096 records, one after
/// the other). An iarnet peer gets its full exchange.
pub(super) async fn push_pull(s: &Arc<Shared>, addr: &str) -> Result<(), CallError> {
    MembershipStats::inc(&s.stats.push_pulls);
    let timeout = s
        .config
        .membership
        .gossip_interval
        .max(Duration::from_secs(1))
        * 2;
    let (mut session, mut request) = s.with_state(|st| st.push_pull_open());
    loop {
        let msg = s.push_pull_msg(request);
        let mut reply = s.transport.push_pull(addr, msg, timeout).await?;
        s.merge_synced(std::mem::take(&mut reply.records), addr);
        match s.with_state(|st| st.push_pull_next(&mut session, &reply)) {
            Some(next) => request = next,
            None => return Ok(()),
        }
    }
}
