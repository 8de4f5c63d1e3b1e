//! The admin service (`gsp.admin.v1`): what the CLI's client commands call.

pub mod broadcast;
mod force;
mod labels;
pub mod maint;

use std::{sync::Arc, time::Duration};

use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::{
    admin::maint::MaintApi,
    broadcast::BroadcastEngine,
    data_dir::DataDirHealth,
    membership::{MembershipAgent, now},
    stream_slots::{Slotted, StreamSlots},
};
use crate::{
    core::{
        maintenance::audit::AuditEntry,
        membership::{
            MemberView,
            events::{EventKind, MembershipEvent},
        },
    },
    transport::{
        auth::Access,
        membership::{
            convert::{RecordLimits, record_to_pb},
            extras::{inventory_to_pb, request_from_pb},
        },
        pb::admin::v1 as pb,
    },
};

/// Events buffered per `Watch` stream before the sender waits on the client.
const WATCH_QUEUE: usize = 256;

/// Inventory fetches `ListMembers { detailed }` runs at once.
const INVENTORY_CONCURRENCY: usize = 32;
/// Longest a query may run.
const MAX_QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// The admin service of one node.
#[derive(Debug, Clone)]
pub struct AdminService {
    agent: MembershipAgent,
    engine: BroadcastEngine,
    maint: MaintApi,
    shutdown: CancellationToken,
    query_timeout: Duration,
    /// What `ListMembers` says about this node's exposure, if anything.
    security_warning: Option<String>,
    /// Bounds `Watch` and `WatchMessages` streams.
    streams: StreamSlots,
    /// Whether the node can write its data dir (`ListMembers` says when not).
    data_dir: Arc<DataDirHealth>,
}

impl AdminService {
    /// Serves `agent`'s state, `engine`'s broadcasts and `maint`'s state,
    /// checking callers with `maint.auth`; streams end when `shutdown` fires;
    /// queries without a timeout get `query_timeout`.
    pub fn new(
        agent: MembershipAgent,
        engine: BroadcastEngine,
        maint: MaintApi,
        shutdown: CancellationToken,
        query_timeout: Duration,
    ) -> Self {
        Self {
            agent,
            engine,
            maint,
            shutdown,
            query_timeout,
            security_warning: None,
            streams: StreamSlots::default(),
            data_dir: Arc::default(),
        }
    }

    /// Reports `health` in `ListMembers`.
    #[must_use]
    pub fn with_data_dir_health(mut self, health: Arc<DataDirHealth>) -> Self {
        self.data_dir = health;
        self
    }

    /// Counts its watch streams in `slots` (shared with the other services
    /// that hold streams open).
    #[must_use]
    pub fn with_stream_slots(mut self, slots: StreamSlots) -> Self {
        self.streams = slots;
        self
    }

    /// Sets what `ListMembers` tells clients about this node's exposure (see
    /// [`super::posture::plaintext_warning`]).
    #[must_use]
    pub fn with_security_warning(mut self, warning: Option<String>) -> Self {
        self.security_warning = warning;
        self
    }

    /// Fetches the inventory of every listed member that is up, at most
    /// [`INVENTORY_CONCURRENCY`] at a time; members that do not answer in time keep none.
    async fn attach_inventories(&self, members: &mut [pb::Member]) {
        let timeout = Duration::from_secs(2);
        let mut pending: Vec<(usize, String)> = members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.info.as_ref().map(|info| (i, info)))
            .filter(|(_, info)| info.gsp_state == 1 || info.gsp_state == 2)
            .map(|(i, info)| (i, info.address.clone()))
            .collect();
        while !pending.is_empty() {
            let batch: Vec<_> = pending
                .drain(..pending.len().min(INVENTORY_CONCURRENCY))
                .collect();
            let mut set = tokio::task::JoinSet::new();
            for (i, addr) in batch {
                let agent = self.agent.clone();
                set.spawn(async move { (i, agent.inventory_of(&addr, timeout).await) });
            }
            while let Some(joined) = set.join_next().await {
                if let Ok((i, Ok(Some(inv)))) = joined
                    && let Some(info) = members[i].info.as_mut()
                {
                    info.gsp_inventory = Some(inventory_to_pb(&inv));
                }
            }
        }
    }

    /// The tonic server; requests up to `max_request_bytes` (a broadcast
    /// payload plus room for the rest).
    pub fn into_server(self, max_request_bytes: usize) -> pb::admin_server::AdminServer<Self> {
        pb::admin_server::AdminServer::new(self)
            .max_decoding_message_size(max_request_bytes)
            .max_encoding_message_size(max_request_bytes)
    }
}

