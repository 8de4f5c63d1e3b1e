//! Conversions between protobuf types and domain types: the only place the two meet.

use std::sync::Arc;

use bytes::Bytes;

use super::pb::gossip::v1 as pb;
use crate::core::{
    broadcast::state::{Announce, Control},
    chunk::{ChunkHeader, ChunkIn},
    ids::{InvalidId, MessageId, NodeId},
    message::{MessageMeta, OriginAuth, OutboundMessage},
    piece::PieceInfo,
};

/// A wire field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid field `{field}`: {source}")]
pub struct FieldError {
    /// Proto field path.
    pub field: &'static str,
    /// What was wrong.
    #[source]
    pub source: InvalidId,
}

fn node_id(field: &'static str, s: &str) -> Result<NodeId, FieldError> {
    NodeId::parse(s).map_err(|source| FieldError { field, source })
}

/// Parses a received chunk.
///
/// # Errors
/// A malformed message id, origin or sender.
pub fn chunk_from_pb(c: pb::Chunk) -> Result<ChunkIn, FieldError> {
    let id = MessageId::from_slice(&c.message_id).map_err(|source| FieldError {
        field: "chunk.message_id",
        source,
    })?;
    let header = c
        .header
        .map(|h| -> Result<ChunkHeader, FieldError> {
            Ok(ChunkHeader {
                meta: MessageMeta {
                    id,
                    origin: node_id("chunk.header.origin", &h.origin)?,
                    hops: h.hops,
                    ttl: h.ttl,
                    topic: h.topic,
                    created_unix_ns: h.created_unix_ns,
                    auth: origin_auth(h.origin_signature, h.origin_certificate),
                    piece: h
                        .piece
                        .as_ref()
                        .map(piece_from_pb)
                        .transpose()?
                        .map(Arc::new),
                },
                sender: node_id("chunk.header.sender", &h.sender)?,
                total_len: h.total_len,
                crc32: h.crc32,
            })
        })
        .transpose()?;
    Ok(ChunkIn {
        id,
        header,
        offset: c.offset,
        data: c.data,
    })
}

/// The wire header of `msg` as sent by `sender`.
pub fn header_to_pb(msg: &OutboundMessage, sender: &NodeId) -> pb::MessageHeader {
    pb::MessageHeader {
        origin: msg.meta.origin.to_string(),
        sender: sender.to_string(),
        hops: msg.meta.hops,
        ttl: msg.meta.ttl,
        topic: msg.meta.topic.clone(),
        total_len: msg.payload.len() as u64,
        crc32: msg.crc32,
        created_unix_ns: msg.meta.created_unix_ns,
        origin_signature: msg
            .meta
            .auth
            .as_ref()
            .map(|a| a.signature.clone())
            .unwrap_or_default(),
        origin_certificate: msg
            .meta
            .auth
            .as_ref()
            .map(|a| a.certificate.clone())
            .unwrap_or_default(),
        piece: msg.meta.piece.as_deref().map(piece_to_pb),
    }
}

fn piece_to_pb(p: &PieceInfo) -> pb::SwarmPiece {
    pb::SwarmPiece {
        message_id: message_id_to_pb(p.message),
        index: p.index,
        count: p.count,
        piece_len: p.piece_len,
        total_len: p.total_len,
        crc32: p.crc32,
        fanout: p.fanout,
        subtree: p.subtree.iter().map(ToString::to_string).collect(),
    }
}

/// Parses a piece description; its consistency is checked by the receiver
/// ([`PieceInfo::check`]), which knows its limits.
fn piece_from_pb(p: &pb::SwarmPiece) -> Result<PieceInfo, FieldError> {
    Ok(PieceInfo {
        message: MessageId::from_slice(&p.message_id).map_err(|source| FieldError {
            field: "chunk.header.piece.message_id",
            source,
        })?,
        index: p.index,
        count: p.count,
        piece_len: p.piece_len,
        total_len: p.total_len,
        crc32: p.crc32,
        fanout: p.fanout,
        subtree: p
            .subtree
            .iter()
            .map(|s| node_id("chunk.header.piece.subtree", s))
            .collect::<Result<_, _>>()?,
    })
}

/// Largest origin signature and certificate carried; bigger ones are dropped
/// (the message then counts as unsigned).
const MAX_SIGNATURE_BYTES: usize = 256;
const MAX_CERTIFICATE_BYTES: usize = 16 << 10;

