//! The membership runtime: an agent per node that drives the pure protocol state
//! over a transport (gRPC, or the in-memory network of simulations).

mod admission;
mod agent;
mod exec;
mod handler;
mod loops;
pub mod query;
pub mod stats;
mod verify;

pub use agent::{AgentConfig, EVENT_BUFFER, MAX_SEEDS, MembershipAgent, RecordAuth, now};
pub use query::{MAX_IN_FLIGHT, MAX_IN_FLIGHT_PER_CALLER, QUERY_FANOUT, QueryOutcome};
