//! gsp: gossip-based node discovery, resource awareness, reliable broadcast
//! and remote execution over gRPC.
//!
//! # Layout
//!
//! Dependencies point one way: `core` <- `clock` <- `transport`/`probe` <-
//! `runtime` <- `config` <- `cli`/`bench`. `core` is a crate of its own;
//! `tests/layers.rs` checks the rest.
//!
//! - [`core`]: the `gsp-core` crate (`src/lib/core/`, re-exported), so that the
//!   compiler keeps tokio, tonic, sysinfo and the rest of gsp out of it. The
//!   protocol, pure and synchronous: membership (records, the
//!   SWIM cycle as inputs -> actions, push-pull, suspicion, the update queue),
//!   broadcast (swarm pieces, pulls, receipts, seen ids), jobs (spec, step
//!   states, output ring), resources (matching, best fit, reservations, GPU
//!   picking), chunking, the ACK tracker, ids, units. Takes `now` and RNGs as
//!   inputs; no I/O.
//! - [`clock`]: the clocks, read here only.
//! - [`transport`]: the wire. Generated protobuf code, tonic services and
//!   clients, the channel pool, protobuf <-> domain conversions with their
//!   limits, the in-memory network of the simulations, TLS, admin tokens.
//! - [`probe`]: the machine: CPU and memory (sysinfo), GPUs (NVML), cameras,
//!   the hardware inventory.
//! - [`runtime`]: a running node. The membership agent and the executor of its
//!   SWIM cycle, the broadcast engine, jobs, reservations, handlers, admin
//!   services, maintenance and labels, the HTTP side port and metrics,
//!   identity and the data dir, start-up and shutdown.
//! - [`config`]: the YAML file (iarnet's layout plus a `gsp:` section) and how
//!   flags, environment and file merge into a node's settings.
//! - [`bench`]: the load generator behind `gsp bench`: in-process clusters, the
//!   flood workload, the raw-TCP baseline, histograms, reports and comparisons,
//!   and the discrete-event simulations of the pure cores.
//! - [`cli`]: clap definitions, one file per subcommand, output renderers, exit
//!   codes.

pub mod bench;
pub mod cli;
pub mod clock;
pub mod config;
pub use gsp_core as core;
pub mod probe;
pub mod runtime;
pub mod transport;
