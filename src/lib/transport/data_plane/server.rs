//! The receiving half of a link: reassembles chunks, hands whole messages to the
//! node's sink, and ACKs each one back on the same stream.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, warn};

use super::{
    PROTOCOL_VERSION,
    sink::{MessageSink, Verdict},
    stats::DataPlaneStats,
};
use crate::{
    core::{
        chunk::{Fed, Reassembler, Rejection},
        ids::{MessageId, NodeId},
    },
    transport::{
        config::{ACK_QUEUE, DataPlaneConfig},
        convert::{
            FieldError, MAX_CONTROL_ENTRIES, chunk_from_pb, control_entries, control_from_pb,
            message_id_to_pb,
        },
        error::ServeError,
        pb::gossip::v1 as pb,
    },
};

type ReplyTx = mpsc::Sender<Result<pb::Reply, Status>>;

/// The data plane gRPC service of one node.
#[derive(Clone)]
pub struct DataPlaneService {
    shared: Arc<Shared>,
}

struct Shared {
    local: NodeId,
    domain: String,
    config: DataPlaneConfig,
    sink: Arc<dyn MessageSink>,
    stats: Arc<DataPlaneStats>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// Names of listed members, to hold a certified node to its own identity.
    names: Option<NameOf>,
}

/// Looks up the name of a listed member.
pub type NameOf = Arc<dyn Fn(&NodeId) -> Option<String> + Send + Sync>;

impl std::fmt::Debug for DataPlaneService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPlaneService")
            .field("local", &self.shared.local)
            .field("domain", &self.shared.domain)
            .finish_non_exhaustive()
    }
}

impl DataPlaneService {
    /// A service for node `local` in `domain`. Receive tasks run on `tasks` and stop
    /// at the next message boundary once `shutdown` is cancelled.
    pub fn new(
        local: NodeId,
        domain: String,
        config: DataPlaneConfig,
        sink: Arc<dyn MessageSink>,
        stats: Arc<DataPlaneStats>,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                local,
                domain,
                config,
                sink,
                stats,
                shutdown,
                tasks,
                names: None,
            }),
        }
    }

    /// Holds callers with a node certificate to their own identity: a stream
    /// whose hello names a listed member of another name is refused. Call
    /// before [`Self::into_server`].
    #[must_use]
    pub fn with_names(mut self, names: NameOf) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.names = Some(names);
        }
        self
    }

    /// The tonic server wrapper with explicit message size limits.
    pub fn into_server(self) -> pb::data_plane_server::DataPlaneServer<Self> {
        let limit = self.shared.config.max_grpc_message_bytes();
        pb::data_plane_server::DataPlaneServer::new(self)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit)
    }
}

#[tonic::async_trait]
impl pb::data_plane_server::DataPlane for DataPlaneService {
    type StreamStream = ReceiverStream<Result<pb::Reply, Status>>;

