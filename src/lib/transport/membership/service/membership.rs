//! The `gsp.membership.v1.Membership` calls: ping, indirect ping and gossip,
//! each rate-limited, decoded and checked before the handler sees it.

use std::time::Duration;

use tonic::{Request, Response, Status};

use super::{MembershipService, RateKey, now_ns, rate_key};
use crate::{
    core::membership::messages::{Gossip, IndirectPing, Ping},
    transport::{
        membership::convert::{node_id, records_from_pb},
        pb::membership::v1 as mpb,
        tls::roles::certified_node,
    },
};

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
            want_record: r.want_record,
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
