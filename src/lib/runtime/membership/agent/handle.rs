//! The public methods of [`MembershipAgent`]: starting it, reading and
//! changing its state, its inventory and events, leaving and stopping.

use std::{
    sync::{Arc, Mutex, PoisonError, atomic::AtomicU64},
    time::Duration,
};

use rand::{SeedableRng as _, rngs::StdRng};
use tokio::sync::broadcast;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::info;

use super::{AgentConfig, EVENT_BUFFER, MAX_INDIRECT_PROBES_SERVED, MembershipAgent, Shared, now};
use crate::{
    core::{
        ids::NodeId,
        membership::{Membership, events::MembershipEvent, messages::Gossip, record::MemberRecord},
    },
    runtime::membership::stats::MembershipStats,
    transport::membership::{MembershipHandler, MembershipTransport},
};

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
        let (events, first_events) = broadcast::channel(EVENT_BUFFER);
        let shared = Arc::new(Shared {
            local_id: local.id.clone(),
            domain: local.domain.clone(),
            address: local.address.clone(),
            state: Mutex::new(Membership::new(config.membership.clone(), local, now())),
            rng: Mutex::new(rng),
            transport,
            events,
            first_events: Mutex::new(Some(first_events)),
            stats: MembershipStats::default(),
            seq: AtomicU64::new(1),
            poke: tokio::sync::Notify::new(),
            table_full_logged: Mutex::new((0, None)),
            table_full_seen: AtomicU64::new(0),
            ping_req_slots: Arc::new(tokio::sync::Semaphore::new(MAX_INDIRECT_PROBES_SERVED)),
            hosts: Mutex::default(),
            config,
            queries: crate::runtime::membership::query::QueryState::new(),
            inventory: Mutex::new(None),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        shared.with_state(|st| {
            st.add_seeds(shared.config.seeds.clone(), false);
            st.add_seeds(shared.config.rejoin.clone(), true);
        });
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
            super::super::exec::start(&agent.shared);
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
    pub fn set_inventory(&self, mut inventory: crate::core::resources::inventory::Inventory) {
        let mut held = self
            .shared
            .inventory
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The GPU part comes with every reading (see `set_gpu_host`).
        if let Some(old) = held.take() {
            inventory.gpu_driver = old.gpu_driver;
            inventory.cuda_version = old.cuda_version;
            inventory.gpu_processes = old.gpu_processes;
        }
        *held = Some(inventory);
    }

    /// Sets the GPU part of the inventory (driver, CUDA version, processes
    /// on the GPUs), read with every resource reading.
    pub fn set_gpu_host(&self, host: crate::core::resources::capacity::GpuHost) {
        let mut held = self
            .shared
            .inventory
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let inventory = held.get_or_insert_with(Default::default);
        inventory.gpu_driver = host.driver;
        inventory.cuda_version = host.cuda;
        inventory.gpu_processes = host.processes;
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

    /// A receiver of every membership event since the agent started (up to
    /// [`EVENT_BUFFER`] of them, then the oldest are reported skipped): the
    /// joins that happen while the node is still starting included. The
    /// first caller gets it; later ones get `None`.
    pub fn events_from_start(&self) -> Option<broadcast::Receiver<MembershipEvent>> {
        self.shared
            .first_events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Adds join candidates (iarnet's peer-list exchange, `--join` at run time).
    pub fn add_seeds(&self, addrs: impl IntoIterator<Item = String>) {
        self.shared.with_state(|st| st.add_seeds(addrs, false));
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
