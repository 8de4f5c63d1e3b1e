//! `ForceLeave` (Serf's force-leave): applied here, then asked of every member
//! up here, each of which applies it to its own table (gossip carries the left
//! claim to the rest; a prune is not gossiped, so it is asked of everyone).

use std::time::Duration;

use tokio::task::JoinSet;
use tonic::{Request, Response, Status};
use tracing::info;

use crate::runtime::{
    admin::maint::{MaintApi, ROUTED, forwarded, route_timeout},
    membership::now,
};
use crate::{
    core::{
        ids::NodeId,
        membership::{force::ForceLeaveError, record::MemberRecord},
    },
    transport::{auth::Access, pb::admin::v1 as pb},
};

/// Members asked at once.
const FAN_OUT: usize = 32;

impl MaintApi {
    /// `ForceLeave`.
    ///
    /// # Errors
    /// Auth refused; no such member (NOT_FOUND); this node or an ambiguous
    /// name (INVALID_ARGUMENT); the member is up here and `force` is not set
    /// (FAILED_PRECONDITION).
    pub async fn force_leave(
        &self,
        request: Request<pb::ForceLeaveRequest>,
    ) -> Result<Response<pb::ForceLeaveReply>, Status> {
        let actor = self.auth.check(&request, Access::Write)?;
        let routed = request.metadata().contains_key(ROUTED);
        let timeout = route_timeout(request.get_ref().timeout_ms);
        let req = request.get_ref();
        let member = self.resolve_any(&req.node)?;
        let (prune, force) = (req.prune, req.force);
        let done = self
            .agent
            .with_state(|m| m.force_leave(&member.id, prune, force, now()))
            .map_err(|e| match e {
                ForceLeaveError::Unknown(_) => Status::not_found(e.to_string()),
                ForceLeaveError::Local(_) => Status::invalid_argument(e.to_string()),
                ForceLeaveError::Up { .. } => Status::failed_precondition(e.to_string()),
            })?;
        info!(
            target: "audit",
            member_id = %member.id,
            member_name = %member.name,
            previous_state = done.previous.as_str(),
            prune,
            force,
            actor = %actor,
            "member forced to leave"
        );
        let members = if routed {
            Vec::new()
        } else {
            let mut fwd = forwarded(&request, &actor, timeout)?;
            fwd.get_mut().node = member.id.to_string();
            self.ask_members(&member.id, &fwd, timeout).await
        };
        Ok(Response::new(pb::ForceLeaveReply {
            node_id: member.id.to_string(),
            node_name: member.name.clone(),
            previous_state: done.previous.as_str().to_owned(),
            removed: done.removed,
            members,
        }))
    }

    /// `node` as a member in any state: its id, or a name only one member has.
    fn resolve_any(&self, node: &str) -> Result<MemberRecord, Status> {
        let node = node.trim();
        if node.is_empty() {
            return Err(Status::invalid_argument("name the member to force out"));
        }
        let local = self.agent.with_state(|m| m.local().name.clone());
        let found: Vec<MemberRecord> = self.agent.with_state(|m| {
            let by_id: Vec<MemberRecord> = m
                .records()
                .filter(|r| r.id.as_str() == node)
                .cloned()
                .collect();
            if by_id.is_empty() {
                m.records().filter(|r| r.name == node).cloned().collect()
            } else {
                by_id
            }
        });
        match found.as_slice() {
            [] => Err(Status::not_found(format!(
                "no member {node:?} is listed on node {local} (`gsp peers` lists ids and names; a removed member needs no force-leave)"
            ))),
            [one] => Ok(one.clone()),
            many => {
                let ids: Vec<String> = many.iter().map(|r| r.id.to_string()).collect();
                Err(Status::invalid_argument(format!(
                    "{} members are named {node:?}; pass an id: {}",
                    many.len(),
                    ids.join(", ")
                )))
            }
        }
    }

    /// Asks every member up here but `target` to apply `fwd`, [`FAN_OUT`] at a time.
    async fn ask_members(
        &self,
        target: &NodeId,
        fwd: &Request<pb::ForceLeaveRequest>,
        timeout: Duration,
    ) -> Vec<pb::ForceLeaveOutcome> {
        let local = self.agent.local_id().clone();
        let peers: Vec<(String, String, String)> = self.agent.with_state(|m| {
            m.records()
                .filter(|r| r.state.is_up() && r.id != local && r.id != *target)
                .map(|r| (r.id.to_string(), r.name.clone(), r.address.clone()))
                .collect()
        });
        let mut out = Vec::with_capacity(peers.len());
        for batch in peers.chunks(FAN_OUT) {
            let mut set = JoinSet::new();
            for (id, name, address) in batch.iter().cloned() {
                let client = self.client(&id, &address);
                let mut req = Request::new(fwd.get_ref().clone());
                *req.metadata_mut() = fwd.metadata().clone();
                req.set_timeout(timeout);
                set.spawn(async move {
                    let (outcome, error) = match client {
                        Err(s) => ("unreachable", s.message().to_owned()),
                        Ok(mut c) => {
                            match tokio::time::timeout(timeout, c.force_leave(req)).await {
                                Err(_) => ("unreachable", format!("no answer within {timeout:?}")),
                                Ok(Ok(r)) => {
                                    let r = r.into_inner();
                                    if r.previous_state == "left" && !r.removed {
                                        ("unchanged", String::new())
                                    } else {
                                        ("applied", String::new())
                                    }
                                }
                                Ok(Err(s)) => classify(&s),
                            }
                        }
                    };
                    pb::ForceLeaveOutcome {
                        node_id: id,
                        node_name: name,
                        outcome: outcome.to_owned(),
                        error,
                    }
                });
            }
            while let Some(joined) = set.join_next().await {
                if let Ok(o) = joined {
                    out.push(o);
                }
            }
        }
        out.sort_by(|a, b| a.node_name.cmp(&b.node_name));
        out
    }
}

/// What a member's refusal means for the outcome.
fn classify(s: &Status) -> (&'static str, String) {
    match s.code() {
        // Not listed there: removed already, or never heard of.
        tonic::Code::NotFound => ("unchanged", String::new()),
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
            ("unreachable", s.message().to_owned())
        }
        _ => ("refused", s.message().to_owned()),
    }
}