/// The wire form of a listed member.
pub fn member_to_pb(m: &MemberView) -> pb::Member {
    pb::Member {
        info: Some(record_to_pb(&m.record, m.last_seen_unix_ns)),
        local: m.local,
        in_state_ms: u64::try_from(m.in_state_for.as_millis()).unwrap_or(u64::MAX),
    }
}

/// The wire form of an event.
pub fn event_to_pb(e: &MembershipEvent) -> pb::Event {
    pb::Event {
        kind: e.kind.as_str().to_owned(),
        node_id: e.id.to_string(),
        node_name: e.name.clone(),
        address: e.address.clone(),
        state: e.state.as_str().to_owned(),
        incarnation: e.version.incarnation,
        version: e.version.counter,
        time_unix_ns: e.at_unix_ns,
        missed: 0,
        maintenance: e.maintenance.as_str().to_owned(),
        ..pb::Event::default()
    }
}

/// The event for a change of the answering node's own maintenance state.
fn audit_to_pb(a: &AuditEntry, agent: &MembershipAgent) -> pb::Event {
    let local = agent.with_state(|s| s.local().clone());
    pb::Event {
        node_id: a.node_id.clone(),
        maintenance: a.state.as_str().to_owned(),
        previous_maintenance: a.previous_state.as_str().to_owned(),
        reason: a.reason.clone(),
        actor: a.actor.clone(),
        ..event_to_pb(&MembershipEvent::new(
            EventKind::Maintenance,
            &local,
            a.changed_unix_ns,
        ))
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn list_members(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        self.maint.auth.check(&request, Access::Read)?;
        let detailed = request.into_inner().detailed;
        let now = now();
        let (members, local) = self
            .agent
            .with_state(|s| (s.members(now), s.local().id.to_string()));
        let mut members: Vec<pb::Member> = members.iter().map(member_to_pb).collect();
        if detailed {
            self.attach_inventories(&mut members).await;
        }
        Ok(Response::new(pb::ListMembersResponse {
            members,
            local_node_id: local,
            security_warning: self.security_warning.clone().unwrap_or_default(),
            data_dir_error: self.data_dir.failure().unwrap_or_default(),
        }))
    }

    async fn query(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        self.maint.auth.check(&request, Access::Read)?;
        let r = request.into_inner();
        let resources = request_from_pb(
            r.resources.as_ref(),
            r.tags.as_ref(),
            r.labels,
            &RecordLimits::default(),
        )
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let timeout = if r.timeout_ms == 0 {
            self.query_timeout
        } else {
            Duration::from_millis(u64::from(r.timeout_ms)).min(MAX_QUERY_TIMEOUT)
        };
        let outcome = self
            .agent
            .query(resources, r.max_hops, timeout)
            .await
            .map_err(Status::from)?;
        let local = self.agent.local_id().clone();
        let total = outcome.answer.nodes.len();
        let limit = if r.limit == 0 {
            usize::MAX
        } else {
            r.limit as usize
        };
        let nodes = outcome
            .answer
            .nodes
            .iter()
            .take(limit)
            .map(|n| pb::Member {
                info: Some(record_to_pb(n, n.updated_unix_ns)),
                local: n.id == local,
                in_state_ms: 0,
            })
            .collect();
        Ok(Response::new(pb::QueryResponse {
            query_id: outcome.id,
            nodes,
            hops_used: outcome.answer.hops_used,
            max_hops: outcome.max_hops,
            total: u32::try_from(total).unwrap_or(u32::MAX),
        }))
    }

    type WatchStream = Slotted<ReceiverStream<Result<pb::Event, Status>>>;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.maint.auth.check(&request, Access::Read)?;
        let slot = self.streams.admit(&request)?;
        let mut events = self.agent.subscribe();
        let mut audit = self.maint.control.subscribe();
        let agent = self.agent.clone();
        let local = self.agent.local_id().clone();
        let (tx, rx) = mpsc::channel(WATCH_QUEUE);
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                let item = tokio::select! {
                    () = shutdown.cancelled() => {
                        let _ = tx.send(Err(Status::unavailable("node is shutting down"))).await;
                        return;
                    }
                    () = tx.closed() => return,
                    e = events.recv() => e.map(Ok),
                    a = audit.recv() => a.map(Err),
                };
                let msg = match item {
                    // The audit event tells this node's own change, with who and why.
                    Ok(Ok(e)) if e.kind == EventKind::Maintenance && e.id == local => continue,
                    Ok(Ok(e)) => event_to_pb(&e),
                    Ok(Err(a)) => audit_to_pb(&a, &agent),
                    Err(RecvError::Lagged(missed)) => pb::Event {
                        kind: "lagged".to_owned(),
                        missed,
                        time_unix_ns: now().unix_ns,
                        ..pb::Event::default()
                    },
                    Err(RecvError::Closed) => return,
                };
                if tokio::time::timeout(Duration::from_secs(30), tx.send(Ok(msg)))
                    .await
                    .is_err()
                {
                    // A watcher that stops reading for 30 s is dropped.
                    return;
                }
            }
        });
        Ok(Response::new(Slotted::new(ReceiverStream::new(rx), slot)))
    }

    type SendStream = ReceiverStream<Result<pb::SendProgress, Status>>;

    async fn send(
        &self,
        request: Request<pb::SendRequest>,
    ) -> Result<Response<Self::SendStream>, Status> {
        self.maint.auth.check(&request, Access::Write)?;
        super::admin::broadcast::send(&self.engine, &self.shutdown, request.into_inner())
            .map(Response::new)
    }

    type WatchMessagesStream = Slotted<ReceiverStream<Result<pb::DeliveredMessage, Status>>>;

    async fn watch_messages(
        &self,
        request: Request<pb::WatchMessagesRequest>,
    ) -> Result<Response<Self::WatchMessagesStream>, Status> {
        self.maint.auth.check(&request, Access::Read)?;
        let slot = self.streams.admit(&request)?;
        super::admin::broadcast::watch_messages(&self.engine, &self.shutdown, request.into_inner())
            .map(|s| Response::new(Slotted::new(s, slot)))
    }

    async fn get_maintenance(
        &self,
        request: Request<pb::GetMaintenanceRequest>,
    ) -> Result<Response<pb::MaintenanceReply>, Status> {
        self.maint.get(request).await
    }

    async fn set_maintenance(
        &self,
        request: Request<pb::SetMaintenanceRequest>,
    ) -> Result<Response<pb::MaintenanceReply>, Status> {
        self.maint.set(request).await
    }

    async fn get_labels(
        &self,
        request: Request<pb::GetLabelsRequest>,
    ) -> Result<Response<pb::LabelsReply>, Status> {
        self.maint.get_labels(request).await
    }

    async fn set_labels(
        &self,
        request: Request<pb::SetLabelsRequest>,
    ) -> Result<Response<pb::LabelsReply>, Status> {
        self.maint.set_labels(request).await
    }

    async fn force_leave(
        &self,
        request: Request<pb::ForceLeaveRequest>,
    ) -> Result<Response<pb::ForceLeaveReply>, Status> {
        self.maint.force_leave(request).await
    }

    async fn get_audit(
        &self,
        request: Request<pb::GetAuditRequest>,
    ) -> Result<Response<pb::AuditReply>, Status> {
        self.maint.audit(request).await
    }
}
