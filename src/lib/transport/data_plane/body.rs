//! The sending half of a link as the HTTP/2 request body, framed for gRPC
//! here rather than by tonic's encoder, so that a chunk's payload goes to the
//! socket from the message's own buffer.
//!
//! tonic encodes every message into its buffer before it is sent: for a
//! chunk, a copy of the payload. In a `perf record` of one 16 MiB broadcast
//! to 32 hosts, that copy was 44% of the bytes the nodes copied in user space
//! (6% of their CPU). Here a chunk of at least [`BY_REFERENCE`] bytes is sent
//! as two pieces: its gRPC and protobuf framing (freshly encoded, a few dozen
//! bytes) and its data, a slice of the payload; h2 writes both with one
//! `writev`. The bytes on the wire are the same as tonic's: protobuf writes
//! fields in tag order and `data` is the chunk's last field.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{BufMut as _, Bytes, BytesMut};
use prost::{
    Message as _,
    encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len},
};
use tokio_stream::Stream;
use tonic::{Status, codec::Codec as _, transport::Channel};

use super::frames::Frames;
use crate::transport::pb::gossip::v1 as pb;

/// Chunks with this much data or more are sent from the payload's buffer;
/// smaller ones are copied with their framing (one piece is cheaper then).
const BY_REFERENCE: usize = 4 << 10;
/// `Frame.chunk` and `Chunk.data`'s field numbers.
const FRAME_CHUNK: u32 = 2;
const CHUNK_DATA: u32 = 4;
/// The data plane's stream method.
const PATH: &str = "/gsp.gossip.v1.DataPlane/Stream";

/// A gRPC-framed message: its framing, and its data when sent by reference.
#[derive(Debug)]
pub(super) struct Encoded {
    pub head: Bytes,
    pub data: Option<Bytes>,
}

/// `frame` as one gRPC message (uncompressed), at most `limit` bytes.
///
/// # Errors
/// The frame is over `limit` (as tonic's encoder refuses it).
pub(super) fn encode(frame: pb::Frame, limit: usize) -> Result<Encoded, Status> {
    match frame.kind {
        Some(pb::frame::Kind::Chunk(mut chunk)) if chunk.data.len() >= BY_REFERENCE => {
            let data = std::mem::take(&mut chunk.data);
            let data_field =
                key_len(CHUNK_DATA) + encoded_len_varint(data.len() as u64) + data.len();
            let chunk_len = chunk.encoded_len() + data_field;
            let frame_len = key_len(FRAME_CHUNK) + encoded_len_varint(chunk_len as u64) + chunk_len;
            let mut head = framing(frame_len, frame_len - data.len(), limit)?;
            encode_key(FRAME_CHUNK, WireType::LengthDelimited, &mut head);
            encode_varint(chunk_len as u64, &mut head);
            chunk.encode(&mut head).map_err(encode_failed)?;
            encode_key(CHUNK_DATA, WireType::LengthDelimited, &mut head);
            encode_varint(data.len() as u64, &mut head);
            Ok(Encoded {
                head: head.freeze(),
                data: Some(data),
            })
        }
        kind => {
            let frame = pb::Frame { kind };
            let len = frame.encoded_len();
            let mut head = framing(len, len, limit)?;
            frame.encode(&mut head).map_err(encode_failed)?;
            Ok(Encoded {
                head: head.freeze(),
                data: None,
            })
        }
    }
}

/// Never: a `BytesMut` grows as needed.
fn encode_failed(e: prost::EncodeError) -> Status {
    Status::internal(format!("encoding a data-plane frame: {e}"))
}

/// A buffer holding the 5-byte gRPC prefix of a `len`-byte message, with room
/// for `inline` bytes of it.
fn framing(len: usize, inline: usize, limit: usize) -> Result<BytesMut, Status> {
    let wire_len = u32::try_from(len)
        .ok()
        .filter(|_| len <= limit)
        .ok_or_else(|| {
            Status::out_of_range(format!(
                "a data-plane frame of {len} bytes is over the limit of {limit}"
            ))
        })?;
    let mut head = BytesMut::with_capacity(5 + inline);
    head.put_u8(0);
    head.put_u32(wire_len);
    Ok(head)
}

/// The request body: each frame's framing, then its data when by reference.
pub(super) struct FrameBody {
    frames: Frames,
    data: Option<Bytes>,
    limit: usize,
    failed: bool,
}

impl FrameBody {
    pub(super) fn new(frames: Frames, limit: usize) -> Self {
        Self {
            frames,
            data: None,
            limit,
            failed: false,
        }
    }
}

impl http_body::Body for FrameBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if let Some(data) = this.data.take() {
            return Poll::Ready(Some(Ok(http_body::Frame::data(data))));
        }
        if this.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.frames).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(frame)) => match encode(frame, this.limit) {
                Ok(Encoded { head, data }) => {
                    this.data = data;
                    Poll::Ready(Some(Ok(http_body::Frame::data(head))))
                }
                Err(status) => {
                    this.failed = true;
                    Poll::Ready(Some(Err(status)))
                }
            },
        }
    }
}

