//! Resources: what a node publishes about its machine, what a query asks for,
//! which nodes match, and the cluster-wide aggregate view. Pure.

pub mod aggregate;
pub mod capacity;
pub mod inventory;
pub mod matcher;
pub mod query;
pub mod request;
pub mod reserve;
