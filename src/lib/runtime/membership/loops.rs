//! The loops that drive an agent beside the SWIM cycle (`exec.rs`): pushes of
//! urgent changes, push-pull anti-entropy, reconnecting to dead nodes, and
//! joining through seeds with backoff.

use std::{sync::Arc, sync::PoisonError, time::Duration};

use rand::Rng as _;
use tokio::time::sleep;
use tracing::{debug, info, warn};

use super::{
    agent::{MembershipAgent, Shared, spawn},
    exec::push_pull,
    stats::MembershipStats,
};
use crate::{core::membership::messages::Gossip, transport::membership::CallError};

impl MembershipAgent {
    pub(super) fn spawn_loops(&self) {
        let s = &self.shared;
        super::exec::start(s);
        if s.config.periodic_anti_entropy {
            spawn(s, anti_entropy(Arc::clone(s)));
        }
        spawn(s, reconnect(Arc::clone(s)));
        spawn(s, spread(Arc::clone(s)));
        spawn(s, super::verify::verify(Arc::clone(s)));
        spawn(s, claims(Arc::clone(s)));
        let seeds = s
            .seeds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for addr in &seeds {
            self.spawn_join(addr.clone());
        }
        for addr in &s.config.rejoin {
            if !seeds.contains(addr) && *addr != s.address {
                spawn(s, rejoin(Arc::clone(s), addr.clone()));
            }
        }
    }

    pub(super) fn spawn_join(&self, addr: String) {
        spawn(&self.shared, join(Arc::clone(&self.shared), addr));
    }
}

/// A random fraction of `d` in `[0, d)`, to spread periodic work across nodes.
fn jitter(s: &Shared, d: Duration) -> Duration {
    let f: f64 = s
        .rng
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .random();
    d.mul_f64(f)
}

/// Pushes state changes (joins, suspicions and their confirmations, deaths,
/// leaves, refutations) to `fanout` peers as soon as they are learnt, instead of
/// at the next round. Each node forwards a change once, when it first learns it,
/// so changes reach everyone within a few network round trips. Changes arriving
/// within a short window go out together, and batches leave at most twice a
/// round: during a storm (a mass join, a partition healing) every node learns
/// changes all the time, and a batch per window (up to 100 a second per node,
/// each to `fanout` peers) would multiply the cluster's message rate, where
/// two a round keep it within what round gossip sends. A change after a quiet
/// spell still leaves at once.
async fn spread(s: Arc<Shared>) {
    let interval = s.config.membership.gossip_interval;
    let window = (interval / 20).clamp(Duration::from_millis(1), Duration::from_millis(20));
    let spacing = (interval / 2).max(window);
    let mut next_batch = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = s.shutdown.cancelled() => return,
            () = s.urgent_wake.notified() => {}
        }
        sleep(window).await;
        tokio::time::sleep_until(next_batch).await;
        next_batch = tokio::time::Instant::now() + spacing;
        let records = crate::core::membership::queue::coalesce(s.take_pending_urgent());
        if records.is_empty() {
            continue;
        }
        let targets = s.with_state(|st| {
            let mut rng = s.rng.lock().unwrap_or_else(PoisonError::into_inner);
            st.gossip_targets(&mut *rng)
        });
        for t in targets {
            MembershipStats::inc(&s.stats.gossip_pushes);
            let msg = Gossip {
                from: s.local_id.clone(),
                domain: s.domain.clone(),
                updates: records.clone(),
            };
            let s2 = Arc::clone(&s);
            spawn(&s, async move {
                if let Err(e) = s2.transport.gossip(&t.address, msg, interval).await {
                    debug!(peer = %t.id, error = %e, "urgent push failed");
                }
            });
        }
    }
}

