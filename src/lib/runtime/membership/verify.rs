//! Verification of nodes heard of second-hand: each is probed at its record's
//! address and listed only if it answers as itself.

use std::sync::Arc;

use tokio::time::sleep;
use tracing::debug;

use super::{
    agent::{Shared, host_of, now, spawn},
    stats::MembershipStats,
};
use crate::transport::membership::CallError;

/// Least time a verification probe waits for its answer.
const MIN_VERIFY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Verification probes of unknown nodes in flight at once; more wait their turn.
pub(super) const MAX_VERIFYING: usize = 16;

/// Probes nodes heard of second-hand before they are listed: a node is admitted
/// when it answers at its record's address as itself. At most
/// [`MAX_VERIFYING`] probes run at once, so a flood of made-up records costs a
/// bounded probe rate (and the waiting set is bounded by the protocol).
pub(super) async fn verify(s: Arc<Shared>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_VERIFYING));
    loop {
        tokio::select! {
            () = s.shutdown.cancelled() => return,
            () = s.verify_wake.notified() => {}
            // Probes that ended free slots for nodes still waiting.
            () = sleep(s.config.membership.gossip_interval) => {}
        }
        let free = slots.available_permits();
        if free == 0 {
            continue;
        }
        // A verification is not failure detection: a node that answers late
        // (its host busy, hundreds of nodes joining at once) is still itself.
        let (targets, timeout) = s.with_state(|st| {
            (
                st.take_unverified(free, now()),
                (st.probe_timeout() * 5).max(MIN_VERIFY_TIMEOUT),
            )
        });
        for t in targets {
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                // Cannot happen (no other taker); hand the node back.
                s.with_state(|st| st.candidate_silent(&t.id, now()));
                continue;
            };
            let s2 = Arc::clone(&s);
            spawn(&s, async move {
                MembershipStats::inc(&s2.stats.verification_probes);
                let answer = match s2.probe_for(&t.id, &t.address, timeout).await {
                    // Something answers, but not to gsp's probe: listed only
                    // if it says who it is, as iarnet nodes do, and is the
                    // node asked about, in this domain. Asked under the same
                    // slot, so answering UNIMPLEMENTED at once buys no more
                    // calls in flight.
                    Err(CallError::NotGsp) => {
                        match s2.transport.local_record(&t.address, timeout).await {
                            Ok(r) if r.id == t.id && r.domain == s2.domain => Ok(Vec::new()),
                            Ok(r) => Err(format!(
                                "does not speak gsp, and says it is {} in domain {}",
                                r.id, r.domain
                            )),
                            Err(e) => Err(format!("does not speak gsp, nor say who it is: {e}")),
                        }
                    }
                    Ok(reply) => Ok(reply.updates),
                    Err(e) => Err(e.to_string()),
                };
                // Free the slot before the state change below wakes the loop,
                // so it finds the slot free and starts the next probe at once.
                drop(permit);
                match answer {
                    Ok(updates) => {
                        s2.with_state(|st| st.candidate_answered(&t.id, now()));
                        // The answer comes from a node nobody vouched for yet:
                        // unknown nodes it names are charged to its address,
                        // like those of any other caller.
                        let source = host_of(&t.address).unwrap_or(&t.address);
                        s2.merge_from(updates, Some(source));
                    }
                    Err(why) => {
                        debug!(node = %t.id, address = %t.address, reason = %why, "unknown node did not answer as itself; not listed");
                        s2.with_state(|st| st.candidate_silent(&t.id, now()));
                    }
                }
            });
        }
    }
}
