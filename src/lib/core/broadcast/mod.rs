//! Reliable broadcast, pure: ids are announced and payloads pulled once per node
//! (small payloads are pushed), every deliverer confirms to the origin, and the
//! origin tracks convergence against the members alive when it started.

pub mod action;
pub mod config;
pub mod state;
pub mod store;
pub mod tree;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod swarm_tests;
