//! iarnet's `discovery.DiscoveryService` calls: push-pull gossip, resource
//! queries, peer-list exchange and the local node's info.

use tonic::{Request, Response, Status};

use super::{DEFAULT_QUERY_TIMEOUT, MembershipService, RateKey, now_ns, rate_key};
use crate::{
    core::membership::messages::{Phase, PushPull},
    transport::{
        membership::{
            Refusal,
            convert::{
                InvalidRecord, digest_to_pb, node_id, record_to_pb, records_from_pb, records_to_pb,
            },
        },
        pb::discovery as dpb,
        tls::roles::certified_node,
    },
};

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
        let q = crate::transport::membership::extras::query_from_pb(
            r,
            &self.limits,
            DEFAULT_QUERY_TIMEOUT,
        )
        .map_err(|e| self.invalid(&e))?;
        let id = q.id.clone();
        let answer = self.handler.on_query(q).await.map_err(Status::from)?;
        Ok(Response::new(
            crate::transport::membership::extras::answer_to_pb(
                &answer,
                &id,
                &local.address,
                now_ns(),
            ),
        ))
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
            .map(crate::transport::membership::extras::inventory_to_pb);
        Ok(Response::new(dpb::GetLocalNodeInfoResponse {
            node_info: Some(info),
        }))
    }
}
