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
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn header(id: MessageId, payload: &[u8]) -> ChunkHeader {
        ChunkHeader {
            meta: MessageMeta {
                id,
                origin: NodeId::parse("origin").unwrap(),
                hops: 0,
                ttl: 0,
                topic: String::new(),
                created_unix_ns: 0,
                auth: None,
                piece: None,
            },
            sender: NodeId::parse("sender").unwrap(),
            total_len: payload.len() as u64,
            crc32: crc32fast::hash(payload),
        }
    }

    fn chunks_of(id: MessageId, payload: &Bytes, max_chunk: usize) -> Vec<ChunkIn> {
        split(payload, max_chunk)
            .map(|(offset, data)| ChunkIn {
                id,
                header: (offset == 0).then(|| header(id, payload)),
                offset,
                data,
            })
            .collect()
    }

    fn feed_all(r: &mut Reassembler, chunks: Vec<ChunkIn>) -> Vec<Fed> {
        chunks.into_iter().map(|c| r.feed(c).unwrap()).collect()
    }

    proptest! {
        #[test]
        fn any_payload_round_trips_exactly(len in 0usize..300_000, max_chunk in 1usize..70_000) {
            let payload: Bytes = (0..len).map(|i| u8::try_from(i * 31 % 251).unwrap()).collect::<Vec<_>>().into();
            let id = MessageId::new();
            let mut r = Reassembler::new(1 << 30, max_chunk);
            let fed = feed_all(&mut r, chunks_of(id, &payload, max_chunk));
            let (last, rest) = fed.split_last().unwrap();
            prop_assert!(rest.iter().all(|f| matches!(f, Fed::Pending)));
            match last {
                Fed::Complete(m) => prop_assert_eq!(&m.payload, &payload),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
            prop_assert!(!r.is_mid_message());
        }
    }

    #[test]
    fn sizes_from_zero_to_64_mib_round_trip() {
        for len in [0, 1, 1 << 20, (1 << 20) + 1, 20 << 20, 64 << 20] {
            let payload = Bytes::from(vec![0xA5u8; len]);
            let id = MessageId::new();
            let mut r = Reassembler::new(64 << 20, 1 << 20);
            let fed = feed_all(&mut r, chunks_of(id, &payload, 1 << 20));
            let Some(Fed::Complete(m)) = fed.into_iter().last() else {
                panic!("{len} bytes did not complete");
            };
            assert_eq!(m.payload.len(), len);
            assert_eq!(m.payload, payload);
        }
    }

    #[test]
    fn single_chunk_payload_is_not_copied() {
        let payload = Bytes::from(vec![7u8; 1000]);
        let id = MessageId::new();
        let mut r = Reassembler::new(1 << 20, 4096);
        let mut fed = feed_all(&mut r, chunks_of(id, &payload, 4096));
        let Some(Fed::Complete(m)) = fed.pop() else {
            panic!("not complete")
        };
        assert_eq!(m.payload.as_ptr(), payload.as_ptr());
    }

    #[test]
    fn oversized_message_is_rejected_once_then_skipped_and_the_next_one_works() {
        let big = Bytes::from(vec![1u8; 10_000]);
        let small = Bytes::from_static(b"hello");
        let mut r = Reassembler::new(4096, 1024);
        let big_id = MessageId::new();
        let fed = feed_all(&mut r, chunks_of(big_id, &big, 1024));
        assert!(matches!(
            &fed[0],
            Fed::Rejected { id, reason: Rejection::TooLarge { len: 10_000, max: 4096 } } if *id == big_id
        ));
        assert!(fed[1..].iter().all(|f| matches!(f, Fed::Pending)));
        let fed = feed_all(&mut r, chunks_of(MessageId::new(), &small, 1024));
        assert!(matches!(&fed[0], Fed::Complete(m) if m.payload == small));
    }

    #[test]
    fn corrupted_payload_is_rejected_by_checksum() {
        let payload = Bytes::from(vec![3u8; 3000]);
        let id = MessageId::new();
        let mut chunks = chunks_of(id, &payload, 1024);
        chunks[1].data = Bytes::from(vec![4u8; 1024]);
        let mut r = Reassembler::new(1 << 20, 1024);
        let fed = feed_all(&mut r, chunks);
        assert!(matches!(
            fed.last(),
            Some(Fed::Rejected {
                reason: Rejection::Checksum { .. },
                ..
            })
        ));
    }

    #[test]
    fn framing_violations_are_protocol_errors() {
        let payload = Bytes::from(vec![0u8; 3000]);
        let id = MessageId::new();
        let chunks = chunks_of(id, &payload, 1024);

        // Missing header.
        let mut r = Reassembler::new(1 << 20, 1024);
        let mut c = chunks[0].clone();
        c.header = None;
        assert!(matches!(r.feed(c), Err(ProtocolError::Header { .. })));

        // Gap in offsets.
        let mut r = Reassembler::new(1 << 20, 1024);
        r.feed(chunks[0].clone()).unwrap();
        assert!(matches!(
            r.feed(chunks[2].clone()),
            Err(ProtocolError::Offset {
                expected: 1024,
                got: 2048,
                ..
            })
        ));

        // Another message cuts in.
        let mut r = Reassembler::new(1 << 20, 1024);
        r.feed(chunks[0].clone()).unwrap();
        let other = chunks_of(MessageId::new(), &payload, 1024);
        assert!(matches!(
            r.feed(other[0].clone()),
            Err(ProtocolError::Interleaved { .. })
        ));

        // Chunk over the limit.
        let mut r = Reassembler::new(1 << 20, 512);
        assert!(matches!(
            r.feed(chunks[0].clone()),
            Err(ProtocolError::ChunkTooLarge {
                len: 1024,
                max: 512
            })
        ));

        // More data than declared.
        let mut r = Reassembler::new(1 << 20, 4096);
        let mut c = chunks_of(id, &payload, 4096).remove(0);
        c.header.as_mut().unwrap().total_len = 10;
        assert!(matches!(r.feed(c), Err(ProtocolError::Overrun { .. })));
    }
}
