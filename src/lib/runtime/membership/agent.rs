//! The membership agent: one node's protocol state behind a lock, the transport
//! it calls peers with, and the handler that answers them. The loops that drive
//! it live in `loops.rs`.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use rand::{SeedableRng as _, rngs::StdRng};
use tokio::sync::broadcast;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{debug, info, warn};

use super::{admission::host_of, stats::MembershipStats};
use crate::{
    core::{
        ids::NodeId,
        membership::{
            Membership,
            candidates::Source,
            config::MembershipConfig,
            events::{EventKind, MembershipEvent},
            messages::{Gossip, Ping, PingReply},
            record::{MemberRecord, RecordSigner, SharedRecord},
        },
        now::Now,
    },
    transport::membership::{CallError, MembershipHandler, MembershipTransport, Refusal},
};

/// Events buffered per watcher; a watcher that falls further behind is told how
/// many it missed.
pub const EVENT_BUFFER: usize = 1024;
/// Most addresses kept as join candidates.
pub const MAX_SEEDS: usize = 256;
/// Indirect probes made for peers at once, at most; more are answered with a
/// nack without probing (counted).
pub(super) const MAX_INDIRECT_PROBES_SERVED: usize = 32;

/// The current time on both clocks (tokio's clock, so paused-time tests control it).
pub fn now() -> Now {
    Now {
        instant: tokio::time::Instant::now().into_std(),
        unix_ns: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
    }
}

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
    /// Longest wait between attempts on a seed that does not answer.
    pub join_backoff_max: Duration,
    /// Seed of the agent's RNG; `None` draws one from the OS.
    pub rng_seed: Option<u64>,
    /// Whether the periodic push-pull runs (iarnet's `use_anti_entropy`); joins
    /// and dead-node reconnects use push-pull regardless.
    pub periodic_anti_entropy: bool,
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
            join_backoff_max: Duration::from_secs(30),
            rng_seed: None,
            periodic_anti_entropy: true,
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
    pub(super) stats: MembershipStats,
    seq: AtomicU64,
    pub(super) seeds: Mutex<Vec<String>>,
    /// State changes to push at once, coalesced by the spreader loop.
    urgent: Mutex<Vec<SharedRecord>>,
    pub(super) urgent_wake: tokio::sync::Notify,
    /// A member came back (alive again): a partition may have healed, so the
    /// reconnect loop tries the dead members now.
    pub(super) heal_wake: tokio::sync::Notify,
    /// Woken when unknown nodes wait for a verification probe (see `loops::verify`).
    pub(super) verify_wake: tokio::sync::Notify,
    /// Indirect probes this node makes for peers at once, at most.
    pub(super) ping_req_slots: Arc<tokio::sync::Semaphore>,
    /// Members up per host, for per-address call rates; recounted at most
    /// every second (see `admission.rs`).
    pub(super) hosts: Mutex<(
        Option<std::time::Instant>,
        std::collections::HashMap<String, usize>,
    )>,
    pub(super) config: AgentConfig,
    pub(super) queries: super::query::QueryState,
    /// This machine's hardware inventory, once the resource loop has read it.
    pub(super) inventory: Mutex<Option<crate::core::resources::inventory::Inventory>>,
    pub(super) shutdown: CancellationToken,
    pub(super) tasks: TaskTracker,
}

impl Shared {
    /// Runs `f` on the protocol state, then publishes the events it produced.
    pub(super) fn with_state<T>(&self, f: impl FnOnce(&mut Membership) -> T) -> T {
        let (out, events, urgent, unverified) = {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let out = f(&mut s);
            (
                out,
                s.take_events(),
                s.take_urgent(),
                s.has_unverified(now()),
            )
        };
        if unverified {
            self.verify_wake.notify_one();
        }
        for e in events {
            self.publish(e);
        }
        if !urgent.is_empty() {
            let mut pending = self.urgent.lock().unwrap_or_else(PoisonError::into_inner);
            pending.extend(urgent);
            let cap = self.config.membership.max_queued_updates;
            if pending.len() > cap {
                let excess = pending.len() - cap;
                pending.drain(..excess);
            }
            drop(pending);
            self.urgent_wake.notify_one();
        }
        out
    }

