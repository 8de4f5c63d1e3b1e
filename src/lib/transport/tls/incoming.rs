//! The server's accepted connections: counted, `TCP_NODELAY`, and with TLS
//! configured, handshaken (at most [`MAX_HANDSHAKES`] being opened at once, each within
//! [`HANDSHAKE_TIMEOUT`]). Callers that speak the wrong protocol are refused
//! with a log line naming the fix.

use std::{io, sync::Arc, time::Duration};

use tokio::{
    net::TcpListener,
    sync::{Semaphore, mpsc},
};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tracing::{error, warn};

pub use super::io::PeerInfo;
use super::{
    TlsConfig,
    io::MaybeTls,
    sniff::{self, Opening},
};
use crate::transport::traffic::{CountingStream, Traffic};

/// Connections being opened (first byte, TLS handshake) at most; more new
/// connections are closed at once so the accept loop never waits.
pub const MAX_HANDSHAKES: usize = 256;
/// Longest a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections handed to the server but not yet taken.
const ACCEPT_QUEUE: usize = 128;

/// Accepts on `listener` until the returned stream is dropped.
pub fn incoming(
    listener: TcpListener,
    traffic: Arc<Traffic>,
    tls: Option<TlsConfig>,
) -> impl Stream<Item = io::Result<MaybeTls>> {
    let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = tx.closed() => return,
                a = listener.accept() => a,
            };
            let (tcp, remote) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, then go on.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            // Never wait here: a slot-hogging caller must not stop accepts.
            let Ok(permit) = Arc::clone(&handshakes).try_acquire_owned() else {
                warn!(peer = %remote, "{MAX_HANDSHAKES} connections are being opened; closing this one");
                continue;
            };
            let (tx, traffic, tls) = (tx.clone(), Arc::clone(&traffic), tls.clone());
            tokio::spawn(async move {
                let opening = sniff::opening(&tcp).await;
                let io = match (tls, opening) {
                    (_, Opening::Nothing) => return,
                    (None, Opening::Tls) => {
                        error!(
                            peer = %remote,
                            "refused a TLS connection: this node runs without TLS; give it \
                             --tls-cert, --tls-key and --tls-ca to join a TLS cluster"
                        );
                        return;
                    }
                    (None, Opening::Plain) => MaybeTls::Plain(CountingStream::new(tcp, traffic)),
                    (Some(_), Opening::Plain) => {
                        error!(
                            peer = %remote,
                            "refused a plaintext connection: this node requires TLS; the \
                             caller needs --tls-cert, --tls-key and --tls-ca"
                        );
                        sniff::refuse_plaintext(tcp).await;
                        return;
                    }
                    (Some(tls), Opening::Tls) => {
                        let Some(config) = tls.server() else { return };
                        let acceptor = tokio_rustls::TlsAcceptor::from(config);
                        let stream = CountingStream::new(tcp, traffic);
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                        {
                            Ok(Ok(s)) => MaybeTls::Tls(Box::new(s.into())),
                            Ok(Err(e)) => {
                                warn!(peer = %remote, error = %e, "TLS handshake refused");
                                return;
                            }
                            Err(_) => {
                                warn!(peer = %remote, "TLS handshake timed out");
                                return;
                            }
                        }
                    }
                };
                // The slot covers opening only, not waiting for the server.
                drop(permit);
                let _ = tx.send(Ok(io)).await;
            });
        }
    });
    ReceiverStream::new(rx)
}
