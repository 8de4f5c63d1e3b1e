//! Membership: SWIM-style probing with Lifeguard's refinements, updates
//! piggybacked on probes and gossip, and push-pull anti-entropy by digests.
//!
//! [`Membership`] is the whole protocol state of one node, pure and synchronous:
//! the runtime asks it whom to probe, tells it what came back, and sends what it
//! says to send. Time and randomness are passed in.

pub mod candidates;
mod claims;
pub mod config;
pub mod events;
pub mod exchange;
pub mod messages;
mod protocol;
pub mod queue;
pub mod record;
pub mod suspicion;
pub mod table;

pub use protocol::{Counters, MemberView, Membership, ProbeTarget, force, swim};

/// Membership protocol revision published in every record this build creates.
pub const PROTOCOL_VERSION: u32 = 1;
