//! The broadcast engine of a running node: drives the pure
//! [`BroadcastState`](crate::core::broadcast::state::BroadcastState) with the
//! data plane (payloads, control frames), the membership agent (who is alive,
//! where), and a clock; hands delivered messages to local consumers; tracks the
//! node's own broadcasts until every expected member confirmed delivery.
//!
//! Data plane messages with `hops == 0` are point-to-point (the flood bench, and
//! receipts on topic [`RECEIPT_TOPIC`]); broadcasts leave their origin with
//! `hops >= 1`.

mod exec;
mod loops;
mod receipts;
pub mod recent;
mod seen_log;
mod send;
mod sink;
pub mod stats;
mod timer;
mod types;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError, atomic::AtomicBool},
};

use bytes::Bytes;
use rand::{SeedableRng as _, rngs::StdRng};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use self::{
    stats::BroadcastStats,
    types::{
        Delivery, EngineConfig, OriginKeys, Progress, SendHandle, SendOptions, SendRefused,
        Subscription,
    },
};
use crate::{
    core::{
        broadcast::state::BroadcastState,
        ids::{MessageId, NodeId},
    },
    runtime::membership::MembershipAgent,
    transport::{
        broadcast::{BroadcastTransport, RECEIPT_TOPIC, RESERVED_TOPIC_PREFIX},
        data_plane::sink::MessageSink,
    },
};

/// Default payload cap of a broadcast (and of `gsp send`).
pub const DEFAULT_MAX_PAYLOAD: u64 = crate::transport::config::DEFAULT_MAX_PAYLOAD_BYTES;
/// Messages queued per local subscriber (`gsp watch --messages`, the
/// on-message runner); a subscriber that falls further behind loses the newest
/// (counted per subscriber and in `gsp_broadcast_local_drops_total`).
pub const SUBSCRIBER_QUEUE: usize = 64;
/// Local subscribers at most.
pub const MAX_SUBSCRIBERS: usize = 256;
/// Payload sends (relays, answers to wants, receipts) in flight at most; beyond
/// it a send is dropped and counted, and the peer pulls the message later.
pub const MAX_SENDS_IN_FLIGHT: usize = 8192;

/// A local consumer of delivered messages.
struct Subscriber {
    topic: Option<String>,
    tx: mpsc::Sender<Delivery>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

struct Inner {
    local: NodeId,
    config: EngineConfig,
    state: Mutex<BroadcastState>,
    rng: Mutex<StdRng>,
    agent: MembershipAgent,
    transport: Arc<dyn BroadcastTransport>,
    direct: Arc<dyn MessageSink>,
    subscribers: Mutex<Vec<Subscriber>>,
    waiters: Mutex<HashMap<MessageId, mpsc::UnboundedSender<Progress>>>,
    peers: loops::PeerCache,
    sends: Arc<Semaphore>,
    stats: BroadcastStats,
    disabled: Mutex<Option<String>>,
    seen_log: Option<seen_log::SeenLog>,
    recent: recent::Recent,
    stopping: AtomicBool,
    /// The timer loop sleeps for [`timer::QUIET_TICK`] (nothing waits on the
    /// short tick) until [`Self::wake`] is notified.
    timer_quiet: AtomicBool,
    wake: tokio::sync::Notify,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// The broadcast engine of one node. Cheap to clone.
#[derive(Clone)]
pub struct BroadcastEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for BroadcastEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BroadcastEngine")
            .field("local", &self.inner.local)
            .finish_non_exhaustive()
    }
}

