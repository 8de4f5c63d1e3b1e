//! The protocol, pure and synchronous: no tokio, tonic or sysinfo in here.
//! Every function that depends on time takes `now`; every one that needs
//! randomness takes an RNG.

pub mod ack_tracker;
pub mod broadcast;
pub mod chunk;
pub mod dedup;
pub mod ids;
pub mod jobs;
pub mod labels;
pub mod maintenance;
pub mod membership;
pub mod message;
pub mod now;
pub mod piece;
pub mod rate_limit;
pub mod resources;
pub mod units;
