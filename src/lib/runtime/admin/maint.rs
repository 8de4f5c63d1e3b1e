//! `GetMaintenance` / `SetMaintenance`: answered by this node, or routed to the
//! member named by `node_id` (one hop; the target checks the token itself).
//! The labels calls (`admin/labels.rs`) route the same way.

use std::time::Duration;

use tonic::{Request, Response, Status};

use crate::runtime::{
    maintenance::{MaintError, MaintenanceControl},
    membership::MembershipAgent,
};
use crate::{
    core::{
        maintenance::{ChangeRequest, MaintStatus, Maintenance, audit::DEFAULT_AUDIT_CAPACITY},
        membership::record::MemberRecord,
    },
    transport::{
        auth::{Access, AdminAuth, FORWARDED_FOR},
        membership::convert::{maintenance_from_pb, maintenance_to_pb},
        pb::admin::v1 as pb,
        pool::ChannelPool,
    },
};

/// Marks a request a node routed; it is never routed again.
pub(super) const ROUTED: &str = "x-gsp-routed";
/// How a routed target's refusal of the caller's credentials starts.
pub const ROUTED_REFUSAL: &str = "member ";
/// Time a routed request may take when the caller sets none.
const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a routed request may take.
const MAX_ROUTE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the maintenance and labels calls need.
#[derive(Debug, Clone)]
pub struct MaintApi {
    /// The local state.
    pub control: MaintenanceControl,
    /// The local labels.
    pub labels: crate::runtime::labels::LabelsControl,
    /// Membership, to find routed targets.
    pub agent: MembershipAgent,
    /// Connections to other members.
    pub pool: ChannelPool,
    /// Who may change things.
    pub auth: AdminAuth,
}

/// Where a request goes.
pub(super) enum Target {
    Local,
    Remote { id: String, address: String },
}

impl MaintApi {
    /// `GetMaintenance`.
    ///
    /// # Errors
    /// Auth refused, unknown or unreachable target.
    pub async fn get(
        &self,
        request: Request<pb::GetMaintenanceRequest>,
    ) -> Result<Response<pb::MaintenanceReply>, Status> {
        let actor = self.auth.check(&request, Access::Read)?;
        let target = self.target(&request, &request.get_ref().node_id)?;
        let timeout = route_timeout(request.get_ref().timeout_ms);
        match target {
            Target::Local => {
                let (status, previous) = self.control.status_and_previous();
                Ok(Response::new(self.reply(&status, previous, false)))
            }
            Target::Remote { id, address } => {
                let mut fwd = forwarded(&request, &actor, timeout)?;
                fwd.get_mut().node_id.clone_from(&id);
                let mut client = self.client(&id, &address)?;
                finish(&id, &address, timeout, client.get_maintenance(fwd)).await
            }
        }
    }

    /// `SetMaintenance`.
    ///
    /// # Errors
    /// Auth refused, invalid state or reason, unknown or unreachable target,
    /// or the state could not be persisted.
    pub async fn set(
        &self,
        request: Request<pb::SetMaintenanceRequest>,
    ) -> Result<Response<pb::MaintenanceReply>, Status> {
        let state = maintenance_from_pb(request.get_ref().state).ok_or_else(|| {
            Status::invalid_argument(format!(
                "unknown maintenance state {}; expected 0 (normal), 1 (maintenance) or 2 (disabled)",
                request.get_ref().state
            ))
        })?;
        let target = self.target(&request, &request.get_ref().node_id)?;
        let actor = match (&target, self.auth.has_token()) {
            // A node without a token lets the target judge the caller's token.
            (Target::Remote { .. }, false) => self.auth.check(&request, Access::Read)?,
            _ => self.auth.check(&request, Access::Write)?,
        };
        let timeout = route_timeout(request.get_ref().timeout_ms);
        match target {
            Target::Local => {
                let req = request.into_inner();
                let t = self
                    .control
                    .set(ChangeRequest {
                        state,
                        reason: req.reason,
                        actor,
                    })
                    .await
                    .map_err(|e| match e {
                        MaintError::Invalid(e) => Status::invalid_argument(e.to_string()),
                        MaintError::Persist(e) => Status::internal(e.to_string()),
                    })?;
                Ok(Response::new(self.reply(&t.status, t.previous, t.changed)))
            }
            Target::Remote { id, address } => {
                let mut fwd = forwarded(&request, &actor, timeout)?;
                fwd.get_mut().node_id.clone_from(&id);
                let mut client = self.client(&id, &address)?;
                finish(&id, &address, timeout, client.set_maintenance(fwd)).await
            }
        }
    }

