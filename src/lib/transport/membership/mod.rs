//! Membership on the wire: the `gsp.membership.v1` probes, push-pull on iarnet's
//! `discovery.DiscoveryService/GossipNodeInfo`, and the seams that let the same
//! node logic run over gRPC or over the in-memory network of simulations.

pub mod convert;
pub mod extras;
pub mod grpc;
pub mod memory;
pub mod service;

use std::time::Duration;

use crate::core::{
    ids::NodeId,
    membership::messages::{Gossip, IndirectPing, Ping, PingReply, PushPull, PushPullReply},
    resources::{
        inventory::Inventory,
        query::{Query, QueryAnswer},
    },
};

/// Why a call to a peer failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The peer could not be reached.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The peer answered but does not speak gsp's membership protocol (an iarnet
    /// node): it is up, but cannot be probed.
    #[error("peer does not speak gsp membership")]
    NotGsp,
    /// The peer refused the call.
    #[error("refused: {0}")]
    Refused(String),
    /// The peer is in another domain (named) and answered nothing for that reason.
    #[error("the peer is in domain '{0}'")]
    ForeignDomain(String),
    /// The address reached this node itself (a seed list that includes the
    /// node, or a DNS name that resolves to it).
    #[error("the address is this node's own")]
    Myself,
}

/// How a refusal of a node's call to itself starts (see [`Refusal::Myself`]).
pub const SELF_CALL: &str = "the caller is this node itself";

/// Why this node refused a peer's call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The caller is in another domain.
    #[error("caller is in domain '{peer}', this node is in domain '{local}'")]
    ForeignDomain {
        /// The caller's domain.
        peer: String,
        /// Ours.
        local: String,
    },
    /// The message broke a limit or was malformed.
    #[error("invalid message: {0}")]
    Invalid(String),
    /// The probe was meant for another node (this address now belongs to this one).
    #[error("this is node {actual}, not {expected}")]
    WrongNode {
        /// The node the caller meant.
        expected: NodeId,
        /// This node.
        actual: NodeId,
    },
    /// This node is shutting down.
    #[error("node is shutting down")]
    ShuttingDown,
    /// The caller is this node itself.
    #[error("{SELF_CALL} ({0})")]
    Myself(NodeId),
    /// Too many requests of this kind are in flight (from this caller or in all).
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// The caller went over its per-peer call rate.
    #[error("rate limited: {0}")]
    RateLimited(String),
}

/// Client side: how a node calls its peers.
#[tonic::async_trait]
pub trait MembershipTransport: Send + Sync + 'static {
    /// Probes the node at `addr`.
    async fn ping(&self, addr: &str, msg: Ping, timeout: Duration) -> Result<PingReply, CallError>;
    /// Asks the node at `addr` to probe another.
    async fn ping_req(
        &self,
        addr: &str,
        msg: IndirectPing,
        timeout: Duration,
    ) -> Result<PingReply, CallError>;
    /// Pushes updates to the node at `addr`.
    async fn gossip(&self, addr: &str, msg: Gossip, timeout: Duration) -> Result<(), CallError>;
    /// One push-pull call to the node at `addr`.
    async fn push_pull(
        &self,
        addr: &str,
        msg: PushPull,
        timeout: Duration,
    ) -> Result<PushPullReply, CallError>;
    /// Forwards a resource query to the node at `addr`.
    async fn query(
        &self,
        addr: &str,
        q: Query,
        timeout: Duration,
    ) -> Result<QueryAnswer, CallError>;
    /// The record the node at `addr` publishes about itself (iarnet's
    /// `GetLocalNodeInfo`): how a node that does not speak gsp's probes says
    /// who it is.
    async fn local_record(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> Result<crate::core::membership::record::MemberRecord, CallError>;
    /// The hardware inventory of the node at `addr`.
    async fn inventory(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> Result<Option<Inventory>, CallError>;
}

/// Server side: what a node does with its peers' calls. `caller` is who
/// delivered a call as the transport knows it (a verified certificate's
/// identity, or the remote address), `None` where it knows nothing (the
/// in-memory transport): records of unknown nodes are charged to it.
#[tonic::async_trait]
pub trait MembershipHandler: Send + Sync + 'static {
    /// Answers a probe.
    ///
    /// # Errors
    /// The caller is in another domain, the probe was meant for another node, or
    /// this node is shutting down.
    fn on_ping(&self, msg: Ping, caller: Option<&str>) -> Result<PingReply, Refusal>;
    /// Probes a target for a peer and relays the outcome.
    ///
    /// # Errors
    /// The caller is in another domain, or this node is shutting down.
    async fn on_ping_req(
        &self,
        msg: IndirectPing,
        caller: Option<&str>,
    ) -> Result<PingReply, Refusal>;
    /// Takes pushed updates.
    ///
    /// # Errors
    /// The caller is in another domain.
    fn on_gossip(&self, msg: Gossip, caller: Option<&str>) -> Result<(), Refusal>;
    /// Answers one push-pull call.
    ///
    /// # Errors
    /// The caller is in another domain.
    fn on_push_pull(&self, msg: PushPull, caller: Option<&str>) -> Result<PushPullReply, Refusal>;
    /// iarnet's peer-list exchange: takes the caller's known addresses (as join
    /// candidates) and returns the addresses of the members that are up.
    ///
    /// # Errors
    /// The caller is in another domain.
    fn on_peer_list(
        &self,
        domain: &str,
        requester_address: &str,
        known: Vec<String>,
    ) -> Result<Vec<String>, Refusal>;
    /// Answers one hop of a resource query (and forwards it further).
    ///
    /// # Errors
    /// The caller is in another domain, the query is malformed, or too many queries
    /// are in flight.
    async fn on_query(&self, q: Query) -> Result<QueryAnswer, Refusal>;
    /// This node's own record.
    fn local_record(&self) -> crate::core::membership::record::MemberRecord;
    /// This node's hardware inventory, once read.
    fn local_inventory(&self) -> Option<Inventory>;
    /// Counts a call refused before reaching the handler (malformed, foreign domain).
    fn count_refusal(&self, refusal: &Refusal);
    /// Members up at `host` (an IP address as text): a host running several
    /// nodes may make that many times the per-peer call rate.
    fn members_at(&self, host: &str) -> usize;
    /// The name of member `id`, if it is listed.
    fn name_of(&self, id: &crate::core::ids::NodeId) -> Option<String>;
}