/// A signature and certificate from the wire, if both are present and within
/// bounds.
pub fn origin_auth(signature: Bytes, certificate: Bytes) -> Option<OriginAuth> {
    (!signature.is_empty()
        && signature.len() <= MAX_SIGNATURE_BYTES
        && !certificate.is_empty()
        && certificate.len() <= MAX_CERTIFICATE_BYTES)
        .then_some(OriginAuth {
            signature,
            certificate,
        })
}

/// Most entries accepted in one control frame (the state batches
/// announcements within it).
pub use crate::core::broadcast::state::MAX_CONTROL_ENTRIES;

/// Parses a control frame (the caller checks its size against
/// [`MAX_CONTROL_ENTRIES`] first).
///
/// # Errors
/// A malformed id or origin.
pub fn control_from_pb(c: pb::Control) -> Result<Control, FieldError> {
    let announce = c
        .announce
        .into_iter()
        .map(|a| {
            Ok(Announce {
                id: MessageId::from_slice(&a.message_id).map_err(|source| FieldError {
                    field: "control.announce.message_id",
                    source,
                })?,
                origin: node_id("control.announce.origin", &a.origin)?,
                size: a.size,
            })
        })
        .collect::<Result<_, FieldError>>()?;
    let want = c
        .want
        .iter()
        .map(|w| {
            MessageId::from_slice(w).map_err(|source| FieldError {
                field: "control.want",
                source,
            })
        })
        .collect::<Result<_, FieldError>>()?;
    let want_pieces = c
        .want_pieces
        .into_iter()
        .map(|w| {
            let id = MessageId::from_slice(&w.message_id).map_err(|source| FieldError {
                field: "control.want_pieces.message_id",
                source,
            })?;
            Ok((id, w.pieces))
        })
        .collect::<Result<_, FieldError>>()?;
    Ok(Control {
        announce,
        want,
        want_pieces,
    })
}

/// Entries a control frame on the wire carries (what
/// [`MAX_CONTROL_ENTRIES`] bounds): announcements, wants and pieces wanted.
pub fn control_entries(c: &pb::Control) -> usize {
    c.announce.len()
        + c.want.len()
        + c.want_pieces
            .iter()
            .map(|w| w.pieces.len().max(1))
            .sum::<usize>()
}

/// The wire form of a control frame.
pub fn control_to_pb(c: &Control) -> pb::Control {
    pb::Control {
        announce: c
            .announce
            .iter()
            .map(|a| pb::Announce {
                message_id: message_id_to_pb(a.id),
                origin: a.origin.to_string(),
                size: a.size,
            })
            .collect(),
        want: c.want.iter().map(|id| message_id_to_pb(*id)).collect(),
        want_pieces: c
            .want_pieces
            .iter()
            .map(|(id, pieces)| pb::PieceWant {
                message_id: message_id_to_pb(*id),
                pieces: pieces.clone(),
            })
            .collect(),
    }
}

/// The 16 wire bytes of a message id.
pub fn message_id_to_pb(id: MessageId) -> Bytes {
    Bytes::copy_from_slice(id.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_round_trips_through_the_wire_types() {
        let origin = NodeId::parse("a").unwrap();
        let msg = OutboundMessage::new(origin.clone(), "t", Bytes::from_static(b"xyz"), 42);
        let wire = pb::Chunk {
            message_id: message_id_to_pb(msg.meta.id),
            header: Some(header_to_pb(&msg, &origin)),
            offset: 0,
            data: msg.payload.clone(),
        };
        let c = chunk_from_pb(wire).unwrap();
        let h = c.header.unwrap();
        assert_eq!(h.meta, msg.meta);
        assert_eq!(h.total_len, 3);
        assert_eq!(h.crc32, msg.crc32);
        assert_eq!(c.data, msg.payload);
    }

    #[test]
    fn bad_ids_name_the_field() {
        let err = chunk_from_pb(pb::Chunk {
            message_id: Bytes::from_static(b"short"),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.field, "chunk.message_id");
        let err = chunk_from_pb(pb::Chunk {
            message_id: message_id_to_pb(MessageId::new()),
            header: Some(pb::MessageHeader::default()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.field, "chunk.header.origin");
        assert!(err.to_string().contains("empty"));
    }
}
