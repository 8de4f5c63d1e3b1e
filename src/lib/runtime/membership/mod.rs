//! The membership runtime: an agent per node that drives the pure protocol state
//! over a transport (gRPC, or the in-memory network of simulations).

mod admission;
mod agent;
mod exec;
mod handler;
pub mod stats;

pub use agent::query::{self, MAX_IN_FLIGHT, MAX_IN_FLIGHT_PER_CALLER, QUERY_FANOUT, QueryOutcome};
pub use agent::{AgentConfig, EVENT_BUFFER, MAX_SEEDS, MembershipAgent, RecordAuth, now};
