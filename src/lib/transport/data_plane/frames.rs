//! The sending half of a link as a stream of frames: the hello, then control
//! frames as they come and each queued message cut into chunks that share the
//! message's payload buffer.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::stats::DataPlaneStats;
use crate::{
    core::{ids::NodeId, message::OutboundMessage},
    transport::{
        convert::{header_to_pb, message_id_to_pb},
        pb::gossip::v1 as pb,
    },
};

/// Header bytes a chunk frame carries beyond its data without shrinking it:
/// the frame limit's allowance for framing, less room for the chunk's own fields.
const HEADER_SLACK: usize = crate::transport::config::CHUNK_OVERHEAD_BYTES - (4 << 10);

/// Yields the frames of a link's outbound half, in order.
pub(super) struct Frames {
    hello: Option<pb::Frame>,
    control: mpsc::Receiver<pb::Control>,
    queue: mpsc::Receiver<OutboundMessage>,
    current: Option<(OutboundMessage, usize)>,
    local: NodeId,
    max_chunk: usize,
    stats: Arc<DataPlaneStats>,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Frames {
    pub(super) fn new(
        hello: pb::Hello,
        control: mpsc::Receiver<pb::Control>,
        queue: mpsc::Receiver<OutboundMessage>,
        local: NodeId,
        max_chunk: usize,
        stats: Arc<DataPlaneStats>,
        closed: WaitForCancellationFutureOwned,
    ) -> Self {
        Self {
            hello: Some(pb::Frame {
                kind: Some(pb::frame::Kind::Hello(hello)),
            }),
            control,
            queue,
            current: None,
            local,
            max_chunk: max_chunk.max(1),
            stats,
            closed: Box::pin(closed),
        }
    }

    fn next_chunk(&mut self) -> Option<pb::Frame> {
        let (msg, offset) = self.current.take()?;
        let len = msg.payload.len();
        let header = (offset == 0).then(|| {
            DataPlaneStats::add(&self.stats.messages_sent, 1);
            DataPlaneStats::add(&self.stats.payload_bytes_sent, len as u64);
            header_to_pb(&msg, &self.local)
        });
        // A header bigger than the frame limit's slack (a swarm piece's long
        // forwarding list) takes its room from the first chunk's data.
        let room = match &header {
            Some(h) if h.encoded_len() > HEADER_SLACK => self
                .max_chunk
                .saturating_sub(h.encoded_len() - HEADER_SLACK),
            _ => self.max_chunk,
        };
        let end = (offset + room).min(len);
        let frame = pb::Frame {
            kind: Some(pb::frame::Kind::Chunk(pb::Chunk {
                message_id: message_id_to_pb(msg.meta.id),
                header,
                offset: offset as u64,
                data: msg.payload.slice(offset..end),
            })),
        };
        if end < len {
            self.current = Some((msg, end));
        }
        Some(frame)
    }
}

impl Stream for Frames {
    type Item = pb::Frame;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(hello) = this.hello.take() {
            return Poll::Ready(Some(hello));
        }
        if this.closed.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        // Bookkeeping goes first, even between the chunks of a message.
        if let Poll::Ready(Some(c)) = this.control.poll_recv(cx) {
            return Poll::Ready(Some(pb::Frame {
                kind: Some(pb::frame::Kind::Control(c)),
            }));
        }
        if this.current.is_none() {
            match this.queue.poll_recv(cx) {
                Poll::Ready(Some(msg)) => this.current = Some((msg, 0)),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(this.next_chunk())
    }
}
