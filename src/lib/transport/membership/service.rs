//! The server side: `gsp.membership.v1.Membership` and iarnet's
//! `discovery.DiscoveryService`, decoding and validating every message before the
//! node's handler sees it.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tonic::{Request, Response, Status};

use super::{
    MembershipHandler, Refusal,
    convert::{
        InvalidRecord, RecordLimits, digest_to_pb, node_id, record_to_pb, records_from_pb,
        records_to_pb,
    },
    grpc::MAX_MESSAGE_BYTES,
};
use crate::{
    core::{
        membership::messages::{Gossip, IndirectPing, Phase, Ping, PushPull},
        rate_limit::{RateConfig, RateLimiter},
    },
    runtime::identity::now_unix_ns,
    transport::{
        pb::{discovery as dpb, membership::v1 as mpb},
        tls::{
            incoming::PeerInfo,
            roles::{certified_node, check_speaks_as_itself},
        },
    },
};

/// Time an iarnet requester gets when it sets no gsp timeout (iarnet's
/// `query_timeout_seconds` default).
const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

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

fn now_ns() -> i64 {
    i64::try_from(now_unix_ns()).unwrap_or(i64::MAX)
}

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

#[tonic::async_trait]
impl mpb::membership_server::Membership for MembershipService {
    async fn ping(
        &self,
        request: Request<mpb::PingRequest>,
    ) -> Result<Response<mpb::PingResponse>, Status> {
        let peer = rate_key(&request);
        let caller = peer.as_ref().map(RateKey::label);
        let cert = certified_node(&request);
        let r = request.into_inner();
        self.admit(false, peer, &r.from_node_id)?;
        let msg = Ping {
            from: node_id("from_node_id", &r.from_node_id).map_err(|e| self.invalid(&e))?,
            domain: r.domain_id,
            target: node_id("target_node_id", &r.target_node_id).map_err(|e| self.invalid(&e))?,
            seq: r.seq,
            updates: records_from_pb(r.updates, "updates", &self.limits, now_ns())
                .map_err(|e| self.invalid(&e))?,
        };
        self.speaks_as_itself(cert.as_deref(), &msg.from, &msg.updates)?;
        let reply = self
            .handler
            .on_ping(msg, caller.as_deref())
            .map_err(Status::from)?;
        Ok(Response::new(Self::reply_to_pb(&reply)))
    }

    async fn ping_req(
        &self,
        request: Request<mpb::IndirectPingRequest>,
    ) -> Result<Response<mpb::PingResponse>, Status> {
        let peer = rate_key(&request);
        let caller = peer.as_ref().map(RateKey::label);
        let cert = certified_node(&request);
        let r = request.into_inner();
        self.admit(false, peer, &r.from_node_id)?;
        let msg = IndirectPing {
            from: node_id("from_node_id", &r.from_node_id).map_err(|e| self.invalid(&e))?,
            domain: r.domain_id,
            target: node_id("target_node_id", &r.target_node_id).map_err(|e| self.invalid(&e))?,
            target_address: r.target_address,
            seq: r.seq,
            timeout: Duration::from_millis(u64::from(r.timeout_ms)).min(Duration::from_secs(30)),
            updates: records_from_pb(r.updates, "updates", &self.limits, now_ns())
                .map_err(|e| self.invalid(&e))?,
        };
        self.speaks_as_itself(cert.as_deref(), &msg.from, &msg.updates)?;
        let reply = self
            .handler
            .on_ping_req(msg, caller.as_deref())
            .await
            .map_err(Status::from)?;
        Ok(Response::new(Self::reply_to_pb(&reply)))
    }

    async fn gossip(
        &self,
        request: Request<mpb::GossipRequest>,
    ) -> Result<Response<mpb::GossipResponse>, Status> {
        let peer = rate_key(&request);
        let caller = peer.as_ref().map(RateKey::label);
        let cert = certified_node(&request);
        let r = request.into_inner();
        self.admit(false, peer, &r.from_node_id)?;
        let msg = Gossip {
            from: node_id("from_node_id", &r.from_node_id).map_err(|e| self.invalid(&e))?,
            domain: r.domain_id,
            updates: records_from_pb(r.updates, "updates", &self.limits, now_ns())
                .map_err(|e| self.invalid(&e))?,
        };
        self.speaks_as_itself(cert.as_deref(), &msg.from, &msg.updates)?;
        self.handler
            .on_gossip(msg, caller.as_deref())
            .map_err(Status::from)?;
        Ok(Response::new(mpb::GossipResponse {}))
    }
}