    async fn stream(
        &self,
        request: Request<Streaming<pb::Frame>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let shared = &self.shared;
        if shared.shutdown.is_cancelled() {
            return Err(ServeError::ShuttingDown.into());
        }
        let cert = crate::transport::tls::roles::certified_node(&request);
        let mut inbound = request.into_inner();
        let Some(pb::Frame {
            kind: Some(pb::frame::Kind::Hello(hello)),
        }) = inbound.message().await?
        else {
            return Err(ServeError::MissingHello.into());
        };
        let peer = check_hello(&hello, shared)?;
        if let (Some(cert), Some(names)) = (&cert, &shared.names) {
            crate::transport::tls::roles::check_speaks_as_itself(
                Some(cert),
                peer.as_str(),
                names(&peer).as_deref(),
                [],
            )?;
        }
        DataPlaneStats::add(&shared.stats.streams_accepted, 1);
        debug!(peer = %peer, "data plane stream opened");

        let (tx, rx) = mpsc::channel(ACK_QUEUE);
        let welcome = pb::Reply {
            kind: Some(pb::reply::Kind::Welcome(pb::Welcome {
                node_id: shared.local.to_string(),
                protocol_version: PROTOCOL_VERSION,
                max_payload_bytes: shared.config.max_payload_bytes,
                max_chunk_bytes: u32::try_from(shared.config.max_chunk_bytes).unwrap_or(u32::MAX),
            })),
        };
        tx.send(Ok(welcome))
            .await
            .map_err(|_| Status::cancelled("peer went away during the handshake"))?;
        let shared = Arc::clone(shared);
        self.shared
            .tasks
            .spawn(async move { receive(shared, peer, inbound, tx).await });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

fn check_hello(hello: &pb::Hello, shared: &Shared) -> Result<NodeId, ServeError> {
    let peer = NodeId::parse(&hello.node_id).map_err(|source| {
        ServeError::BadHello(FieldError {
            field: "hello.node_id",
            source,
        })
    })?;
    if hello.protocol_version != PROTOCOL_VERSION {
        return Err(ServeError::Version {
            got: hello.protocol_version,
            supported: PROTOCOL_VERSION,
        });
    }
    if hello.domain_id != shared.domain {
        return Err(ServeError::WrongDomain {
            peer: hello.domain_id.clone(),
            local: shared.domain.clone(),
        });
    }
    Ok(peer)
}

/// Reads chunks until the peer closes its half, the stream breaks, or shutdown
/// is requested between messages.
async fn receive(
    shared: Arc<Shared>,
    peer: NodeId,
    mut inbound: Streaming<pb::Frame>,
    tx: ReplyTx,
) {
    let mut reassembler = Reassembler::new(
        shared.config.max_payload_bytes,
        shared.config.max_chunk_bytes,
    );
    loop {
        let frame = tokio::select! {
            biased;
            () = shared.shutdown.cancelled(), if !reassembler.is_mid_message() => {
                debug!(peer = %peer, "data plane stream closed for shutdown");
                return;
            }
            frame = inbound.message() => frame,
        };
        let chunk = match frame {
            Ok(Some(pb::Frame {
                kind: Some(pb::frame::Kind::Chunk(c)),
            })) => c,
            Ok(Some(pb::Frame {
                kind: Some(pb::frame::Kind::Control(c)),
            })) if control_entries(&c) > MAX_CONTROL_ENTRIES => {
                let entries = control_entries(&c);
                return cut_off(&shared, &peer, &tx, ServeError::ControlTooLarge(entries)).await;
            }
            Ok(Some(pb::Frame {
                kind: Some(pb::frame::Kind::Control(c)),
            })) => match control_from_pb(c) {
                Ok(control) => {
                    shared.sink.on_control(&peer, control);
                    continue;
                }
                Err(e) => return cut_off(&shared, &peer, &tx, ServeError::BadChunk(e)).await,
            },
            Ok(None) => {
                debug!(peer = %peer, "data plane stream ended by peer");
                return;
            }
            Ok(Some(_)) => {
                return cut_off(&shared, &peer, &tx, ServeError::UnexpectedFrame).await;
            }
            Err(status) => {
                debug!(peer = %peer, error = %status, "data plane stream broke");
                return;
            }
        };
        let chunk = match chunk_from_pb(chunk) {
            Ok(c) => c,
            Err(e) => return cut_off(&shared, &peer, &tx, ServeError::BadChunk(e)).await,
        };
        let reply = match reassembler.feed(chunk) {
            Ok(Fed::Pending) => continue,
            // The previous hop is the node that opened the stream (with TLS, the
            // certificate's node); a header naming another is a forgery.
            Ok(Fed::Complete(msg)) if msg.sender != peer => {
                let err = ServeError::SenderMismatch {
                    claimed: msg.sender.to_string(),
                    peer: peer.to_string(),
                };
                return cut_off(&shared, &peer, &tx, err).await;
            }
            Ok(Fed::Complete(msg)) => {
                let id = msg.meta.id;
                let len = msg.payload.len() as u64;
                match shared.sink.deliver(msg) {
                    Verdict::Delivered => {
                        DataPlaneStats::add(&shared.stats.messages_received, 1);
                        DataPlaneStats::add(&shared.stats.payload_bytes_received, len);
                        ack(&shared.local, id, pb::AckStatus::Delivered, String::new())
                    }
                    Verdict::Duplicate => {
                        ack(&shared.local, id, pb::AckStatus::Duplicate, String::new())
                    }
                    Verdict::Rejected(reason) => {
                        DataPlaneStats::add(&shared.stats.rejected_by_node, 1);
                        ack(&shared.local, id, pb::AckStatus::Rejected, reason)
                    }
                }
            }
            Ok(Fed::Rejected { id, reason }) => {
                let counter = match reason {
                    Rejection::TooLarge { .. } => &shared.stats.rejected_too_large,
                    Rejection::Checksum { .. } => &shared.stats.rejected_checksum,
                };
                DataPlaneStats::add(counter, 1);
                warn!(peer = %peer, message = %id, reason = %reason, "message rejected");
                ack(
                    &shared.local,
                    id,
                    pb::AckStatus::Rejected,
                    reason.to_string(),
                )
            }
            Err(e) => return cut_off(&shared, &peer, &tx, ServeError::Protocol(e)).await,
        };
        if tx.send(Ok(reply)).await.is_err() {
            debug!(peer = %peer, "peer stopped reading acks");
            return;
        }
    }
}

/// Ends the stream with an error status after a protocol violation.
async fn cut_off(shared: &Shared, peer: &NodeId, tx: &ReplyTx, err: ServeError) {
    DataPlaneStats::add(&shared.stats.protocol_errors, 1);
    let status = Status::from(err);
    warn!(peer = %peer, error = %status.message(), "data plane peer cut off");
    let _ = tx.send(Err(status)).await;
}

fn ack(local: &NodeId, id: MessageId, status: pb::AckStatus, reason: String) -> pb::Reply {
    pb::Reply {
        kind: Some(pb::reply::Kind::Ack(pb::Ack {
            message_id: message_id_to_pb(id),
            receiver: local.to_string(),
            status: status.into(),
            reason,
        })),
    }
}
