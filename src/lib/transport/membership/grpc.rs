//! The membership transport over gRPC: probes on `gsp.membership.v1`, push-pull
//! on `discovery.DiscoveryService/GossipNodeInfo`, all on the peer's pooled channel.

use std::time::Duration;

use tonic::{Code, Status};

use super::{
    CallError, MembershipTransport,
    convert::{RecordLimits, digests_from_pb, records_from_pb, records_to_pb},
};
use crate::{
    core::{
        membership::messages::{
            Gossip, IndirectPing, Phase, Ping, PingReply, PushPull, PushPullReply,
        },
        resources::{
            inventory::Inventory,
            query::{Query, QueryAnswer},
        },
    },
    transport::{
        pb::{discovery as dpb, membership::v1 as mpb},
        pool::ChannelPool,
    },
};

/// Largest membership message accepted or sent: 4096 records, or the
/// digests of a 65,536-member table, fit.
pub const MAX_MESSAGE_BYTES: usize = 8 << 20;

/// Calls peers over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcMembership {
    pool: ChannelPool,
    limits: RecordLimits,
}

impl GrpcMembership {
    /// Calls through `pool`'s channels.
    pub fn new(pool: ChannelPool) -> Self {
        Self {
            pool,
            limits: RecordLimits::default(),
        }
    }

    fn membership_client(
        &self,
        addr: &str,
    ) -> Result<mpb::membership_client::MembershipClient<tonic::transport::Channel>, CallError>
    {
        let ch = self
            .pool
            .get(addr)
            .map_err(|e| CallError::Unreachable(e.to_string()))?;
        Ok(mpb::membership_client::MembershipClient::new(ch)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    fn discovery_client(
        &self,
        addr: &str,
    ) -> Result<
        dpb::discovery_service_client::DiscoveryServiceClient<tonic::transport::Channel>,
        CallError,
    > {
        let ch = self
            .pool
            .get(addr)
            .map_err(|e| CallError::Unreachable(e.to_string()))?;
        Ok(
            dpb::discovery_service_client::DiscoveryServiceClient::new(ch)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
    }

    fn reply_from_pb(&self, r: mpb::PingResponse) -> Result<PingReply, CallError> {
        let from = super::convert::node_id("from_node_id", &r.from_node_id)
            .map_err(|e| CallError::Refused(format!("bad reply: {e}")))?;
        let updates = records_from_pb(r.updates, "updates", &self.limits, now_ns())
            .map_err(|e| CallError::Refused(format!("bad reply: {e}")))?;
        Ok(PingReply {
            from,
            seq: r.seq,
            ack: r.ack,
            updates,
        })
    }
}

use crate::clock::unix_ns as now_ns;

fn with_timeout<T>(msg: T, timeout: Duration) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.set_timeout(timeout);
    req
}

/// Maps a failed call's status (the in-memory transport maps its refusals
/// through here too, so that simulations see what the wire gives).
pub(super) fn call_error(status: &Status, timeout: Duration) -> CallError {
    match status.code() {
        Code::DeadlineExceeded | Code::Cancelled => CallError::Timeout(timeout),
        Code::Unavailable | Code::Unknown => CallError::Unreachable(status.message().to_owned()),
        Code::Unimplemented => CallError::NotGsp,
        Code::FailedPrecondition if status.message().starts_with(super::SELF_CALL) => {
            CallError::Myself
        }
        _ => CallError::Refused(format!("{:?}: {}", status.code(), status.message())),
    }
}

async fn timed<T>(
    timeout: Duration,
    fut: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(status)) => Err(call_error(&status, timeout)),
        Err(_) => Err(CallError::Timeout(timeout)),
    }
}

#[tonic::async_trait]
impl MembershipTransport for GrpcMembership {
    async fn ping(&self, addr: &str, msg: Ping, timeout: Duration) -> Result<PingReply, CallError> {
        let mut client = self.membership_client(addr)?;
        let req = mpb::PingRequest {
            from_node_id: msg.from.to_string(),
            domain_id: msg.domain,
            target_node_id: msg.target.to_string(),
            seq: msg.seq,
            updates: records_to_pb(&msg.updates),
            want_record: msg.want_record,
        };
        let r = timed(timeout, client.ping(with_timeout(req, timeout))).await?;
        self.reply_from_pb(r)
    }