impl BroadcastEngine {
    /// An engine for the node of `agent`, sending through `transport`. Data plane
    /// messages that are not broadcasts go to `direct`. Spawns the timer, digest
    /// and membership loops; they stop with [`Self::stop`].
    pub fn start(
        config: EngineConfig,
        agent: MembershipAgent,
        transport: Arc<dyn BroadcastTransport>,
        direct: Arc<dyn MessageSink>,
    ) -> Self {
        let local = agent.local_id().clone();
        let rng = config
            .rng_seed
            .map_or_else(|| StdRng::from_rng(&mut rand::rng()), StdRng::seed_from_u64);
        let mut state = BroadcastState::new(local.clone(), config.broadcast.clone());
        let seen_log = config.seen_dir.as_deref().map(|dir| {
            let (log, restored) = seen_log::SeenLog::open(
                dir,
                config.broadcast.seen_ttl,
                config.broadcast.seen_capacity,
            );
            if !restored.is_empty() {
                tracing::info!(
                    count = restored.len(),
                    "broadcasts delivered before the restart will not be delivered again"
                );
            }
            state.restore_seen(restored, tokio::time::Instant::now().into_std());
            log
        });
        let inner = Arc::new(Inner {
            state: Mutex::new(state),
            seen_log,
            recent: recent::Recent::default(),
            local,
            rng: Mutex::new(rng),
            agent,
            transport,
            direct,
            subscribers: Mutex::new(Vec::new()),
            waiters: Mutex::new(HashMap::new()),
            peers: loops::PeerCache::default(),
            sends: Arc::new(Semaphore::new(MAX_SENDS_IN_FLIGHT)),
            stats: BroadcastStats::default(),
            disabled: Mutex::new(None),
            stopping: AtomicBool::new(false),
            timer_quiet: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            config,
        });
        let engine = Self { inner };
        engine.inner.peers.refresh(&engine.inner.agent);
        loops::spawn(&engine);
        engine
    }

