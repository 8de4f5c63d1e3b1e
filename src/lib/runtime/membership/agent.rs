//! The membership agent: one node's protocol state behind a lock, the transport
//! it calls peers with, and the handler that answers them. `exec.rs` carries
//! out what the pure core's cycle asks for.

use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicU64, Ordering},
};

use rand::rngs::StdRng;
use tokio::sync::broadcast;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{debug, info, warn};

use super::stats::MembershipStats;
use crate::{
    core::{
        ids::NodeId,
        membership::{
            Membership,
            candidates::Source,
            config::MembershipConfig,
            events::{EventKind, MembershipEvent},
            record::{RecordSigner, SharedRecord},
        },
    },
    transport::membership::{MembershipTransport, Refusal},
};

mod calls;
mod handle;
pub mod query;

/// Events buffered per watcher; a watcher that falls further behind is told how
/// many it missed.
pub const EVENT_BUFFER: usize = 1024;
pub use crate::core::membership::swim::upkeep::MAX_SEEDS;
/// Least time between two log lines about a full member table.
const TABLE_FULL_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// Indirect probes made for peers at once, at most; more are answered with a
/// nack without probing (counted).
pub(super) const MAX_INDIRECT_PROBES_SERVED: usize = 32;

pub use crate::clock::now;

/// Settings of an agent beyond the protocol's.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The protocol settings.
    pub membership: MembershipConfig,
    /// Addresses to join through; retried with backoff until they answer.
    pub seeds: Vec<String>,
    /// Peers known in an earlier run (the data dir's snapshot): tried a few
    /// times alongside the seeds, quietly, until one answers or the node
    /// knows another member.
    pub rejoin: Vec<String>,
    /// Seed of the agent's RNG; `None` draws one from the OS.
    pub rng_seed: Option<u64>,
    /// Whether the agent runs its loops. Without them it only answers calls and
    /// its view stays as set: simulations use this to freeze partial views.
    pub run_loops: bool,
    /// With mutual TLS: how this node signs its records and checks others'.
    pub record_auth: Option<RecordAuth>,
}

/// Signed membership records (see [`crate::transport::tls::origin`]): this
/// node signs every record it publishes about itself, and an alive or left
/// record about another member is merged only with that member's signature.
#[derive(Debug, Clone)]
pub struct RecordAuth {
    /// This node's key (`None`: it cannot sign; its records will be refused
    /// by the others).
    pub signer: Option<Arc<dyn RecordSigner>>,
    /// Checks the others' signatures against the cluster's CA.
    pub verifier: crate::transport::tls::origin::OriginVerifier,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            membership: MembershipConfig::default(),
            seeds: Vec::new(),
            rejoin: Vec::new(),
            rng_seed: None,
            run_loops: true,
            record_auth: None,
        }
    }
}

pub(super) struct Shared {
    pub(super) local_id: NodeId,
    pub(super) domain: String,
    pub(super) address: String,
    /// `std::sync::Mutex`: held only to compute, never across an await.
    pub(super) state: Mutex<Membership>,
    pub(super) rng: Mutex<StdRng>,
    pub(super) transport: Arc<dyn MembershipTransport>,
    events: broadcast::Sender<MembershipEvent>,
    /// A receiver subscribed before the agent's first event, for the one
    /// consumer that must see them all (see
    /// [`MembershipAgent::events_from_start`]); taken once.
    pub(super) first_events: Mutex<Option<broadcast::Receiver<MembershipEvent>>>,
    pub(super) stats: MembershipStats,
    seq: AtomicU64,
    /// Newcomers refused because the member table was full: how many when
    /// last logged, and when (see [`Shared::note_table_full`]).
    pub(super) table_full_logged: Mutex<(u64, Option<std::time::Instant>)>,
    /// The count in `table_full_logged`, read without its lock: the check
    /// runs after every change of the state.
    pub(super) table_full_seen: AtomicU64,
    /// Woken when the core has work due ([`Membership::needs_upkeep`]): the
    /// upkeep task then feeds it `Input::Changed` (see `exec.rs`).
    pub(super) poke: tokio::sync::Notify,
    /// Indirect probes this node makes for peers at once, at most.
    pub(super) ping_req_slots: Arc<tokio::sync::Semaphore>,
    /// Members up per host, for per-address call rates; recounted at most
    /// every second (see `admission.rs`).
    pub(super) hosts: Mutex<(
        Option<std::time::Instant>,
        std::collections::HashMap<String, usize>,
    )>,
    pub(super) config: AgentConfig,
    pub(super) queries: query::QueryState,
    /// This machine's hardware inventory, once the resource loop has read it.
    pub(super) inventory: Mutex<Option<crate::core::resources::inventory::Inventory>>,
    pub(super) shutdown: CancellationToken,
    pub(super) tasks: TaskTracker,
}

