//! The server side: `gsp.membership.v1.Membership` and iarnet's
//! `discovery.DiscoveryService`, decoding and validating every message before the
//! node's handler sees it.

use std::sync::{Arc, Mutex, PoisonError};

use tonic::{Request, Status};

use super::{
    MembershipHandler, Refusal,
    convert::{InvalidRecord, RecordLimits, records_to_pb},
    grpc::MAX_MESSAGE_BYTES,
};
use crate::{
    core::{
        rate_limit::{RateConfig, RateLimiter},
        resources::query::DEFAULT_QUERY_TIMEOUT,
    },
    transport::{
        pb::{discovery as dpb, membership::v1 as mpb},
        tls::{incoming::PeerInfo, roles::check_speaks_as_itself},
    },
};

mod discovery;
mod membership;

/// Whom a call's rate is charged to.
#[derive(Debug)]
enum RateKey {
    /// The caller's verified certificate (its node name, else its subject).
    Identity(String),
    /// A plaintext caller's IP address: a random id per call buys no fresh
    /// bucket. A host running several members gets that many times the rate.
    Address(std::net::IpAddr),
}

impl RateKey {
    /// The key as text: also who introduced the unknown nodes a call carries.
    fn label(&self) -> String {
        match self {
            Self::Identity(name) => name.clone(),
            Self::Address(ip) => ip.to_string(),
        }
    }
}

/// The key of a call that came over a real connection (in-memory transports
/// carry none: their calls are charged by the id they claim).
fn rate_key<T>(request: &Request<T>) -> Option<RateKey> {
    let peer = request.extensions().get::<PeerInfo>()?;
    if let Some(name) = peer.grant.as_ref().and_then(|g| g.name.as_ref()) {
        return Some(RateKey::Identity(format!("node {name}")));
    }
    if let Some(subject) = &peer.subject {
        return Some(RateKey::Identity(subject.clone()));
    }
    peer.remote.map(|a| RateKey::Address(a.ip()))
}

use crate::clock::unix_ns as now_ns;

/// The membership and discovery services of one node.
#[derive(Clone)]
pub struct MembershipService {
    handler: Arc<dyn MembershipHandler>,
    limits: RecordLimits,
    gossip_rate: Arc<Mutex<RateLimiter>>,
    query_rate: Arc<Mutex<RateLimiter>>,
}

/// Per-peer call rates the services accept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeerRates {
    /// Ping, indirect ping, gossip, iarnet gossip and peer-list calls.
    pub gossip: RateConfig,
    /// Resource queries.
    pub query: RateConfig,
}

impl Default for PeerRates {
    fn default() -> Self {
        Self {
            gossip: RateConfig::per_second(DEFAULT_GOSSIP_RATE),
            query: RateConfig::per_second(DEFAULT_QUERY_RATE),
        }
    }
}

/// Default gossip calls per second one peer may make (burst: twice that).
pub const DEFAULT_GOSSIP_RATE: f64 = 200.0;
/// Default queries per second one peer may make (burst: twice that).
pub const DEFAULT_QUERY_RATE: f64 = 50.0;

impl std::fmt::Debug for MembershipService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MembershipService").finish_non_exhaustive()
    }
}

impl MembershipService {
    /// Services answering with `handler`.
    pub fn new(handler: Arc<dyn MembershipHandler>) -> Self {
        Self::with_rates(handler, PeerRates::default())
    }

    /// Services answering with `handler`, refusing peers over `rates`.
    pub fn with_rates(handler: Arc<dyn MembershipHandler>, rates: PeerRates) -> Self {
        Self {
            handler,
            limits: RecordLimits::default(),
            gossip_rate: Arc::new(Mutex::new(RateLimiter::new(rates.gossip))),
            query_rate: Arc::new(Mutex::new(RateLimiter::new(rates.query))),
        }
    }

    /// Takes a token from `peer`'s gossip (or query) bucket, refusing the call
    /// when it is empty. `peer` is what [`rate_key`] found, else the id the
    /// caller claims.
    fn admit(&self, query: bool, key: Option<RateKey>, claimed: &str) -> Result<(), Status> {
        let limiter = if query {
            &self.query_rate
        } else {
            &self.gossip_rate
        };
        let (peer, scale) = match key {
            Some(RateKey::Identity(name)) => (name, 1),
            Some(RateKey::Address(ip)) => {
                let host = ip.to_string();
                let members = self.handler.members_at(&host);
                (host, members)
            }
            None => (claimed.chars().take(64).collect(), 1),
        };
        let ok = limiter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .allow_scaled(&peer, scale, std::time::Instant::now());
        if ok {
            Ok(())
        } else {
            Err(self.refuse(Refusal::RateLimited(format!(
                "peer {peer:?} sends {} faster than this node accepts",
                if query { "queries" } else { "gossip" }
            ))))
        }
    }

    /// The tonic `Membership` server, with explicit message limits.
    pub fn membership_server(&self) -> mpb::membership_server::MembershipServer<Self> {
        mpb::membership_server::MembershipServer::new(self.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// The tonic `DiscoveryService` server, with explicit message limits.
    pub fn discovery_server(&self) -> dpb::discovery_service_server::DiscoveryServiceServer<Self> {
        dpb::discovery_service_server::DiscoveryServiceServer::new(self.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// A caller with a node certificate speaks only as that node (see
    /// [`check_speaks_as_itself`]); others are not checked here.
    fn speaks_as_itself(
        &self,
        cert: Option<&str>,
        from: &crate::core::ids::NodeId,
        records: &[crate::core::membership::record::SharedRecord],
    ) -> Result<(), Status> {
        if cert.is_none() {
            return Ok(());
        }
        check_speaks_as_itself(
            cert,
            from.as_str(),
            self.handler.name_of(from).as_deref(),
            records
                .iter()
                .filter(|r| &r.id == from)
                .map(|r| r.name.as_str()),
        )
        .inspect_err(|e| tracing::warn!(error = %e.message(), "refused a node speaking as another"))
    }

    fn refuse(&self, r: Refusal) -> Status {
        self.handler.count_refusal(&r);
        r.into()
    }

    fn invalid(&self, e: &InvalidRecord) -> Status {
        self.refuse(Refusal::Invalid(e.to_string()))
    }

    fn reply_to_pb(r: &crate::core::membership::messages::PingReply) -> mpb::PingResponse {
        mpb::PingResponse {
            from_node_id: r.from.to_string(),
            seq: r.seq,
            ack: r.ack,
            updates: records_to_pb(&r.updates),
        }
    }
}
