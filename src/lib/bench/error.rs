//! Bench errors.

use crate::transport::error::SendError;

/// Why a bench run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The settings are invalid.
    #[error("{0}")]
    Config(String),
    /// The cluster or baseline could not be set up.
    #[error("bench setup failed: {0}")]
    Setup(String),
    /// A message failed (a peer vanished, rejected it, or never ACKed).
    #[error(
        "{phase} iteration {iteration}: message from node {from} to node {to} failed: {source}"
    )]
    Send {
        /// "gsp", "gsp+tls" or "tcp".
        phase: &'static str,
        /// Iteration number (warm-up iterations count from 1 too).
        iteration: usize,
        /// Sender index.
        from: usize,
        /// Receiver index.
        to: usize,
        /// The failure.
        #[source]
        source: SendError,
    },
    /// The raw-TCP baseline failed.
    #[error("tcp baseline iteration {iteration}: {reason}")]
    Tcp {
        /// Iteration number.
        iteration: usize,
        /// What went wrong.
        reason: String,
    },
    /// An iteration did not converge in time.
    #[error(
        "{phase} iteration {iteration} did not converge within {timeout:?}: {acked}/{expected} messages acked"
    )]
    Timeout {
        /// "gsp", "gsp+tls" or "tcp".
        phase: &'static str,
        /// Iteration number.
        iteration: usize,
        /// The deadline.
        timeout: std::time::Duration,
        /// ACKs received.
        acked: u64,
        /// ACKs expected.
        expected: u64,
    },
    /// Writing the report failed.
    #[error("cannot write the report to {path}: {source}")]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
