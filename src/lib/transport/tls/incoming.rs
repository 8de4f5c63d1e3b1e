//! The server's accepted connections: counted, `TCP_NODELAY`, and with TLS
//! configured, handshaken (at most [`MAX_HANDSHAKES`] at once, each within
//! [`HANDSHAKE_TIMEOUT`]). Callers that speak the wrong protocol are refused
//! with a log line naming the fix.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::{Semaphore, mpsc},
};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::transport::server::Connected;
use tracing::{error, warn};

use super::{
    TlsConfig,
    sniff::{self, Opening},
};
use crate::transport::traffic::{CountingStream, Traffic};

/// TLS handshakes in progress at most; more connections wait to be handshaken.
pub const MAX_HANDSHAKES: usize = 256;
/// Longest a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections handed to the server but not yet taken.
const ACCEPT_QUEUE: usize = 128;

/// Who is on the other end of a server connection; in every request's
/// extensions.
#[derive(Debug, Clone, Default)]
pub struct PeerInfo {
    /// Its address.
    pub remote: Option<SocketAddr>,
    /// The subject of its verified client certificate (TLS only).
    pub subject: Option<String>,
}

enum Inner {
    Plain(CountingStream),
    Tls(Box<tokio_rustls::server::TlsStream<CountingStream>>),
}

/// One accepted connection.
pub struct ServerIo {
    inner: Inner,
    info: PeerInfo,
}

impl std::fmt::Debug for ServerIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIo")
            .field("info", &self.info)
            .field("tls", &matches!(self.inner, Inner::Tls(_)))
            .finish()
    }
}

impl Connected for ServerIo {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for ServerIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServerIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Inner::Plain(s) => s.is_write_vectored(),
            Inner::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Plain(s) => Pin::new(s).poll_flush(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Accepts on `listener` until the returned stream is dropped.
pub fn incoming(
    listener: TcpListener,
    traffic: Arc<Traffic>,
    tls: Option<TlsConfig>,
) -> impl Stream<Item = io::Result<ServerIo>> {
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
            let Ok(permit) = Arc::clone(&handshakes).acquire_owned().await else {
                return;
            };
            let (tx, traffic, tls) = (tx.clone(), Arc::clone(&traffic), tls.clone());
            tokio::spawn(async move {
                let _permit = permit;
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
                    (None, Opening::Plain) => ServerIo {
                        inner: Inner::Plain(CountingStream::new(tcp, traffic)),
                        info: PeerInfo {
                            remote: Some(remote),
                            subject: None,
                        },
                    },
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
                            Ok(Ok(s)) => {
                                let subject = s
                                    .get_ref()
                                    .1
                                    .peer_certificates()
                                    .and_then(|c| c.first())
                                    .and_then(|c| super::subject(c));
                                ServerIo {
                                    inner: Inner::Tls(Box::new(s)),
                                    info: PeerInfo {
                                        remote: Some(remote),
                                        subject,
                                    },
                                }
                            }
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
                let _ = tx.send(Ok(io)).await;
            });
        }
    });
    ReceiverStream::new(rx)
}
