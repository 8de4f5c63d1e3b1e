//! gsp: gossip-based node discovery, resource awareness and reliable broadcast
//! over gRPC.
//!
//! # Layout
//!
//! Dependencies point one way: `core` <- `transport`/`runtime`/`probe` <- `cli`/`bench`.
//!
//! - [`core`]: the protocol, pure and synchronous. Chunking and reassembly, the ACK
//!   tracker, ids, units. Takes `now` and RNGs as inputs; no I/O.
//! - [`transport`]: the wire. Generated protobuf code, tonic services and clients,
//!   the channel pool, protobuf <-> domain conversions, and the mapping of errors
//!   to gRPC status codes.
//! - [`runtime`]: a running node. Identity on disk, the gRPC server with health and
//!   reflection, graceful shutdown.
//! - [`bench`]: the load generator behind `gsp bench`: in-process clusters, the
//!   flood workload, the raw-TCP baseline, histograms, reports and comparisons.
//! - [`cli`]: clap definitions, one file per subcommand, output renderers, exit codes.

pub mod bench;
pub mod cli;
pub mod config;
pub mod core;
pub mod probe;
pub mod runtime;
pub mod transport;