/// Starts the checks of claims about members as soon as they are held (see
/// `core/membership/protocol/checks.rs`); the cycle also starts due checks
/// at every input, so a claim paced to a later round waits for the next one.
async fn claims(s: Arc<Shared>) {
    loop {
        tokio::select! {
            () = s.shutdown.cancelled() => return,
            () = s.claims_wake.notified() => {}
        }
        super::exec::feed(&s, crate::core::membership::swim::Input::Claims);
    }
}

/// Push-pull with one random member every anti-entropy interval.
async fn anti_entropy(s: Arc<Shared>) {
    let period = s.config.membership.anti_entropy_interval;
    sleep(jitter(&s, period)).await;
    loop {
        tokio::select! {
            () = s.shutdown.cancelled() => return,
            () = sleep(period) => {}
        }
        let target = s.with_state(|st| {
            let mut rng = s.rng.lock().unwrap_or_else(PoisonError::into_inner);
            st.gossip_targets(&mut *rng).into_iter().next()
        });
        if let Some(t) = target
            && let Err(e) = push_pull(&s, &t.address).await
        {
            debug!(peer = %t.id, error = %e, "anti-entropy failed");
        }
    }
}

/// Every reconnect interval, tries one dead member: if it answers, the exchange
/// tells it it is considered dead (it refutes) and brings both tables up to date.
async fn reconnect(s: Arc<Shared>) {
    let period = s.config.membership.reconnect_interval;
    let round = s.config.membership.gossip_interval;
    loop {
        let hinted = tokio::select! {
            () = s.shutdown.cancelled() => return,
            () = sleep(period) => false,
            () = s.heal_wake.notified() => true,
        };
        if hinted {
            // Someone came back: the rest of its side may be reachable too.
            // At most once a round, however many come back at once.
            retry_dead_now(&s).await;
            sleep(round).await;
            continue;
        }
        let target = s.with_state(|st| {
            let mut rng = s.rng.lock().unwrap_or_else(PoisonError::into_inner);
            st.random_dead(&mut *rng)
        });
        if let Some(t) = target
            && push_pull(&s, &t.address).await.is_ok()
        {
            info!(peer = %t.id, address = %t.address, "reached a node believed dead");
            retry_dead_now(&s).await;
        }
        // A seed no up member lives at (a partition outlasted the node TTL and
        // both sides forgot each other, or the seed restarted elsewhere): try it.
        if let Some(addr) = absent_seed(&s)
            && push_pull(&s, &addr).await.is_ok()
        {
            info!(seed = %addr, "reached a seed that was not a member; tables merged");
            retry_dead_now(&s).await;
        }
    }
}

/// Dead members tried at once after one of them answered.
const RETRY_DEAD_AT_ONCE: usize = 16;

/// One dead member answering suggests a partition healed: the others (up to
/// [`RETRY_DEAD_AT_ONCE`], in parallel) are tried now rather than one per
/// reconnect interval, so the whole far side is back within a round or two.
async fn retry_dead_now(s: &Arc<Shared>) {
    let targets = s.with_state(|st| {
        let mut rng = s.rng.lock().unwrap_or_else(PoisonError::into_inner);
        st.dead_sample(RETRY_DEAD_AT_ONCE, &mut *rng)
    });
    let mut tries = tokio::task::JoinSet::new();
    for t in targets {
        let s = Arc::clone(s);
        tries.spawn(async move {
            if push_pull(&s, &t.address).await.is_ok() {
                info!(peer = %t.id, address = %t.address, "reached a node believed dead");
            }
        });
    }
    while tries.join_next().await.is_some() {}
}

/// A random seed address at which no up member is known.
fn absent_seed(s: &Shared) -> Option<String> {
    let seeds = s
        .seeds
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if seeds.is_empty() {
        return None;
    }
    s.with_state(|st| {
        let up: std::collections::HashSet<&str> = st
            .records()
            .filter(|r| r.state.is_up())
            .map(|r| r.address.as_str())
            .collect();
        let absent: Vec<&String> = seeds.iter().filter(|a| !up.contains(a.as_str())).collect();
        let mut rng = s.rng.lock().unwrap_or_else(PoisonError::into_inner);
        rand::seq::IndexedRandom::choose(absent.as_slice(), &mut *rng).map(|a| (*a).clone())
    })
}

