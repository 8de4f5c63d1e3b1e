//! Domain types of the data plane: what a message is, independent of the wire.

use bytes::Bytes;

use super::ids::{MessageId, NodeId};

/// Routing metadata that travels with a message on every hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    /// Unique id, the same on every hop.
    pub id: MessageId,
    /// Node that created the message.
    pub origin: NodeId,
    /// Hops taken so far (0 when sent by the origin).
    pub hops: u32,
    /// Hops the message may still take.
    pub ttl: u32,
    /// Free-form topic; empty means none.
    pub topic: String,
    /// Origin's wall clock at creation, unix nanoseconds.
    pub created_unix_ns: i64,
    /// The origin's signature and certificate (broadcasts from a node with a
    /// TLS node key), so a relayed copy can be told from a forgery.
    pub auth: Option<OriginAuth>,
    /// Set on a piece of a swarm broadcast: which whole it belongs to and where
    /// the receiver forwards it (shared: the forwarding list may be long).
    pub piece: Option<std::sync::Arc<super::piece::PieceInfo>>,
}

/// Proof that a message's origin created it: a signature over the message and
/// its payload, and the certificate whose key made it (DER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginAuth {
    /// ECDSA P-256 / SHA-256 signature (ASN.1).
    pub signature: Bytes,
    /// The origin's node certificate.
    pub certificate: Bytes,
}

/// A message ready to send: metadata plus a shared payload and its checksum.
///
/// The payload is a `Bytes`, so sending one message to many peers (or relaying it)
/// shares one buffer; the checksum is computed once by the origin and carried as is.
#[derive(Debug, Clone)]
pub struct OutboundMessage {
    /// Routing metadata.
    pub meta: MessageMeta,
    /// The payload, shared and never copied per peer.
    pub payload: Bytes,
    /// CRC-32 (IEEE) of `payload`.
    pub crc32: u32,
}

impl OutboundMessage {
    /// A new message from `origin`, checksumming the payload.
    pub fn new(origin: NodeId, topic: impl Into<String>, payload: Bytes, now_unix_ns: i64) -> Self {
        let crc32 = crc32fast::hash(&payload);
        Self {
            meta: MessageMeta {
                id: MessageId::new(),
                origin,
                hops: 0,
                ttl: 0,
                topic: topic.into(),
                created_unix_ns: now_unix_ns,
                auth: None,
                piece: None,
            },
            payload,
            crc32,
        }
    }

    /// The same payload (and checksum) under a fresh message id; used to send many
    /// messages with one buffer without re-hashing it.
    #[must_use]
    pub fn with_new_id(&self) -> Self {
        let mut m = self.clone();
        m.meta.id = MessageId::new();
        m
    }
}

/// A whole message as received on one hop, reassembled and checksum-verified.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    /// Routing metadata as the sender wrote it.
    pub meta: MessageMeta,
    /// Node that sent it on this hop.
    pub sender: NodeId,
    /// The verified payload.
    pub payload: Bytes,
    /// CRC-32 of `payload`, already checked.
    pub crc32: u32,
}