impl Shared {
    /// Runs `f` on the protocol state, then publishes the events it produced.
    pub(super) fn with_state<T>(&self, f: impl FnOnce(&mut Membership) -> T) -> T {
        let (out, events, due, full) = {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let out = f(&mut s);
            let full = s.counters().refused_table_full;
            (out, s.take_events(), s.needs_upkeep(now()), full)
        };
        if due {
            self.poke.notify_one();
        }
        self.note_table_full(full);
        for e in events {
            self.publish(e);
        }
        out
    }

    /// Says when the member table turns newcomers away: at the first
    /// refusal, then at most once a minute with the number since, so a
    /// flood of newcomers costs one line a minute.
    fn note_table_full(&self, refused: u64) {
        if refused <= self.table_full_seen.load(Ordering::Relaxed) {
            return;
        }
        let mut logged = self
            .table_full_logged
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (count, at) = *logged;
        if refused <= count {
            return;
        }
        let now = now().instant;
        if at.is_some_and(|t| now.saturating_duration_since(t) < TABLE_FULL_LOG_EVERY) {
            return;
        }
        *logged = (refused, Some(now));
        self.table_full_seen.store(refused, Ordering::Relaxed);
        drop(logged);
        warn!(
            refused = refused - count,
            max_members = self.config.membership.max_members,
            "the member table is full: newcomers are not listed (raise --max-members; \
             counted in gsp_members_refused_table_full_total)"
        );
    }

    fn publish(&self, e: MembershipEvent) {
        self.stats.event(e.kind);
        match e.kind {
            EventKind::Updated => debug!(node = %e.id, version = %e.version, "member updated"),
            EventKind::Maintenance => {
                info!(node = %e.id, name = %e.name, maintenance = e.maintenance.as_str(), "maintenance state changed");
            }
            EventKind::AliveAgain => {
                info!(node = %e.id, name = %e.name, address = %e.address, event = e.kind.as_str(), "membership changed");
            }
            EventKind::Joined | EventKind::Left | EventKind::Removed => {
                info!(node = %e.id, name = %e.name, address = %e.address, event = e.kind.as_str(), "membership changed");
            }
            EventKind::Suspect | EventKind::Dead => {
                warn!(node = %e.id, name = %e.name, address = %e.address, event = e.kind.as_str(), "membership changed");
            }
        }
        // No watcher is fine.
        let _ = self.events.send(e);
    }

    pub(super) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn check_domain(&self, domain: &str) -> Result<(), Refusal> {
        if domain == self.domain {
            Ok(())
        } else {
            let r = Refusal::ForeignDomain {
                peer: domain.to_owned(),
                local: self.domain.clone(),
            };
            self.count_refusal(&r);
            Err(r)
        }
    }

