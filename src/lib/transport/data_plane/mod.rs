//! The data plane (`gsp.gossip.v1`): one long-lived bidirectional stream per
//! neighbour pair, messages one way and ACKs back on the same stream.

mod body;
mod frames;
pub mod link;
pub mod server;
pub mod sink;
pub mod stats;

/// Data plane protocol revision spoken by this build.
pub const PROTOCOL_VERSION: u32 = 1;
