//! How starting or running a node fails.

use crate::transport::error::TransportError;

/// Errors starting or stopping a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A listener's address could not be read.
    #[error("cannot read the listener's address: {0}")]
    Listener(#[source] std::io::Error),
    /// Reflection could not load the descriptor set.
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The server failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The persisted maintenance state cannot be read.
    #[error(transparent)]
    Maintenance(#[from] crate::runtime::maintenance::store::StoreError),
    /// The persisted run-time labels cannot be read.
    #[error(transparent)]
    Labels(#[from] crate::runtime::labels::LabelsError),
    /// The server task panicked or was cancelled.
    #[error("server task ended: {0}")]
    ServerTask(String),
    /// The TLS files cannot be used to sign or check broadcasts.
    #[error(transparent)]
    Tls(#[from] crate::transport::tls::TlsError),
    /// Shared client pools were given to a TLS node (they dial plaintext).
    #[error("shared client pools are plaintext; a TLS node needs its own")]
    SharedPoolsWithTls,
}
