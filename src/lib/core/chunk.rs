//! Chunking: splitting a payload into frame-sized pieces and reassembling them,
//! with every limit checked before memory is committed.
//!
//! The sender writes the chunks of one message back to back, so a receiver keeps
//! at most one partial message per stream. A message that breaks a limit is
//! rejected once and its remaining chunks are skipped without being stored; a
//! stream that breaks the framing rules is a protocol error and is cut off.

use bytes::{Bytes, BytesMut};

use super::{
    ids::{MessageId, NodeId},
    message::{InboundMessage, MessageMeta},
};

/// Splits `payload` into `(offset, slice)` pieces of at most `max_chunk` bytes.
/// The slices share the payload's buffer. An empty payload yields one empty chunk,
/// so every message has a first chunk to carry its header.
pub fn split(payload: &Bytes, max_chunk: usize) -> impl Iterator<Item = (u64, Bytes)> + '_ {
    let max_chunk = max_chunk.max(1);
    let count = payload.len().div_ceil(max_chunk).max(1);
    (0..count).map(move |i| {
        let start = i * max_chunk;
        let end = (start + max_chunk).min(payload.len());
        (start as u64, payload.slice(start..end))
    })
}

/// What the first chunk of a message declares about the whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkHeader {
    /// Routing metadata.
    pub meta: MessageMeta,
    /// Node that sent it on this hop.
    pub sender: NodeId,
    /// Whole payload length.
    pub total_len: u64,
    /// CRC-32 of the whole payload.
    pub crc32: u32,
}

/// One received piece of a message.
#[derive(Debug, Clone)]
pub struct ChunkIn {
    /// Message the piece belongs to.
    pub id: MessageId,
    /// Present on the first chunk only.
    pub header: Option<ChunkHeader>,
    /// Offset of `data` in the payload.
    pub offset: u64,
    /// The bytes.
    pub data: Bytes,
}

/// Why one message was refused; the stream carries on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The declared payload is larger than this node accepts.
    #[error("payload of {len} bytes exceeds this node's limit of {max} bytes")]
    TooLarge {
        /// Declared length.
        len: u64,
        /// The receiver's limit.
        max: u64,
    },
    /// The reassembled payload does not match the declared checksum.
    #[error("payload checksum mismatch (declared {declared:08x}, computed {computed:08x})")]
    Checksum {
        /// CRC-32 in the header.
        declared: u32,
        /// CRC-32 of what arrived.
        computed: u32,
    },
}

/// A framing violation: the peer is broken or hostile and the stream is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A message started without a header, or a header came mid-message.
    #[error("chunk at offset {offset} of message {id} {problem}")]
    Header {
        /// The message.
        id: MessageId,
        /// Offset of the offending chunk.
        offset: u64,
        /// What was wrong.
        problem: &'static str,
    },
    /// A new message started before the previous one was complete.
    #[error("message {new} started before message {unfinished} was complete")]
    Interleaved {
        /// The incomplete message.
        unfinished: MessageId,
        /// The message that cut in.
        new: MessageId,
    },
    /// A chunk did not continue where the previous one ended.
    #[error("message {id}: expected offset {expected}, got {got}")]
    Offset {
        /// The message.
        id: MessageId,
        /// Where the next chunk should start.
        expected: u64,
        /// Where it started.
        got: u64,
    },
    /// The chunks add up to more than the declared length.
    #[error("message {id}: chunks exceed the declared length of {total_len} bytes")]
    Overrun {
        /// The message.
        id: MessageId,
        /// Declared length.
        total_len: u64,
    },
    /// A single chunk is larger than the negotiated chunk limit.
    #[error("chunk of {len} bytes exceeds the chunk limit of {max} bytes")]
    ChunkTooLarge {
        /// Chunk length.
        len: usize,
        /// Limit.
        max: usize,
    },
}

/// Result of feeding one chunk.
#[derive(Debug)]
pub enum Fed {
    /// More chunks are needed.
    Pending,
    /// The message is whole and verified.
    Complete(InboundMessage),
    /// The message is refused (reported once); its remaining chunks will be skipped.
    Rejected {
        /// The refused message.
        id: MessageId,
        /// Why.
        reason: Rejection,
    },
}

#[derive(Debug)]
enum State {
    Idle,
    Receiving {
        header: ChunkHeader,
        buf: BytesMut,
    },
    Skipping {
        id: MessageId,
        total_len: u64,
        next: u64,
    },
}

/// Reassembles the chunk sequence of one stream.
#[derive(Debug)]
pub struct Reassembler {
    max_payload: u64,
    max_chunk: usize,
    state: State,
}

