//! The membership runtime: an agent per node that drives the pure protocol state
//! over a transport (gRPC, or the in-memory network of simulations).

mod agent;
mod loops;
pub mod stats;

pub use agent::{AgentConfig, EVENT_BUFFER, MAX_SEEDS, MembershipAgent, now};