    pub(super) fn count_refusal(&self, r: &Refusal) {
        match r {
            Refusal::ForeignDomain { peer, .. } => {
                MembershipStats::inc(&self.stats.refused_foreign_domain);
                debug!(peer_domain = %peer, "refused a call from another domain");
            }
            Refusal::Invalid(why) => {
                MembershipStats::inc(&self.stats.refused_invalid);
                warn!(reason = %why, "refused a malformed membership message");
            }
            Refusal::Overloaded(why) => {
                MembershipStats::inc(&self.stats.refused_overloaded);
                debug!(reason = %why, "refused a query: overloaded");
            }
            Refusal::RateLimited(why) => {
                MembershipStats::inc(&self.stats.refused_rate_limited);
                debug!(reason = %why, "refused a call over the per-peer rate");
            }
            Refusal::WrongNode { .. } | Refusal::ShuttingDown | Refusal::Myself(_) => {}
        }
    }

    /// Merges records from a peer this node called, dropping those of other
    /// domains.
    pub(super) fn merge(&self, records: Vec<SharedRecord>) {
        self.merge_from(records, None);
    }

    /// Merges records a push-pull with `peer` (the address called) brought
    /// (see [`Membership::apply_synced`]). A peer dialled by IP address
    /// introduces the unknown nodes it lists under that address, the key its
    /// own calls carry, so it can vouch for them but counts once.
    pub(super) fn merge_synced(&self, records: Vec<SharedRecord>, peer: &str) {
        let host = host_of(peer).filter(|h| h.parse::<std::net::IpAddr>().is_ok());
        let source = host.map(|h| Source::called(h, self.members_at(h)));
        self.merge_as(records, source, true);
    }

    /// Merges what `target` answered to this node's direct probe (see
    /// [`Membership::apply_answer`]): its own record first-hand.
    pub(super) fn merge_answer(&self, target: &NodeId, records: Vec<SharedRecord>) {
        let records: Vec<_> = self
            .authentic(records)
            .into_iter()
            .filter(|r| r.domain == self.domain)
            .collect();
        if records.is_empty() {
            return;
        }
        let now = now();
        self.with_state(|s| s.apply_answer(target, records, now));
    }

    /// Merges records delivered by `source` (see [`Membership::apply_from`]).
    pub(super) fn merge_from(&self, records: Vec<SharedRecord>, source: Option<&str>) {
        let source = source.map(|k| self.source(k));
        self.merge_as(records, source, false);
    }

    fn merge_as(&self, records: Vec<SharedRecord>, source: Option<Source<'_>>, synced: bool) {
        let records = self.authentic(records);
        let (ours, foreign): (Vec<_>, Vec<_>) =
            records.into_iter().partition(|r| r.domain == self.domain);
        if !foreign.is_empty() {
            for _ in &foreign {
                MembershipStats::inc(&self.stats.refused_foreign_domain);
            }
        }
        if ours.is_empty() {
            return;
        }
        let now = now();
        self.with_state(|s| {
            if synced {
                s.apply_synced(ours, source, now)
            } else {
                s.apply_all_from(ours, source, now)
            }
        });
    }
}

/// A running membership agent. Cheap to clone.
#[derive(Clone)]
pub struct MembershipAgent {
    pub(super) shared: Arc<Shared>,
}

impl std::fmt::Debug for MembershipAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MembershipAgent")
            .field("local", &self.shared.local_id)
            .finish_non_exhaustive()
    }
}

/// Spawns `fut` on the agent's tracker; it is dropped at once when the agent stops.
pub(super) fn spawn(s: &Shared, fut: impl Future<Output = ()> + Send + 'static) {
    let token = s.shutdown.clone();
    s.tasks.spawn(async move {
        tokio::select! {
            () = token.cancelled() => {}
            () = fut => {}
        }
    });
}

/// The host of a `host:port` address (IPv6 brackets removed).
pub(super) fn host_of(address: &str) -> Option<&str> {
    let (h, _) = address.rsplit_once(':')?;
    Some(h.trim_start_matches('[').trim_end_matches(']'))
}