    /// `GetAudit`.
    ///
    /// # Errors
    /// Auth refused, unknown or unreachable target.
    pub async fn audit(
        &self,
        request: Request<pb::GetAuditRequest>,
    ) -> Result<Response<pb::AuditReply>, Status> {
        let actor = self.auth.check(&request, Access::Read)?;
        let target = self.target(&request, &request.get_ref().node_id)?;
        let timeout = route_timeout(request.get_ref().timeout_ms);
        match target {
            Target::Local => {
                let req = request.get_ref();
                let limit = match usize::try_from(req.limit).unwrap_or(usize::MAX) {
                    0 => DEFAULT_AUDIT_CAPACITY,
                    n => n.min(DEFAULT_AUDIT_CAPACITY),
                };
                let (entries, dropped) = self.control.audit(DEFAULT_AUDIT_CAPACITY);
                let entries = entries
                    .iter()
                    .filter(|e| e.changed_unix_ns >= req.since_unix_ns)
                    .take(limit)
                    .map(|e| pb::AuditEntry {
                        previous_state: maintenance_to_pb(e.previous_state).into(),
                        state: maintenance_to_pb(e.state).into(),
                        reason: e.reason.clone(),
                        actor: e.actor.clone(),
                        changed_unix_ns: e.changed_unix_ns,
                    })
                    .collect();
                let name = self.agent.with_state(|m| m.local().name.clone());
                Ok(Response::new(pb::AuditReply {
                    node_id: self.agent.local_id().to_string(),
                    node_name: name,
                    entries,
                    dropped,
                    capacity: u32::try_from(DEFAULT_AUDIT_CAPACITY).unwrap_or(u32::MAX),
                }))
            }
            Target::Remote { id, address } => {
                let mut fwd = forwarded(&request, &actor, timeout)?;
                fwd.get_mut().node_id.clone_from(&id);
                let mut client = self.client(&id, &address)?;
                finish(&id, &address, timeout, client.get_audit(fwd)).await
            }
        }
    }

    fn reply(&self, s: &MaintStatus, previous: Maintenance, changed: bool) -> pb::MaintenanceReply {
        let name = self.agent.with_state(|m| m.local().name.clone());
        pb::MaintenanceReply {
            node_id: self.agent.local_id().to_string(),
            node_name: name,
            state: maintenance_to_pb(s.state).into(),
            previous_state: maintenance_to_pb(previous).into(),
            reason: s.reason.clone(),
            actor: s.actor.clone(),
            changed_unix_ns: s.changed_unix_ns,
            changed,
        }
    }