impl Reassembler {
    /// A reassembler that refuses payloads over `max_payload` and chunks over `max_chunk`.
    pub fn new(max_payload: u64, max_chunk: usize) -> Self {
        Self {
            max_payload,
            max_chunk,
            state: State::Idle,
        }
    }

    /// Whether a message is partly received.
    pub fn is_mid_message(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// Feeds the next chunk of the stream.
    ///
    /// # Errors
    /// A framing violation; the stream should be closed.
    pub fn feed(&mut self, chunk: ChunkIn) -> Result<Fed, ProtocolError> {
        if chunk.data.len() > self.max_chunk {
            return Err(ProtocolError::ChunkTooLarge {
                len: chunk.data.len(),
                max: self.max_chunk,
            });
        }
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Idle => self.start(chunk),
            State::Receiving { header, buf } => self.continue_receiving(header, buf, &chunk),
            State::Skipping {
                id,
                total_len,
                next,
            } => {
                let next = check_continuation(id, total_len, next, &chunk)?;
                if next < total_len {
                    self.state = State::Skipping {
                        id,
                        total_len,
                        next,
                    };
                }
                Ok(Fed::Pending)
            }
        }
    }

    fn start(&mut self, chunk: ChunkIn) -> Result<Fed, ProtocolError> {
        let Some(header) = chunk.header else {
            return Err(ProtocolError::Header {
                id: chunk.id,
                offset: chunk.offset,
                problem: "starts a message but has no header",
            });
        };
        if chunk.offset != 0 {
            return Err(ProtocolError::Offset {
                id: chunk.id,
                expected: 0,
                got: chunk.offset,
            });
        }
        if header.meta.id != chunk.id {
            return Err(ProtocolError::Header {
                id: chunk.id,
                offset: 0,
                problem: "carries a header for another message id",
            });
        }
        let total_len = header.total_len;
        let got = chunk.data.len() as u64;
        if got > total_len {
            return Err(ProtocolError::Overrun {
                id: chunk.id,
                total_len,
            });
        }
        if total_len > self.max_payload {
            if got < total_len {
                self.state = State::Skipping {
                    id: chunk.id,
                    total_len,
                    next: got,
                };
            }
            return Ok(Fed::Rejected {
                id: chunk.id,
                reason: Rejection::TooLarge {
                    len: total_len,
                    max: self.max_payload,
                },
            });
        }
        if got == total_len {
            // Single-chunk message: hand the received buffer on without copying.
            return Ok(finish(header, chunk.data));
        }
        let capacity = usize::try_from(total_len).unwrap_or(usize::MAX);
        let mut buf = BytesMut::with_capacity(capacity);
        buf.extend_from_slice(&chunk.data);
        self.state = State::Receiving { header, buf };
        Ok(Fed::Pending)
    }

    fn continue_receiving(
        &mut self,
        header: ChunkHeader,
        mut buf: BytesMut,
        chunk: &ChunkIn,
    ) -> Result<Fed, ProtocolError> {
        let id = header.meta.id;
        let next = check_continuation(id, header.total_len, buf.len() as u64, chunk)?;
        buf.extend_from_slice(&chunk.data);
        if next == header.total_len {
            Ok(finish(header, buf.freeze()))
        } else {
            self.state = State::Receiving { header, buf };
            Ok(Fed::Pending)
        }
    }
}

/// Checks that `chunk` continues message `id` at `next`; returns the new end offset.
fn check_continuation(
    id: MessageId,
    total_len: u64,
    next: u64,
    chunk: &ChunkIn,
) -> Result<u64, ProtocolError> {
    if chunk.id != id {
        return Err(ProtocolError::Interleaved {
            unfinished: id,
            new: chunk.id,
        });
    }
    if chunk.header.is_some() {
        return Err(ProtocolError::Header {
            id,
            offset: chunk.offset,
            problem: "repeats the header mid-message",
        });
    }
    if chunk.offset != next {
        return Err(ProtocolError::Offset {
            id,
            expected: next,
            got: chunk.offset,
        });
    }
    let end = next + chunk.data.len() as u64;
    if end > total_len {
        return Err(ProtocolError::Overrun { id, total_len });
    }
    Ok(end)
}

fn finish(header: ChunkHeader, payload: Bytes) -> Fed {
    let computed = crc32fast::hash(&payload);
    if computed != header.crc32 {
        return Fed::Rejected {
            id: header.meta.id,
            reason: Rejection::Checksum {
                declared: header.crc32,
                computed,
            },
        };
    }
    Fed::Complete(InboundMessage {
        meta: header.meta,
        sender: header.sender,
        payload,
        crc32: computed,
    })
}

#[cfg(test)]
mod tests;