#[tonic::async_trait]
impl dpb::discovery_service_server::DiscoveryService for MembershipService {
    async fn gossip_node_info(
        &self,
        request: Request<dpb::NodeInfoGossipMessage>,
    ) -> Result<Response<dpb::NodeInfoGossipResponse>, Status> {
        let peer = rate_key(&request);
        let caller = peer.as_ref().map(RateKey::label);
        let cert = certified_node(&request);
        let r = request.into_inner();
        self.admit(false, peer, &r.sender_node_id)?;
        let empty = dpb::NodeInfoGossipResponse {
            message_id: r.message_id.clone(),
            timestamp: now_ns(),
            ..Default::default()
        };
        let local = self.handler.local_record();
        if r.sender_domain_id != local.domain {
            // iarnet answers other domains with an empty response; so does gsp,
            // after counting and logging the refusal.
            self.handler.count_refusal(&Refusal::ForeignDomain {
                peer: r.sender_domain_id,
                local: local.domain.clone(),
            });
            return Ok(Response::new(dpb::NodeInfoGossipResponse {
                gsp_domain: local.domain,
                ..empty
            }));
        }
        let from = node_id("sender_node_id", &r.sender_node_id).map_err(|e| self.invalid(&e))?;
        let records = records_from_pb(r.nodes, "nodes", &self.limits, now_ns())
            .map_err(|e| self.invalid(&e))?;
        self.speaks_as_itself(cert.as_deref(), &from, &records)?;
        let want = r
            .gsp_want
            .iter()
            .enumerate()
            .map(|(i, s)| node_id(&format!("gsp_want[{i}]"), s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.invalid(&e))?;
        let phase = match dpb::GspPushPullPhase::try_from(r.gsp_phase) {
            Ok(dpb::GspPushPullPhase::Hash) => Phase::Hash,
            Ok(dpb::GspPushPullPhase::Records) => Phase::Records,
            _ => Phase::Full,
        };
        let reply = self
            .handler
            .on_push_pull(
                PushPull {
                    from,
                    from_address: r.sender_address,
                    domain: r.sender_domain_id,
                    phase,
                    records,
                    table_hash: r.gsp_table_hash,
                    want,
                },
                caller.as_deref(),
            )
            .map_err(Status::from)?;
        Ok(Response::new(dpb::NodeInfoGossipResponse {
            nodes: records_to_pb(&reply.records),
            gsp_in_sync: reply.in_sync,
            gsp_digests: reply.digests.iter().map(digest_to_pb).collect(),
            ..empty
        }))
    }

    async fn query_resources(
        &self,
        request: Request<dpb::ResourceQueryRequest>,
    ) -> Result<Response<dpb::ResourceQueryResponse>, Status> {
        let peer = rate_key(&request);
        let cert = certified_node(&request);
        let r = request.into_inner();
        self.admit(true, peer, &r.requester_node_id)?;
        if let Ok(id) = crate::core::ids::NodeId::parse(&r.requester_node_id) {
            self.speaks_as_itself(cert.as_deref(), &id, &[])?;
        }
        let local = self.handler.local_record();
        if r.requester_domain_id != local.domain {
            // iarnet answers other domains with an empty final response.
            self.handler.count_refusal(&Refusal::ForeignDomain {
                peer: r.requester_domain_id,
                local: local.domain,
            });
            return Ok(Response::new(dpb::ResourceQueryResponse {
                query_id: r.query_id,
                timestamp: now_ns(),
                is_final: true,
                ..Default::default()
            }));
        }
        let q = super::extras::query_from_pb(r, &self.limits, DEFAULT_QUERY_TIMEOUT)
            .map_err(|e| self.invalid(&e))?;
        let id = q.id.clone();
        let answer = self.handler.on_query(q).await.map_err(Status::from)?;
        Ok(Response::new(super::extras::answer_to_pb(
            &answer,
            &id,
            &local.address,
            now_ns(),
        )))
    }

    async fn exchange_peer_list(
        &self,
        request: Request<dpb::PeerListExchangeRequest>,
    ) -> Result<Response<dpb::PeerListExchangeResponse>, Status> {
        let peer = rate_key(&request);
        let cert = certified_node(&request);
        let r = request.into_inner();
        self.admit(false, peer, &r.requester_node_id)?;
        if let Ok(id) = crate::core::ids::NodeId::parse(&r.requester_node_id) {
            self.speaks_as_itself(cert.as_deref(), &id, &[])?;
        }
        if r.known_peers.len() > self.limits.max_records {
            return Err(self.invalid(&InvalidRecord {
                field: "known_peers".into(),
                problem: format!(
                    "{} addresses, over the limit of {}",
                    r.known_peers.len(),
                    self.limits.max_records
                ),
            }));
        }
        let peers = match self.handler.on_peer_list(
            &r.requester_domain_id,
            &r.requester_address,
            r.known_peers,
        ) {
            Ok(p) => p,
            // iarnet answers other domains with an empty list.
            Err(Refusal::ForeignDomain { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(Response::new(dpb::PeerListExchangeResponse {
            known_peers: peers,
            timestamp: now_ns(),
        }))
    }

    async fn get_local_node_info(
        &self,
        _request: Request<dpb::GetLocalNodeInfoRequest>,
    ) -> Result<Response<dpb::GetLocalNodeInfoResponse>, Status> {
        let local = self.handler.local_record();
        let mut info = record_to_pb(&local, now_ns());
        info.gsp_inventory = self
            .handler
            .local_inventory()
            .as_ref()
            .map(super::extras::inventory_to_pb);
        Ok(Response::new(dpb::GetLocalNodeInfoResponse {
            node_info: Some(info),
        }))
    }
}