    async fn ping_req(
        &self,
        addr: &str,
        msg: IndirectPing,
        timeout: Duration,
    ) -> Result<PingReply, CallError> {
        let mut client = self.membership_client(addr)?;
        let req = mpb::IndirectPingRequest {
            from_node_id: msg.from.to_string(),
            domain_id: msg.domain,
            target_node_id: msg.target.to_string(),
            target_address: msg.target_address,
            seq: msg.seq,
            timeout_ms: u32::try_from(msg.timeout.as_millis()).unwrap_or(u32::MAX),
            updates: records_to_pb(&msg.updates),
        };
        let r = timed(timeout, client.ping_req(with_timeout(req, timeout))).await?;
        self.reply_from_pb(r)
    }

    async fn gossip(&self, addr: &str, msg: Gossip, timeout: Duration) -> Result<(), CallError> {
        let mut client = self.membership_client(addr)?;
        let req = mpb::GossipRequest {
            from_node_id: msg.from.to_string(),
            domain_id: msg.domain,
            updates: records_to_pb(&msg.updates),
        };
        timed(timeout, client.gossip(with_timeout(req, timeout)))
            .await
            .map(|_| ())
    }

    async fn push_pull(
        &self,
        addr: &str,
        msg: PushPull,
        timeout: Duration,
    ) -> Result<PushPullReply, CallError> {
        let mut client = self.discovery_client(addr)?;
        let domain = msg.domain.clone();
        let req = dpb::NodeInfoGossipMessage {
            sender_node_id: msg.from.to_string(),
            sender_address: msg.from_address,
            sender_domain_id: msg.domain,
            nodes: records_to_pb(&msg.records),
            message_id: uuid::Uuid::now_v7().to_string(),
            timestamp: now_ns(),
            // iarnet ignores messages whose ttl is not positive.
            ttl: 1,
            max_hops: 1,
            gsp_phase: match msg.phase {
                Phase::Full => dpb::GspPushPullPhase::Full,
                Phase::Hash => dpb::GspPushPullPhase::Hash,
                Phase::Records => dpb::GspPushPullPhase::Records,
            }
            .into(),
            gsp_table_hash: msg.table_hash,
            gsp_want: msg.want.iter().map(ToString::to_string).collect(),
        };
        let r = timed(timeout, client.gossip_node_info(with_timeout(req, timeout))).await?;
        if !r.gsp_domain.is_empty() && r.gsp_domain != domain {
            return Err(CallError::ForeignDomain(r.gsp_domain));
        }
        let bad = |e: super::convert::InvalidRecord| CallError::Refused(format!("bad reply: {e}"));
        Ok(PushPullReply {
            records: records_from_pb(r.nodes, "nodes", &self.limits, now_ns()).map_err(bad)?,
            in_sync: r.gsp_in_sync,
            digests: digests_from_pb(r.gsp_digests, &self.limits).map_err(bad)?,
        })
    }

    async fn query(
        &self,
        addr: &str,
        q: Query,
        timeout: Duration,
    ) -> Result<QueryAnswer, CallError> {
        let mut client = self.discovery_client(addr)?;
        let req = super::extras::query_to_pb(&q, now_ns());
        let r = timed(timeout, client.query_resources(with_timeout(req, timeout))).await?;
        super::extras::answer_from_pb(r, &self.limits, now_ns())
            .map_err(|e| CallError::Refused(format!("bad reply: {e}")))
    }

    async fn local_record(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> Result<crate::core::membership::record::MemberRecord, CallError> {
        let mut client = self.discovery_client(addr)?;
        let r = timed(
            timeout,
            client.get_local_node_info(with_timeout(dpb::GetLocalNodeInfoRequest {}, timeout)),
        )
        .await?;
        let info = r
            .node_info
            .ok_or_else(|| CallError::Refused("answered without its record".into()))?;
        super::convert::record_from_pb(info, "node_info", &self.limits, now_ns())
            .map_err(|e| CallError::Refused(format!("bad reply: {e}")))
    }

    async fn inventory(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> Result<Option<Inventory>, CallError> {
        let mut client = self.discovery_client(addr)?;
        let r = timed(
            timeout,
            client.get_local_node_info(with_timeout(dpb::GetLocalNodeInfoRequest {}, timeout)),
        )
        .await?;
        Ok(r.node_info
            .and_then(|i| i.gsp_inventory)
            .map(super::extras::inventory_from_pb))
    }
}
