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

use super::stats::MembershipStats;
use crate::{
    core::{
        ids::NodeId,
        membership::{
            Membership,
            candidates::Source,
            config::MembershipConfig,
            events::{EventKind, MembershipEvent},
            messages::{Gossip, IndirectPing, Phase, Ping, PingReply, PushPull, PushPullReply},
            record::{MemberRecord, MemberState, RecordSigner},
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
/// How often the members-per-host count behind per-address rates is redone.
const HOSTS_REFRESH: Duration = Duration::from_secs(1);

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
    state: Mutex<Membership>,
    pub(super) rng: Mutex<StdRng>,
    pub(super) transport: Arc<dyn MembershipTransport>,
    events: broadcast::Sender<MembershipEvent>,
    pub(super) stats: MembershipStats,
    seq: AtomicU64,
    pub(super) seeds: Mutex<Vec<String>>,
    /// State changes to push at once, coalesced by the spreader loop.
    urgent: Mutex<Vec<MemberRecord>>,
    pub(super) urgent_wake: tokio::sync::Notify,
    /// Woken when unknown nodes wait for a verification probe (see `loops::verify`).
    pub(super) verify_wake: tokio::sync::Notify,
    /// Indirect probes this node makes for peers at once, at most.
    pub(super) ping_req_slots: Arc<tokio::sync::Semaphore>,
    /// Members up per host, for per-address call rates; recounted at most
    /// every [`HOSTS_REFRESH`].
    hosts: Mutex<(
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
    pub(super) fn take_pending_urgent(&self) -> Vec<MemberRecord> {
        std::mem::take(&mut *self.urgent.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn publish(&self, e: MembershipEvent) {
        self.stats.event(e.kind);
        match e.kind {
            EventKind::Updated => debug!(node = %e.id, version = %e.version, "member updated"),
            EventKind::Maintenance => {
                info!(node = %e.id, name = %e.name, maintenance = e.maintenance.as_str(), "maintenance state changed");
            }
            EventKind::Joined | EventKind::AliveAgain | EventKind::Left | EventKind::Removed => {
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

    fn check_domain(&self, domain: &str) -> Result<(), Refusal> {
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

    fn count_refusal(&self, r: &Refusal) {
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
            Refusal::WrongNode { .. } | Refusal::ShuttingDown => {}
        }
    }

    /// Members up at `host` (see [`MembershipHandler::members_at`]).
    pub(super) fn members_at(&self, host: &str) -> usize {
        let s = self;
        let mut hosts = s.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        let now = std::time::Instant::now();
        let stale = hosts
            .0
            .is_none_or(|t| now.saturating_duration_since(t) >= HOSTS_REFRESH);
        if stale {
            let counts = s.with_state(|st| {
                let mut m = std::collections::HashMap::<String, usize>::new();
                for r in st.records().filter(|r| r.state.is_up()) {
                    if let Some((h, _)) = r.address.rsplit_once(':') {
                        let h = h.trim_start_matches('[').trim_end_matches(']');
                        *m.entry(h.to_owned()).or_default() += 1;
                    }
                }
                m
            });
            *hosts = (Some(now), counts);
        }
        hosts.1.get(host).copied().unwrap_or(0)
    }

    /// Merges records from a peer this node called, dropping those of other
    /// domains.
    pub(super) fn merge(&self, records: Vec<MemberRecord>) {
        self.merge_from(records, None);
    }

    /// The records worth merging: under TLS, an alive or left record that would
    /// change what is known about another member must carry that member's
    /// signature and keep its name; the rest are dropped, counted and logged.
    /// Signatures are checked outside the state lock.
    pub(super) fn authentic(&self, records: Vec<MemberRecord>) -> Vec<MemberRecord> {
        let Some(auth) = &self.config.record_auth else {
            return records;
        };
        let known: Vec<Option<(bool, String)>> = {
            let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            records
                .iter()
                .map(|r| {
                    let needs = r.id != self.local_id
                        && matches!(r.state, MemberState::Alive | MemberState::Left)
                        && st.get(&r.id).is_none_or(|k| r.supersedes(k));
                    needs.then(|| {
                        let name = st.get(&r.id).map(|k| k.name.clone());
                        (name.is_some(), name.unwrap_or_default())
                    })
                })
                .collect()
        };
        records
            .into_iter()
            .zip(known)
            .filter(|(r, known)| {
                let Some((listed, name)) = known else {
                    return true;
                };
                let verdict = if *listed && *name != r.name {
                    Err(format!(
                        "record of {} renames it from {name} to {}",
                        r.id, r.name
                    ))
                } else {
                    auth.verifier.verify_record(r)
                };
                verdict
                    .inspect_err(|why| {
                        MembershipStats::inc(&self.stats.records_unauthenticated);
                        debug!(reason = %why, "dropped a membership record");
                    })
                    .is_ok()
            })
            .map(|(r, _)| r)
            .collect()
    }

    /// `key` (a caller's identity or address) as a source of unknown nodes,
    /// weighted by the members it hosts.
    pub(super) fn source<'a>(&self, key: &'a str) -> Source<'a> {
        Source {
            key,
            members: self.members_at(key),
        }
    }

    /// Merges records delivered by `source` (see [`Membership::apply_from`]).
    pub(super) fn merge_from(&self, records: Vec<MemberRecord>, source: Option<&str>) {
        let source = source.map(|k| self.source(k));
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
        self.with_state(|s| s.apply_all_from(ours, source, now));
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
        let ping = Ping {
            from: self.local_id.clone(),
            domain: self.domain.clone(),
            target: target.clone(),
            seq: self.next_seq(),
            updates,
        };
        match self.transport.ping(address, ping, timeout).await {
            Ok(reply) if reply.ack && &reply.from == target => Ok(reply),
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
                updates: vec![record.clone()],
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

#[tonic::async_trait]
impl MembershipHandler for MembershipAgent {
    fn on_ping(&self, msg: Ping, caller: Option<&str>) -> Result<PingReply, Refusal> {
        let s = &self.shared;
        s.check_domain(&msg.domain)?;
        if s.shutdown.is_cancelled() {
            return Err(Refusal::ShuttingDown);
        }
        if msg.target != s.local_id {
            return Err(Refusal::WrongNode {
                expected: msg.target,
                actual: s.local_id.clone(),
            });
        }
        let now = now();
        let from = msg.from.clone();
        let updates = msg.updates;
        // A prober that still suspects this node gets its current record, whatever
        // the update queue holds.
        let doubted = updates
            .iter()
            .any(|r| r.id == s.local_id && r.state != MemberState::Alive);
        let source = caller.unwrap_or(from.as_str());
        let weighted = s.source(source);
        let updates = s.authentic(updates);
        let reply_updates = s.with_state(|st| {
            st.apply_all_from(updates, Some(weighted), now);
            st.probe_succeeded(&from, now);
            let mut out = st.piggyback(Some(&from));
            if doubted && !out.iter().any(|r| r.id == s.local_id) {
                out.insert(0, st.local().clone());
            }
            out
        });
        Ok(PingReply {
            from: s.local_id.clone(),
            seq: msg.seq,
            ack: true,
            updates: reply_updates,
        })
    }

    async fn on_ping_req(
        &self,
        msg: IndirectPing,
        caller: Option<&str>,
    ) -> Result<PingReply, Refusal> {
        let s = &self.shared;
        s.check_domain(&msg.domain)?;
        if s.shutdown.is_cancelled() {
            return Err(Refusal::ShuttingDown);
        }
        s.merge_from(msg.updates, Some(caller.unwrap_or(msg.from.as_str())));
        // Probe only a member known here at that address, and only so many at
        // once: a peer cannot make this node probe arbitrary addresses, nor
        // many at a time. Refusing is a nack: the asker learns nothing false.
        let known = s.with_state(|st| {
            st.get(&msg.target)
                .is_some_and(|r| r.address == msg.target_address)
        });
        let slot = known
            .then(|| Arc::clone(&s.ping_req_slots).try_acquire_owned().ok())
            .flatten();
        let Some(_slot) = slot else {
            MembershipStats::inc(&s.stats.ping_req_refused);
            debug!(target_node = %msg.target, address = %msg.target_address, known, "indirect probe refused");
            let updates = s.with_state(|st| st.piggyback(Some(&msg.from)));
            return Ok(PingReply {
                from: s.local_id.clone(),
                seq: msg.seq,
                ack: false,
                updates,
            });
        };
        MembershipStats::inc(&s.stats.ping_req_served);
        let acked = s
            .probe_for(&msg.target, &msg.target_address, msg.timeout)
            .await;
        let ack = acked.is_ok();
        if let Ok(reply) = acked {
            s.merge(reply.updates);
        }
        let updates = s.with_state(|st| st.piggyback(Some(&msg.from)));
        Ok(PingReply {
            from: s.local_id.clone(),
            seq: msg.seq,
            ack,
            updates,
        })
    }

    fn on_gossip(&self, msg: Gossip, caller: Option<&str>) -> Result<(), Refusal> {
        self.shared.check_domain(&msg.domain)?;
        if self.shared.shutdown.is_cancelled() {
            return Err(Refusal::ShuttingDown);
        }
        let source = caller.unwrap_or(msg.from.as_str());
        self.shared.merge_from(msg.updates, Some(source));
        Ok(())
    }

    fn on_push_pull(&self, msg: PushPull, caller: Option<&str>) -> Result<PushPullReply, Refusal> {
        let s = &self.shared;
        s.check_domain(&msg.domain)?;
        if s.shutdown.is_cancelled() {
            return Err(Refusal::ShuttingDown);
        }
        let (ours, foreign): (Vec<_>, Vec<_>) =
            msg.records.into_iter().partition(|r| r.domain == s.domain);
        for _ in &foreign {
            MembershipStats::inc(&s.stats.refused_foreign_domain);
        }
        let ours = s.authentic(ours);
        let now = now();
        let from = msg.from.clone();
        let callers_own = ours.iter().find(|r| r.id == from).cloned();
        let source = caller.unwrap_or(from.as_str());
        let weighted = s.source(source);
        Ok(s.with_state(|st| {
            st.apply_all_from(ours, Some(weighted), now);
            st.probe_succeeded(&from, now);
            let mut reply = match msg.phase {
                Phase::Hash if st.table_hash() == msg.table_hash => PushPullReply {
                    in_sync: true,
                    ..PushPullReply::default()
                },
                Phase::Hash => PushPullReply {
                    records: vec![st.local().clone()],
                    in_sync: false,
                    digests: st.digests(),
                },
                Phase::Records => PushPullReply {
                    records: st.records_for(&msg.want),
                    ..PushPullReply::default()
                },
                Phase::Full => PushPullReply {
                    records: st.all_records(),
                    ..PushPullReply::default()
                },
            };
            if let Some(claim) = callers_own.and_then(|r| st.removed_claim(&r)) {
                reply.in_sync = false;
                reply.records.push(claim);
            }
            reply
        }))
    }

    fn on_peer_list(
        &self,
        domain: &str,
        requester_address: &str,
        known: Vec<String>,
    ) -> Result<Vec<String>, Refusal> {
        self.shared.check_domain(domain)?;
        let mut candidates = known;
        candidates.push(requester_address.to_owned());
        self.add_seeds(candidates);
        Ok(self.with_state(|st| {
            st.all_records()
                .into_iter()
                .filter(|r| r.state.is_up())
                .map(|r| r.address)
                .collect()
        }))
    }

    async fn on_query(
        &self,
        q: crate::core::resources::query::Query,
    ) -> Result<crate::core::resources::query::QueryAnswer, Refusal> {
        self.shared.check_domain(&q.domain)?;
        if self.shared.shutdown.is_cancelled() {
            return Err(Refusal::ShuttingDown);
        }
        MembershipStats::inc(&self.shared.stats.queries);
        self.shared
            .answer_query(q)
            .await
            .inspect_err(|r| self.shared.count_refusal(r))
    }

    fn local_record(&self) -> MemberRecord {
        self.with_state(|st| st.local().clone())
    }

    fn local_inventory(&self) -> Option<crate::core::resources::inventory::Inventory> {
        self.shared
            .inventory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn count_refusal(&self, refusal: &Refusal) {
        self.shared.count_refusal(refusal);
    }

    fn name_of(&self, id: &NodeId) -> Option<String> {
        self.with_state(|st| st.get(id).map(|r| r.name.clone()))
    }

    fn members_at(&self, host: &str) -> usize {
        self.shared.members_at(host)
    }
}
