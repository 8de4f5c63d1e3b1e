//! The wire: tonic services and the client pool, protobuf <-> domain conversions
//! (the only place prost types meet domain types).

pub mod auth;
pub mod broadcast;
pub mod config;
pub mod convert;
pub mod data_plane;
pub mod error;
pub mod fd_limit;
pub mod grpc_errors;
pub mod keepalive;
pub mod membership;
pub mod pb;
pub mod pool;
pub mod refusals;
pub mod tls;
pub mod traffic;
