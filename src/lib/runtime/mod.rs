//! A running node: the server, the loops, identity on disk, and shutdown.

pub mod identity;
pub mod membership;
pub mod node;
