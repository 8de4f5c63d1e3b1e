//! Transport errors, and the one place that maps errors to gRPC status codes.

use std::time::Duration;

use tonic::{Code, Status};

use crate::core::{chunk::ProtocolError, ids::NodeId};

use super::convert::FieldError;

/// Errors of the transport layer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A peer address could not be turned into an endpoint.
    #[error("invalid peer address '{addr}': {reason}")]
    BadAddress {
        /// The address as given.
        addr: String,
        /// Why it was refused.
        reason: String,
    },
    /// The peer could not be reached or the call failed.
    #[error("cannot reach {addr}: {}", status.message())]
    Unreachable {
        /// Peer address.
        addr: String,
        /// What the call returned (its message is the reason).
        status: Status,
    },
    /// The peer answered the link handshake wrongly or refused it.
    #[error("link handshake with {addr} failed: {reason}")]
    Handshake {
        /// Peer address.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// Establishing the link took longer than allowed.
    #[error("connecting to {addr} timed out after {after:?}")]
    ConnectTimeout {
        /// Peer address.
        addr: String,
        /// The limit.
        after: Duration,
    },
    /// Binding or serving the listener failed.
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Why one message on a link did not get a positive ACK.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The payload is larger than the sender's or the receiver's limit; nothing was sent.
    #[error("payload of {len} bytes exceeds {whose} limit of {max} bytes")]
    TooLarge {
        /// Payload length.
        len: u64,
        /// The limit that applies.
        max: u64,
        /// "this node's" or "peer <id>'s".
        whose: String,
    },
    /// The receiver refused the message.
    #[error("peer {peer} rejected the message: {reason}")]
    Rejected {
        /// The receiver.
        peer: NodeId,
        /// Its reason.
        reason: String,
    },
    /// No ACK arrived within the ACK timeout.
    #[error("no ACK from peer {peer} within {after:?}")]
    TimedOut {
        /// The receiver.
        peer: NodeId,
        /// The timeout.
        after: Duration,
    },
    /// A queue toward the peer is full.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// A message with this id is already in flight on the link.
    #[error("message {0} is already in flight on this link")]
    AlreadyInFlight(crate::core::ids::MessageId),
    /// The link closed before the ACK arrived.
    #[error("link to peer {peer} closed: {reason}")]
    LinkClosed {
        /// The receiver.
        peer: NodeId,
        /// Why the link closed.
        reason: String,
    },
}

/// Errors a data-plane server reports to its peer.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The first frame was not a hello.
    #[error("the first frame of a data plane stream must be a hello")]
    MissingHello,
    /// The hello was malformed.
    #[error("bad hello: {0}")]
    BadHello(#[from] FieldError),
    /// The peer speaks another protocol revision.
    #[error("unsupported data plane protocol version {got} (this node speaks {supported})")]
    Version {
        /// The peer's revision.
        got: u32,
        /// Ours.
        supported: u32,
    },
    /// The peer is in another domain.
    #[error("peer is in domain '{peer}', this node is in domain '{local}'")]
    WrongDomain {
        /// Peer's domain.
        peer: String,
        /// Ours.
        local: String,
    },
    /// A frame other than a chunk arrived after the hello.
    #[error("only chunks may follow the hello on a data plane stream")]
    UnexpectedFrame,
    /// A control frame carried too many entries.
    #[error("control frame with {0} entries, over the limit of {max}", max = crate::transport::convert::MAX_CONTROL_ENTRIES)]
    ControlTooLarge(usize),
    /// A chunk had a malformed field.
    #[error("malformed chunk: {0}")]
    BadChunk(FieldError),
    /// The chunk sequence broke the framing rules.
    #[error("protocol violation: {0}")]
    Protocol(#[from] ProtocolError),
    /// A message header named a sender other than the stream's peer (the
    /// node that said hello): a forged previous hop.
    #[error("message header names sender {claimed}, but this stream is from {peer}")]
    SenderMismatch {
        /// The sender the header names.
        claimed: String,
        /// The node that opened the stream.
        peer: String,
    },
    /// The node is shutting down.
    #[error("node is shutting down")]
    ShuttingDown,
}

impl From<ServeError> for Status {
    fn from(e: ServeError) -> Self {
        let code = match e {
            ServeError::MissingHello
            | ServeError::UnexpectedFrame
            | ServeError::BadHello(_)
            | ServeError::BadChunk(_)
            | ServeError::ControlTooLarge(_)
            | ServeError::Protocol(_) => Code::InvalidArgument,
            ServeError::Version { .. } => Code::FailedPrecondition,
            ServeError::WrongDomain { .. } | ServeError::SenderMismatch { .. } => {
                Code::PermissionDenied
            }
            ServeError::ShuttingDown => Code::Unavailable,
        };
        Status::new(code, e.to_string())
    }
}

impl From<super::membership::Refusal> for Status {
    fn from(r: super::membership::Refusal) -> Self {
        use super::membership::Refusal;
        let code = match r {
            Refusal::ForeignDomain { .. } => Code::PermissionDenied,
            Refusal::Invalid(_) => Code::InvalidArgument,
            Refusal::WrongNode { .. } | Refusal::Myself(_) => Code::FailedPrecondition,
            Refusal::ShuttingDown => Code::Unavailable,
            Refusal::Overloaded(_) | Refusal::RateLimited(_) => Code::ResourceExhausted,
        };
        Status::new(code, r.to_string())
    }
}