/// Joins through `addr`, retrying with doubling backoff while it does not
/// answer. Each wait is jittered (half to one and a half times the backoff) so
/// nodes restarted together do not retry in lockstep. Every failure is a WARN
/// with its cause (a typo in `--join` must not be silent); a seed of another
/// domain is named as such and never counted as joined. A seed given as a DNS
/// name is resolved afresh whenever its connection is redialled, so a
/// Kubernetes headless service keeps working as pods come and go.
async fn join(s: Arc<Shared>, addr: String) {
    let mut backoff = first_backoff(&s);
    let mut attempts = 0u32;
    let mut said_myself = false;
    loop {
        if s.shutdown.is_cancelled() {
            return;
        }
        attempts = attempts.saturating_add(1);
        let wait = backoff / 2 + jitter(&s, backoff);
        match push_pull(&s, &addr).await {
            Ok(()) => {
                info!(seed = %addr, attempts, members = s.with_state(|st| st.up_count()), "joined through seed");
                return;
            }
            // The seed is this node (a seed list shared by every node, or a
            // DNS name such as a headless service that resolves to it too):
            // try the name's other addresses, else wait for others to come.
            Err(CallError::Myself) => match join_other_addresses(&s, &addr).await {
                Some(other) => {
                    info!(seed = %addr, through = %other, attempts, members = s.with_state(|st| st.up_count()), "joined through seed");
                    return;
                }
                None if !said_myself => {
                    said_myself = true;
                    info!(seed = %addr, "seed {addr} is this node itself; others can join through it, and it keeps trying the name for other nodes");
                }
                None => debug!(seed = %addr, "seed is this node itself"),
            },
            Err(CallError::ForeignDomain(theirs)) => warn!(
                seed = %addr,
                retry_in = ?wait,
                "seed {addr} is in domain '{theirs}', this node is in '{}': not joined through it",
                s.domain
            ),
            Err(e) => {
                warn!(seed = %addr, error = %e, attempts, retry_in = ?wait, "cannot join through seed");
            }
        }
        tokio::select! {
            () = s.shutdown.cancelled() => return,
            () = sleep(wait) => {}
        }
        backoff = (backoff * 2).min(s.config.join_backoff_max);
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

/// Addresses of one seed name tried when the name led to this node itself.
const MAX_RESOLVED_TRIED: usize = 8;

/// The first wait between join attempts: a round, at least 100 ms.
fn first_backoff(s: &Shared) -> Duration {
    s.config
        .membership
        .gossip_interval
        .max(Duration::from_millis(100))
}

/// Attempts on a peer remembered from an earlier run.
const REJOIN_ATTEMPTS: u32 = 4;

/// Tries a peer from the last run's snapshot a few times, stopping as soon as
/// this node knows another member (through it, a seed, or anyone). Failures
/// are normal (the peer may be gone for good) and logged at debug only.
async fn rejoin(s: Arc<Shared>, addr: String) {
    let mut backoff = first_backoff(&s);
    for attempt in 1..=REJOIN_ATTEMPTS {
        if s.shutdown.is_cancelled() || s.with_state(|st| st.up_count()) > 1 {
            return;
        }
        match push_pull(&s, &addr).await {
            Ok(()) => {
                info!(peer = %addr, members = s.with_state(|st| st.up_count()), "rejoined through a peer known in the last run");
                return;
            }
            Err(e) => {
                debug!(peer = %addr, error = %e, attempt, "peer from the last run did not answer");
            }
        }
        let wait = backoff / 2 + jitter(&s, backoff);
        tokio::select! {
            () = s.shutdown.cancelled() => return,
            () = sleep(wait) => {}
        }
        backoff = (backoff * 2).min(s.config.join_backoff_max);
    }
}
