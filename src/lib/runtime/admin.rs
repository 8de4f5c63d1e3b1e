//! The admin service (`gsp.admin.v1`): what the CLI's client commands call.

use std::time::Duration;

use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::membership::{MembershipAgent, now};
use crate::{
    core::membership::{MemberView, events::MembershipEvent},
    transport::{membership::convert::record_to_pb, pb::admin::v1 as pb},
};

/// Events buffered per `Watch` stream before the sender waits on the client.
const WATCH_QUEUE: usize = 256;

/// The admin service of one node.
#[derive(Debug, Clone)]
pub struct AdminService {
    agent: MembershipAgent,
    shutdown: CancellationToken,
}

impl AdminService {
    /// Serves `agent`'s state; watch streams end when `shutdown` fires.
    pub fn new(agent: MembershipAgent, shutdown: CancellationToken) -> Self {
        Self { agent, shutdown }
    }

    /// The tonic server.
    pub fn into_server(self) -> pb::admin_server::AdminServer<Self> {
        pb::admin_server::AdminServer::new(self)
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
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn list_members(
        &self,
        _request: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let now = now();
        let (members, local) = self
            .agent
            .with_state(|s| (s.members(now), s.local().id.to_string()));
        Ok(Response::new(pb::ListMembersResponse {
            members: members.iter().map(member_to_pb).collect(),
            local_node_id: local,
        }))
    }

    type WatchStream = ReceiverStream<Result<pb::Event, Status>>;

    async fn watch(
        &self,
        _request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let mut events = self.agent.subscribe();
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
                    e = events.recv() => e,
                };
                let msg = match item {
                    Ok(e) => event_to_pb(&e),
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
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