    /// Resolves `node`: empty or this node's id or name is local; otherwise a
    /// member's id, or a name only one member has.
    pub(super) fn target<T>(&self, request: &Request<T>, node: &str) -> Result<Target, Status> {
        let node = node.trim();
        let local = self.agent.local_id().to_string();
        let (local_name, matches): (String, Vec<MemberRecord>) = self.agent.with_state(|m| {
            let by_id: Vec<MemberRecord> = m
                .records()
                .filter(|r| r.id.as_str() == node)
                .cloned()
                .collect();
            let found = if by_id.is_empty() {
                m.records().filter(|r| r.name == node).cloned().collect()
            } else {
                by_id
            };
            (m.local().name.clone(), found)
        });
        if node.is_empty() || node == local || (node == local_name && matches.len() <= 1) {
            return Ok(Target::Local);
        }
        if request.metadata().contains_key(ROUTED) {
            return Err(Status::failed_precondition(format!(
                "a request routed to {node} reached node {local}; membership is changing, retry"
            )));
        }
        let r = match matches.as_slice() {
            [] => {
                return Err(Status::not_found(format!(
                    "no member {node:?} is known to node {local} (`gsp peers` lists ids and names)"
                )));
            }
            [one] => one,
            many => {
                let ids: Vec<String> = many.iter().map(|r| r.id.to_string()).collect();
                return Err(Status::invalid_argument(format!(
                    "{} members are named {node:?}; pass an id: {}",
                    many.len(),
                    ids.join(", ")
                )));
            }
        };
        if r.id.as_str() == local {
            return Ok(Target::Local);
        }
        if !r.state.is_up() {
            return Err(Status::unavailable(format!(
                "member {} ({}) is {}; it cannot be reached",
                r.id, r.name, r.state
            )));
        }
        Ok(Target::Remote {
            id: r.id.to_string(),
            address: r.address.clone(),
        })
    }

    pub(super) fn client(
        &self,
        id: &str,
        address: &str,
    ) -> Result<pb::admin_client::AdminClient<tonic::transport::Channel>, Status> {
        let channel = self.pool.get(address).map_err(|e| {
            Status::unavailable(format!("cannot reach member {id} at {address}: {e}"))
        })?;
        Ok(pb::admin_client::AdminClient::new(channel))
    }
}

pub(super) fn route_timeout(ms: u32) -> Duration {
    if ms == 0 {
        DEFAULT_ROUTE_TIMEOUT
    } else {
        Duration::from_millis(u64::from(ms)).min(MAX_ROUTE_TIMEOUT)
    }
}

/// The request to send on: same body and token, marked routed, naming the caller.
pub(super) fn forwarded<T: Clone>(
    request: &Request<T>,
    actor: &str,
    timeout: Duration,
) -> Result<Request<T>, Status> {
    let mut fwd = Request::new(request.get_ref().clone());
    if let Some(auth) = request.metadata().get("authorization") {
        fwd.metadata_mut().insert("authorization", auth.clone());
    }
    let actor: String = actor
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .collect();
    let value = actor
        .parse()
        .map_err(|_| Status::internal("cannot encode the caller's name"))?;
    fwd.metadata_mut().insert(FORWARDED_FOR, value);
    fwd.metadata_mut()
        .insert(ROUTED, tonic::metadata::MetadataValue::from_static("1"));
    fwd.set_timeout(timeout);
    Ok(fwd)
}

/// Waits for a routed call's answer; a target that cannot be reached or does
/// not answer in time is named.
pub(super) async fn finish<R>(
    id: &str,
    address: &str,
    timeout: Duration,
    call: impl Future<Output = Result<Response<R>, Status>>,
) -> Result<Response<R>, Status> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(r)) => Ok(Response::new(r.into_inner())),
        Ok(Err(s)) if s.code() == tonic::Code::Unavailable => Err(Status::unavailable(format!(
            "cannot reach member {id} at {address}: {}",
            s.message()
        ))),
        // Said by the target, not by this node: named, so the caller knows
        // which node refused (ROUTED_REFUSAL marks the form).
        Ok(Err(s))
            if matches!(
                s.code(),
                tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
            ) =>
        {
            Err(Status::new(
                s.code(),
                format!("{ROUTED_REFUSAL}{id} at {address} refused: {}", s.message()),
            ))
        }
        Ok(Err(s)) => Err(s),
        Err(_) => Err(Status::deadline_exceeded(format!(
            "member {id} at {address} did not answer within {timeout:?}"
        ))),
    }
}