    /// This node's id.
    pub fn local_id(&self) -> &NodeId {
        &self.inner.local
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Counters.
    pub fn stats(&self) -> &BroadcastStats {
        &self.inner.stats
    }

    /// Sizes of the bounded tables: (seen ids, stored payloads, stored bytes,
    /// pulls, tracked broadcasts).
    pub fn table_sizes(&self) -> (usize, usize, u64, usize, usize) {
        self.inner.with_state(|s| s.sizes())
    }

    /// The pure state's counters (swarm pieces, pulls).
    pub fn counters(&self) -> crate::core::broadcast::state::Counters {
        self.inner.with_state(|s| s.counters().clone())
    }

    /// Broadcasts being assembled from pieces, and the bytes they hold.
    pub fn assemblies(&self) -> (usize, u64) {
        self.inner.with_state(|s| s.assemblies())
    }

    /// Refuses broadcasts and incoming broadcast payloads with `reason` until
    /// [`Self::enable`] (maintenance: disabled).
    pub fn disable(&self, reason: &str) {
        *self
            .inner
            .disabled
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(reason.to_owned());
    }

    /// Accepts broadcasts again.
    pub fn enable(&self) {
        *self
            .inner
            .disabled
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Starts broadcasting `payload` to every live member. Progress arrives on the
    /// returned handle; the broadcast goes on if the handle is dropped.
    ///
    /// # Errors
    /// The payload is over the cap, the topic reserved, the node unavailable, or
    /// too many broadcasts are in flight.
    pub fn send(&self, payload: Bytes, opts: &SendOptions) -> Result<SendHandle, SendRefused> {
        let inner = &self.inner;
        let len = payload.len() as u64;
        if len > inner.config.max_payload {
            return Err(SendRefused::TooLarge {
                len,
                max: inner.config.max_payload,
            });
        }
        if opts.topic.starts_with(RESERVED_TOPIC_PREFIX) {
            return Err(SendRefused::ReservedTopic(opts.topic.clone()));
        }
        if let Some(reason) = inner.unavailable() {
            return Err(SendRefused::Unavailable(reason));
        }
        let disabled = inner.peers.disabled();
        let mut expected = inner.peers.ids();
        expected.push(inner.local.clone());
        expected.sort();
        let now = tokio::time::Instant::now().into_std();
        let (tx, rx) = mpsc::unbounded_channel();
        let mut msg = inner
            .with_state(|s| s.message(&opts.topic, payload, opts.ttl, crate::clock::unix_ns()));
        // Signed outside the state lock: hashing a large payload takes a while.
        if let Some(signer) = inner
            .config
            .origin_auth
            .as_ref()
            .and_then(|k| k.signer.as_ref())
        {
            msg.meta.auth = signer.sign(&msg.meta, &msg.payload);
        }
        let (id, actions) = {
            let mut rng = inner.rng.lock().unwrap_or_else(PoisonError::into_inner);
            inner.with_state(|s| {
                let id = msg.meta.id;
                // Registered before the state can answer, so no progress is lost.
                inner
                    .waiters
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id, tx);
                let r = s.originate(msg, &expected, now, now + opts.timeout, &mut *rng);
                (id, r)
            })
        };
        let actions = match actions {
            Ok(a) => a,
            Err(e) => {
                inner
                    .waiters
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
                return Err(e.into());
            }
        };
        stats::inc(&inner.stats.originated);
        inner.recent.sent(
            id,
            &opts.topic,
            len,
            crate::clock::unix_ns(),
            expected.len(),
        );
        exec::run(inner, actions);
        Ok(SendHandle {
            id,
            expected,
            disabled,
            progress: rx,
        })
    }

    /// The name member `id` has here (`None`: not listed).
    pub fn name_of(&self, id: &NodeId) -> Option<String> {
        self.inner
            .agent
            .with_state(|st| st.get(id).map(|r| r.name.clone()))
    }

    /// This node's last broadcasts (at most
    /// [`recent::RECENT_BROADCASTS`]), newest first, with their ACK counts.
    pub fn recent(&self) -> Vec<recent::RecentBroadcast> {
        self.inner.recent.list()
    }

    /// Delivered messages from now on, optionally only those on `topic`.
    ///
    /// # Errors
    /// [`MAX_SUBSCRIBERS`] subscribers already exist.
    pub fn subscribe(&self, topic: Option<String>) -> Result<Subscription, SendRefused> {
        let mut subs = self
            .inner
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        subs.retain(|s| !s.tx.is_closed());
        if subs.len() >= MAX_SUBSCRIBERS {
            return Err(SendRefused::Unavailable(format!(
                "{MAX_SUBSCRIBERS} message watchers are already connected"
            )));
        }
        let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
        let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
        subs.push(Subscriber {
            topic,
            tx,
            dropped: Arc::clone(&dropped),
        });
        Ok(Subscription {
            messages: rx,
            dropped,
        })
    }

    /// The data plane sink of this engine.
    pub fn sink(&self) -> Arc<dyn MessageSink> {
        Arc::new(self.clone())
    }

    /// Stops the loops and refuses further broadcasts, without waiting (for `Drop`).
    pub fn cancel(&self) {
        self.inner
            .stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.inner.shutdown.cancel();
    }

    /// Stops the loops and refuses further broadcasts; waits for sends in flight
    /// (their retries end at once).
    pub async fn stop(&self) {
        self.inner
            .stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }
}

impl Inner {
    /// Runs `f` on the state, then wakes the timer loop if it sleeps quietly
    /// and `f` gave it work (a pull, an assembly, a broadcast to track).
    fn with_state<T>(&self, f: impl FnOnce(&mut BroadcastState) -> T) -> T {
        let (out, quiet) = {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let out = f(&mut s);
            (out, s.quiet())
        };
        if !quiet {
            self.wake_timer();
        }
        out
    }

    /// Wakes the timer loop if it sleeps quietly (see [`timer`]).
    fn wake_timer(&self) {
        // SeqCst pairs with the loop's store before it checks the state: the
        // loop sees this change, or this call sees the loop asleep.
        if self.timer_quiet.load(std::sync::atomic::Ordering::SeqCst) {
            self.wake.notify_one();
        }
    }

    fn unavailable(&self) -> Option<String> {
        if self.stopping.load(std::sync::atomic::Ordering::Relaxed) {
            return Some("the node is shutting down".to_owned());
        }
        self.disabled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn is_receipt(topic: &str) -> bool {
        topic == RECEIPT_TOPIC
    }
}
