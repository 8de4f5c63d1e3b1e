//! The upkeep's actions carried out (see
//! [`crate::core::membership::swim::upkeep`] for when and why each runs):
//! push-pulls with seeds, earlier-run peers and dead members, with their log
//! lines, and verification probes of nodes heard of second-hand.

use std::sync::Arc;

use tracing::{debug, info, warn};

use super::{
    super::{
        agent::{Shared, host_of},
        stats::MembershipStats,
    },
    feed, push_pull,
};
use crate::{
    core::membership::{
        ProbeTarget,
        record::SharedRecord,
        swim::{Exchange, Input},
    },
    transport::membership::CallError,
};

/// Addresses of one seed name tried when the name led to this node itself.
const MAX_RESOLVED_TRIED: usize = 8;

/// One push-pull the upkeep asked for, logged by why it ran; whether it
/// completed. Every failed join is a WARN with its cause (a typo in `--join`
/// must not be silent); a seed of another domain is named as such and never
/// counted as joined. A seed given as a DNS name is resolved afresh whenever
/// its connection is redialled, so a Kubernetes headless service keeps
/// working as pods come and go.
pub(super) async fn exchange(s: &Arc<Shared>, addr: &str, why: Exchange) -> bool {
    let result = push_pull(s, addr).await;
    let members = || s.with_state(|st| st.up_count());
    match (why, result) {
        (Exchange::Join { attempt, .. }, Ok(())) => {
            info!(seed = %addr, attempts = attempt, members = members(), "joined through seed");
            true
        }
        // The seed is this node (a seed list shared by every node, or a DNS
        // name such as a headless service that resolves to it too): try the
        // name's other addresses, else wait for others to come.
        (Exchange::Join { attempt, .. }, Err(CallError::Myself)) => {
            if let Some(other) = join_other_addresses(s, addr).await {
                info!(seed = %addr, through = %other, attempts = attempt, members = members(), "joined through seed");
                return true;
            }
            if attempt == 1 {
                info!(seed = %addr, "seed {addr} is this node itself; others can join through it, and it keeps trying the name for other nodes");
            } else {
                debug!(seed = %addr, "seed is this node itself");
            }
            false
        }
        (Exchange::Join { retry_in, .. }, Err(CallError::ForeignDomain(theirs))) => {
            warn!(
                seed = %addr,
                retry_in = ?retry_in,
                "seed {addr} is in domain '{theirs}', this node is in '{}': not joined through it",
                s.domain
            );
            false
        }
        (
            Exchange::Join {
                attempt, retry_in, ..
            },
            Err(e),
        ) => {
            warn!(seed = %addr, error = %e, attempts = attempt, retry_in = ?retry_in, "cannot join through seed");
            false
        }
        (Exchange::Rejoin { .. }, Ok(())) => {
            info!(peer = %addr, members = members(), "rejoined through a peer known in the last run");
            true
        }
        // Normal: the peer may be gone for good.
        (Exchange::Rejoin { attempt, .. }, Err(e)) => {
            debug!(peer = %addr, error = %e, attempt, "peer from the last run did not answer");
            false
        }
        (Exchange::Reconnect | Exchange::Retry, Ok(())) => {
            info!(address = %addr, "reached a node believed dead");
            true
        }
        (Exchange::AbsentSeed, Ok(())) => {
            info!(seed = %addr, "reached a seed that was not a member; tables merged");
            true
        }
        (Exchange::Reconnect | Exchange::Retry | Exchange::AbsentSeed, Err(e)) => {
            debug!(address = %addr, error = %e, why = ?why, "push-pull with a node not up failed");
            false
        }
    }
}

/// `addr` (HOST:PORT with a DNS name) resolved: the first of its addresses
/// that answers as another node, joined through. None for an IP address, a
/// name that does not resolve, or one whose every address is this node or
/// silent.
async fn join_other_addresses(s: &Arc<Shared>, addr: &str) -> Option<String> {
    let (host, _) = addr.rsplit_once(':')?;
    if host
        .trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .is_ok()
    {
        return None;
    }
    let resolved: Vec<std::net::SocketAddr> = tokio::net::lookup_host(addr).await.ok()?.collect();
    // A headless service lists every pod: a bounded number are tried.
    for a in resolved.into_iter().take(MAX_RESOLVED_TRIED) {
        let a = a.to_string();
        if push_pull(s, &a).await.is_ok() {
            return Some(a);
        }
    }
    None
}

/// Probes a node heard of second-hand at its record's address; reports to
/// the core whether it answered as itself, then merges what it sent.
pub(super) async fn verify(
    s: &Arc<Shared>,
    t: ProbeTarget,
    updates: Vec<SharedRecord>,
    timeout: std::time::Duration,
) {
    MembershipStats::inc(&s.stats.verification_probes);
    let seq = s.next_seq();
    let answer = match s
        .ping_with(&t.id, &t.address, seq, (updates, false), timeout)
        .await
    {
        // Something answers, but not to gsp's probe: listed only if it says
        // who it is, as iarnet nodes do, and is the node asked about, in this
        // domain. Asked within the same probe's slot, so answering
        // UNIMPLEMENTED at once buys no more calls in flight.
        Err(CallError::NotGsp) => match s.transport.local_record(&t.address, timeout).await {
            Ok(r) if r.id == t.id && r.domain == s.domain => Ok(Vec::new()),
            Ok(r) => Err(format!(
                "does not speak gsp, and says it is {} in domain {}",
                r.id, r.domain
            )),
            Err(e) => Err(format!("does not speak gsp, nor say who it is: {e}")),
        },
        Ok(reply) => Ok(reply.updates),
        Err(e) => Err(e.to_string()),
    };
    let answered = answer.is_ok();
    if let Err(why) = &answer {
        debug!(node = %t.id, address = %t.address, reason = %why, "unknown node did not answer as itself; not listed");
    }
    feed(
        s,
        Input::Verified {
            id: t.id.clone(),
            answered,
        },
    );
    if let Ok(updates) = answer {
        // The answer comes from a node nobody vouched for yet: unknown nodes
        // it names are charged to its address, like those of any other caller.
        let source = host_of(&t.address).unwrap_or(&t.address);
        s.merge_from(updates, Some(source));
    }
}
