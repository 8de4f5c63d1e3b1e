//! The client side of every gRPC connection a process makes: TCP with
//! `TCP_NODELAY`, byte counting, and TLS when configured. A plaintext client
//! refused by a TLS node, and a TLS client that reaches a plaintext node, log
//! what to change.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tracing::error;

use super::{
    TlsConfig,
    io::{MaybeTls, READ_AHEAD_BYTES},
    sniff,
};
use crate::transport::{
    keepalive::KeepAlive,
    traffic::{CountingStream, Traffic},
};

/// A tonic connector: plaintext, or TLS with the process's certificates.
#[derive(Debug, Clone)]
pub struct Connector {
    traffic: Arc<Traffic>,
    tls: Option<TlsConfig>,
    keepalive: Option<KeepAlive>,
}

impl Connector {
    /// Counts into `traffic`; speaks TLS when `tls` is set.
    pub fn new(traffic: Arc<Traffic>, tls: Option<TlsConfig>) -> Self {
        Self {
            traffic,
            tls,
            keepalive: None,
        }
    }

    /// Sets TCP keepalive and `TCP_USER_TIMEOUT` from `keepalive` on every
    /// connection (a node's links to its peers).
    #[must_use]
    pub fn with_keepalive(mut self, keepalive: KeepAlive) -> Self {
        self.keepalive = Some(keepalive);
        self
    }
}

/// One client connection; a plaintext one checks the first bytes it reads for
/// a TLS node's refusal.
pub struct ClientIo {
    io: MaybeTls,
    sniffed: bool,
    addr: String,
}

impl std::fmt::Debug for ClientIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIo")
            .field("io", &self.io)
            .field("sniffed", &self.sniffed)
            .field("addr", &self.addr)
            .finish()
    }
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<ClientIo>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let traffic = Arc::clone(&self.traffic);
        let tls = self.tls.clone();
        let keepalive = self.keepalive;
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("no host in {uri}"))
                })?
                .trim_matches(|c| c == '[' || c == ']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(80);
            let addr = format!("{host}:{port}");
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            if let Some(ka) = keepalive
                && let Err(e) = ka.apply(&tcp)
            {
                tracing::debug!(peer = %addr, error = %e, "cannot set TCP keepalive");
            }
            let stream = CountingStream::new(tcp, traffic);
            let io = match tls {
                None => MaybeTls::Plain(stream),
                Some(tls) => {
                    let name = ServerName::try_from(host.clone()).map_err(|e| {
                        io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}"))
                    })?;
                    let connector = tokio_rustls::TlsConnector::from(tls.client());
                    let stream = stream.with_read_ahead(READ_AHEAD_BYTES);
                    let s = connector.connect(name, stream).await.map_err(|e| {
                        let hint = if e.to_string().contains("InvalidContentType")
                            || e.to_string().contains("corrupt message")
                        {
                            " (the node seems to run without TLS)"
                        } else {
                            ""
                        };
                        error!(peer = %addr, error = %e, "TLS handshake failed{hint}");
                        io::Error::new(
                            e.kind(),
                            format!("TLS handshake with {addr} failed: {e}{hint}"),
                        )
                    })?;
                    MaybeTls::tls_client(s)
                }
            };
            Ok(TokioIo::new(ClientIo {
                sniffed: io.is_tls(),
                io,
                addr,
            }))
        })
    }
}

impl AsyncRead for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if !this.sniffed && buf.filled().len() > before {
            this.sniffed = true;
            if sniff::is_tls_refusal(&buf.filled()[before..]) {
                error!(
                    peer = %this.addr,
                    "the node requires TLS: run this one with --tls-cert, --tls-key and \
                     --tls-ca signed by the cluster's CA"
                );
            }
        }
        r
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