    /// State changes waiting for the spreader (see `loops::spread`).
    pub(super) fn take_pending_urgent(&self) -> Vec<SharedRecord> {
        std::mem::take(&mut *self.urgent.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn publish(&self, e: MembershipEvent) {
        self.stats.event(e.kind);
        match e.kind {
            EventKind::Updated => debug!(node = %e.id, version = %e.version, "member updated"),
            EventKind::Maintenance => {
                info!(node = %e.id, name = %e.name, maintenance = e.maintenance.as_str(), "maintenance state changed");
            }
            EventKind::AliveAgain => {
                self.heal_wake.notify_one();
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

    /// Adds addresses to the join candidates.
    pub(super) fn add_seeds(&self, addrs: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut seeds = self.seeds.lock().unwrap_or_else(PoisonError::into_inner);
        let mut added = Vec::new();
        for a in addrs {
            if a.is_empty() || a == self.address || seeds.contains(&a) || seeds.len() >= MAX_SEEDS {
                continue;
            }
            seeds.push(a.clone());
            added.push(a);
        }
        added
    }

    /// `request` as a push-pull call from this node.
    pub(super) fn push_pull_msg(
        &self,
        request: crate::core::membership::exchange::Request,
    ) -> crate::core::membership::messages::PushPull {
        crate::core::membership::messages::PushPull {
            from: self.local_id.clone(),
            from_address: self.address.clone(),
            domain: self.domain.clone(),
            phase: request.phase,
            records: request.records,
            table_hash: request.table_hash,
            want: request.want,
        }
    }

    /// Pings `target` at `address` once, with piggybacked updates (its suspicion
    /// first, if it is suspected).
    ///
    /// # Errors
    /// No ack in time (a reply from another node counts as none).
    pub(super) async fn probe_for(
        &self,
        target: &NodeId,
        address: &str,
        timeout: Duration,
    ) -> Result<PingReply, CallError> {
        let updates = self.with_state(|s| s.piggyback(Some(target)));
        let seq = self.next_seq();
        self.ping_with(target, address, seq, updates, timeout).await
    }

    /// Pings `target` at `address` once, carrying `updates`, as probe `seq`.
    ///
    /// # Errors
    /// No ack in time (a reply from another node counts as none).
    pub(super) async fn ping_with(
        &self,
        target: &NodeId,
        address: &str,
        seq: u64,
        updates: Vec<SharedRecord>,
        timeout: Duration,
    ) -> Result<PingReply, CallError> {
        let ping = Ping {
            from: self.local_id.clone(),
            domain: self.domain.clone(),
            target: target.clone(),
            seq,
            updates,
        };
        let sent = std::time::Instant::now();
        match self.transport.ping(address, ping, timeout).await {
            Ok(reply) if reply.ack && &reply.from == target => {
                self.stats.probe_rtt.observe(sent.elapsed());
                Ok(reply)
            }
            Ok(reply) => Err(CallError::Refused(format!(
                "answered by {} instead",
                reply.from
            ))),
            Err(e) => Err(e),
        }
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

impl MembershipAgent {
    /// Starts an agent for `local` over `transport` and spawns its loops.
    pub fn start(
        config: AgentConfig,
        local: MemberRecord,
        transport: Arc<dyn MembershipTransport>,
    ) -> Self {
        let rng = config
            .rng_seed
            .map_or_else(|| StdRng::from_rng(&mut rand::rng()), StdRng::seed_from_u64);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let shared = Arc::new(Shared {
            local_id: local.id.clone(),
            domain: local.domain.clone(),
            address: local.address.clone(),
            state: Mutex::new(Membership::new(config.membership.clone(), local, now())),
            rng: Mutex::new(rng),
            transport,
            events,
            stats: MembershipStats::default(),
            seq: AtomicU64::new(1),
            seeds: Mutex::new(Vec::new()),
            urgent: Mutex::new(Vec::new()),
            urgent_wake: tokio::sync::Notify::new(),
            heal_wake: tokio::sync::Notify::new(),
            verify_wake: tokio::sync::Notify::new(),
            ping_req_slots: Arc::new(tokio::sync::Semaphore::new(MAX_INDIRECT_PROBES_SERVED)),
            hosts: Mutex::default(),
            config,
            queries: super::query::QueryState::new(),
            inventory: Mutex::new(None),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        shared.add_seeds(shared.config.seeds.clone());
        if let Some(signer) = shared
            .config
            .record_auth
            .as_ref()
            .and_then(|a| a.signer.clone())
        {
            shared.with_state(|st| st.set_signer(signer, now()));
        }
        let agent = Self { shared };
        if agent.shared.config.run_loops {
            agent.spawn_loops();
        }
        agent
    }

    /// This node's id.
    pub fn local_id(&self) -> &NodeId {
        &self.shared.local_id
    }

    /// Runs `f` on the protocol state (read it, or change the local record).
    pub fn with_state<T>(&self, f: impl FnOnce(&mut Membership) -> T) -> T {
        self.shared.with_state(f)
    }

    /// Records this machine's hardware inventory (served by `GetLocalNodeInfo`).
    pub fn set_inventory(&self, inventory: crate::core::resources::inventory::Inventory) {
        *self
            .shared
            .inventory
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(inventory);
    }

    /// The hardware inventory of the node at `addr` (this node's own when `addr`
    /// is its address).
    ///
    /// # Errors
    /// The node cannot be reached in time.
    pub async fn inventory_of(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> Result<
        Option<crate::core::resources::inventory::Inventory>,
        crate::transport::membership::CallError,
    > {
        if addr == self.shared.address {
            return Ok(self.local_inventory());
        }
        self.shared.transport.inventory(addr, timeout).await
    }

    /// Counters.
    pub fn stats(&self) -> &MembershipStats {
        &self.shared.stats
    }

    /// A receiver of membership events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<MembershipEvent> {
        self.shared.events.subscribe()
    }

    /// Adds join candidates (iarnet's peer-list exchange, `--join` at run time).
    pub fn add_seeds(&self, addrs: impl IntoIterator<Item = String>) {
        for a in self.shared.add_seeds(addrs) {
            self.spawn_join(a);
        }
    }

    /// Announces a graceful leave to up to `fanout * 2` peers and stops the loops.
    /// Waits at most `timeout` for the announcement to go out.
    pub async fn leave(&self, timeout: Duration) {
        let (record, targets) = self.with_state(|s| {
            let r = s.leave(now());
            let mut rng = self
                .shared
                .rng
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let mut t = s.gossip_targets(&mut *rng);
            t.extend(s.gossip_targets(&mut *rng));
            t.sort_by(|a, b| a.id.cmp(&b.id));
            t.dedup_by(|a, b| a.id == b.id);
            (r, t)
        });
        self.shared.shutdown.cancel();
        let mut sends = tokio::task::JoinSet::new();
        for t in targets {
            let msg = Gossip {
                from: self.shared.local_id.clone(),
                domain: self.shared.domain.clone(),
                updates: vec![record.clone().into()],
            };
            let transport = Arc::clone(&self.shared.transport);
            sends.spawn(async move { transport.gossip(&t.address, msg, timeout).await });
        }
        let mut delivered = 0;
        let _ = tokio::time::timeout(timeout, async {
            while let Some(r) = sends.join_next().await {
                if matches!(r, Ok(Ok(()))) {
                    delivered += 1;
                }
            }
        })
        .await;
        info!(peers_told = delivered, "left the cluster");
        self.stop().await;
    }

    /// Stops the loops and refuses further calls, without waiting (for `Drop`).
    pub fn cancel(&self) {
        self.shared.shutdown.cancel();
    }

    /// Stops the loops without announcing anything (a crash, as peers see it).
    pub async fn stop(&self) {
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
    }
}
