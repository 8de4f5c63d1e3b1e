//! Data plane limits and HTTP/2 tuning, shared by the server and the client side.

use std::time::Duration;

use super::keepalive::KeepAlive;

/// Default largest whole payload accepted: 64 MiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: u64 = 64 << 20;
/// Default chunk size: payloads above it are split. 1 MiB keeps each gRPC message
/// inside one HTTP/2 frame of [`DEFAULT_H2_MAX_FRAME_BYTES`].
pub const DEFAULT_MAX_CHUNK_BYTES: usize = 1 << 20;
/// Room for the chunk's header fields on top of its data in one gRPC message.
pub const CHUNK_OVERHEAD_BYTES: usize = 64 << 10;
/// Default HTTP/2 max frame size (the protocol allows up to 16 MiB - 1).
pub const DEFAULT_H2_MAX_FRAME_BYTES: u32 = (1 << 20) + (64 << 10);
/// Default HTTP/2 per-stream flow-control window.
pub const DEFAULT_H2_STREAM_WINDOW_BYTES: u32 = 8 << 20;
/// Default HTTP/2 per-connection flow-control window.
pub const DEFAULT_H2_CONNECTION_WINDOW_BYTES: u32 = 16 << 20;
/// Default messages in flight (queued or awaiting their ACK) per link.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;
/// Default payload bytes in flight per link: a link moves at most this per
/// round trip, so it must cover the bandwidth-delay product. Measured on 16
/// network namespaces at 200 Mbit/s, where a swarm's links see 50-100 ms of
/// queueing: 1 MiB capped each link near 80 Mbit/s. (`gsp bench` floods
/// loopback with 1 MiB, where a deeper pipe only adds queueing.) A message
/// larger than this travels alone.
pub const DEFAULT_MAX_IN_FLIGHT_BYTES: u64 = 4 << 20;
/// Default time a message may wait for its ACK.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time to establish a link (TCP + HTTP/2 + hello/welcome).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// ACKs buffered per inbound stream before the receiver stops reading frames.
pub const ACK_QUEUE: usize = 256;

/// Data plane limits and tuning. `Default` is production-correct.
#[derive(Debug, Clone)]
pub struct DataPlaneConfig {
    /// Largest whole payload this node sends or accepts.
    pub max_payload_bytes: u64,
    /// Payloads above this are chunked; also the largest chunk accepted.
    pub max_chunk_bytes: usize,
    /// HTTP/2 max frame size advertised by both ends.
    pub h2_max_frame_bytes: u32,
    /// HTTP/2 per-stream window.
    pub h2_stream_window_bytes: u32,
    /// HTTP/2 per-connection window.
    pub h2_connection_window_bytes: u32,
    /// Messages in flight per link; a sender waits for room beyond this.
    pub max_in_flight: usize,
    /// Payload bytes in flight per link; a sender waits for room beyond this.
    pub max_in_flight_bytes: u64,
    /// Time a message may wait for its ACK before it counts as lost.
    pub ack_timeout: Duration,
    /// Time allowed to establish a link.
    pub connect_timeout: Duration,
    /// Dead-connection detection on every connection (HTTP/2 PING, TCP).
    pub keepalive: KeepAlive,
}

impl Default for DataPlaneConfig {
    fn default() -> Self {
        Self {
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            max_chunk_bytes: DEFAULT_MAX_CHUNK_BYTES,
            h2_max_frame_bytes: DEFAULT_H2_MAX_FRAME_BYTES,
            h2_stream_window_bytes: DEFAULT_H2_STREAM_WINDOW_BYTES,
            h2_connection_window_bytes: DEFAULT_H2_CONNECTION_WINDOW_BYTES,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_in_flight_bytes: DEFAULT_MAX_IN_FLIGHT_BYTES,
            ack_timeout: DEFAULT_ACK_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            keepalive: KeepAlive::default(),
        }
    }
}

impl DataPlaneConfig {
    /// Largest encoded gRPC message on the data plane, set as both the encode and
    /// the decode limit on both ends.
    pub fn max_grpc_message_bytes(&self) -> usize {
        self.max_chunk_bytes + CHUNK_OVERHEAD_BYTES
    }
}
