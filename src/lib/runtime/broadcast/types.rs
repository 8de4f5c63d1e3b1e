//! The engine's public types: settings, deliveries, progress, refusals.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::DEFAULT_MAX_PAYLOAD;
use crate::core::{
    ack_tracker::Completion,
    broadcast::{config::BroadcastConfig, state::OriginateError},
    ids::{MessageId, NodeId},
};
use crate::transport::tls::origin::{OriginSigner, OriginVerifier};

/// Engine settings. `Default` is production-correct.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The pure protocol's settings.
    pub broadcast: BroadcastConfig,
    /// Largest payload this node broadcasts.
    pub max_payload: u64,
    /// Timer resolution of pulls and deadlines.
    pub tick: Duration,
    /// Seed for relay choices; `None` draws one.
    pub rng_seed: Option<u64>,
    /// With mutual TLS: how this node signs its broadcasts and checks relayed
    /// ones (`None`: plaintext, relayed copies are taken on trust).
    pub origin_auth: Option<OriginKeys>,
    /// Where the ids of delivered broadcasts are kept across restarts (the
    /// data dir); `None`: in memory only, so a restart forgets them.
    pub seen_dir: Option<std::path::PathBuf>,
}

/// Signing and checking broadcasts' origins (see
/// [`crate::transport::tls::origin`]).
#[derive(Debug, Clone)]
pub struct OriginKeys {
    /// This node's signer (`None`: its key cannot sign; its relayed
    /// broadcasts will be refused by other TLS nodes, direct ones still work).
    pub signer: Option<Arc<OriginSigner>>,
    /// Checks relayed broadcasts against the cluster's CA.
    pub verifier: OriginVerifier,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            broadcast: BroadcastConfig::default(),
            max_payload: DEFAULT_MAX_PAYLOAD,
            tick: Duration::from_millis(20),
            rng_seed: None,
            origin_auth: None,
            seen_dir: None,
        }
    }
}

/// A message delivered on this node.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Its id.
    pub id: MessageId,
    /// The node that broadcast it.
    pub origin: NodeId,
    /// Its topic (may be empty).
    pub topic: String,
    /// The payload.
    pub payload: Bytes,
    /// Hops it took to get here (0 on its origin).
    pub hops: u32,
    /// The origin's clock at creation, unix nanoseconds.
    pub created_unix_ns: i64,
}

/// Progress of a broadcast started here.
#[derive(Debug)]
pub enum Progress {
    /// `node` delivered it, `latency` after the send started.
    Acked {
        /// Who.
        node: NodeId,
        /// Since the start.
        latency: Duration,
    },
    /// The final account: converged, or timed out with who is missing and who
    /// died or left meanwhile.
    Done(Completion<()>),
}

/// Options of one broadcast.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// Topic; must not start with `_gsp.`.
    pub topic: String,
    /// Hop limit.
    pub ttl: u32,
    /// How long the origin waits for receipts.
    pub timeout: Duration,
}

impl Default for SendOptions {
    fn default() -> Self {
        Self {
            topic: String::new(),
            ttl: crate::core::broadcast::config::DEFAULT_TTL,
            timeout: Duration::from_secs(10),
        }
    }
}

/// A broadcast in progress.
#[derive(Debug)]
pub struct SendHandle {
    /// Its id.
    pub id: MessageId,
    /// Members expected to deliver it (alive or suspect when it started, this
    /// node included), sorted.
    pub expected: Vec<NodeId>,
    /// Up members left out because they are disabled (they refuse payloads),
    /// sorted.
    pub disabled: Vec<NodeId>,
    /// Progress until [`Progress::Done`]; holds at most one entry per expected
    /// member plus the final account.
    pub progress: mpsc::UnboundedReceiver<Progress>,
}

/// Why a broadcast was refused before anything was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendRefused {
    /// The payload is over the cap.
    #[error("payload of {len} bytes exceeds this node's --max-payload of {max} bytes")]
    TooLarge {
        /// Payload length.
        len: u64,
        /// The cap.
        max: u64,
    },
    /// The topic is reserved.
    #[error("topic {0:?} is reserved (topics starting with \"_gsp.\" are gsp's own)")]
    ReservedTopic(String),
    /// The node does not broadcast now (disabled, or shutting down).
    #[error("this node is not accepting broadcasts: {0}")]
    Unavailable(String),
    /// Too many broadcasts from this node are still tracked.
    #[error(transparent)]
    Busy(#[from] OriginateError),
}

/// A subscription to delivered messages.
#[derive(Debug)]
pub struct Subscription {
    /// Delivered messages, in delivery order.
    pub messages: mpsc::Receiver<Delivery>,
    /// Messages this subscriber lost because its queue was full.
    pub dropped: Arc<std::sync::atomic::AtomicU64>,
}