/// Opens the data-plane stream on `channel` with `body` as its request and
/// the peer's replies (up to `limit` bytes each) as its response, as tonic's
/// generated client does.
///
/// # Errors
/// The call failed or the peer refused it.
pub(super) async fn open(
    mut channel: Channel,
    body: FrameBody,
    limit: usize,
) -> Result<tonic::Streaming<pb::Reply>, Status> {
    use tower_service::Service as _;

    let mut request = http::Request::new(tonic::body::Body::new(body));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = http::Uri::from_static(PATH);
    *request.version_mut() = http::Version::HTTP_2;
    let headers = request.headers_mut();
    headers.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .map_err(|e| Status::from_error(Box::new(e)))?;
    let response = channel
        .call(request)
        .await
        .map_err(|e| Status::from_error(Box::new(e)))?;
    let decoder = tonic_prost::ProstCodec::<pb::Frame, pb::Reply>::default().decoder();
    // A refusal comes as headers only.
    if let Some(status) = Status::from_header_map(response.headers()) {
        if status.code() != tonic::Code::Ok {
            return Err(status);
        }
        return Ok(tonic::Streaming::new_empty(decoder, response.into_body()));
    }
    let code = response.status();
    Ok(tonic::Streaming::new_response(
        decoder,
        response.into_body(),
        code,
        None,
        Some(limit),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    /// What tonic's encoder sends for `frame`: the 5-byte prefix and prost's
    /// encoding.
    fn tonic_bytes(frame: &pb::Frame) -> Vec<u8> {
        let body = frame.encode_to_vec();
        let mut out = vec![0];
        out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    fn chunk(data_len: usize, header: bool) -> pb::Frame {
        pb::Frame {
            kind: Some(pb::frame::Kind::Chunk(pb::Chunk {
                message_id: vec![7; 16].into(),
                header: header.then(|| pb::MessageHeader {
                    origin: "node-a".into(),
                    sender: "node-b".into(),
                    hops: 2,
                    total_len: 1 << 20,
                    crc32: 0xdead_beef,
                    origin_signature: vec![1; 70].into(),
                    ..pb::MessageHeader::default()
                }),
                offset: 3 << 18,
                data: (0..data_len)
                    .map(|i| u8::try_from(i % 251).unwrap())
                    .collect::<Vec<_>>()
                    .into(),
            })),
        }
    }

    #[test]
    fn every_frame_goes_on_the_wire_as_tonic_would_send_it() {
        let frames = [
            pb::Frame {
                kind: Some(pb::frame::Kind::Hello(pb::Hello {
                    node_id: "n".into(),
                    domain_id: "d".into(),
                    protocol_version: 1,
                })),
            },
            pb::Frame {
                kind: Some(pb::frame::Kind::Control(pb::Control {
                    announce: vec![pb::Announce {
                        message_id: vec![1; 16].into(),
                        origin: "o".into(),
                        size: 9,
                    }],
                    want: vec![vec![2; 16].into()],
                    want_pieces: vec![pb::PieceWant {
                        message_id: vec![3; 16].into(),
                        pieces: vec![1, 2],
                    }],
                })),
            },
            chunk(0, true),
            chunk(100, false),
            chunk(BY_REFERENCE - 1, true),
            chunk(BY_REFERENCE, false),
            chunk(256 << 10, true),
            chunk(256 << 10, false),
        ];
        for frame in frames {
            let want = tonic_bytes(&frame);
            let data_len = match &frame.kind {
                Some(pb::frame::Kind::Chunk(c)) => c.data.len(),
                _ => 0,
            };
            let Encoded { head, data } = encode(frame, 1 << 20).unwrap();
            // Large chunks' data is the payload's own buffer, not a copy.
            assert_eq!(data.is_some(), data_len >= BY_REFERENCE, "{data_len}");
            let mut got = head.to_vec();
            if let Some(d) = data {
                assert_eq!(d.len(), data_len);
                got.extend_from_slice(&d);
            }
            assert_eq!(got, want, "a chunk of {data_len} bytes");
        }
    }

    #[test]
    fn a_large_chunk_is_sent_from_the_payload_it_was_cut_from() {
        let frame = chunk(64 << 10, true);
        let Some(pb::frame::Kind::Chunk(c)) = &frame.kind else {
            unreachable!()
        };
        let at = c.data.as_ptr();
        let Encoded { head, data } = encode(frame, 1 << 20).unwrap();
        assert_eq!(data.unwrap().as_ptr(), at);
        assert!(head.len() < 200, "{}", head.len());
    }

    #[test]
    fn a_frame_over_the_limit_is_refused_naming_both_sizes() {
        let e = encode(chunk(64 << 10, false), 32 << 10).unwrap_err();
        assert_eq!(e.code(), tonic::Code::OutOfRange);
        assert!(e.message().contains("over the limit of 32768"), "{e}");
        assert!(encode(chunk(100, false), 32).is_err());
    }
}
