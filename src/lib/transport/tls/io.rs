//! A connection that is plaintext or TLS, either side, bytes counted.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

use crate::transport::traffic::CountingStream;

/// Plaintext or TLS over a counted TCP stream.
pub enum MaybeTls {
    /// No TLS.
    Plain(CountingStream),
    /// TLS, client or server side.
    Tls(Box<tokio_rustls::TlsStream<CountingStream>>),
}

impl MaybeTls {
    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Self::Tls(_))
    }

    fn tcp(&self) -> &CountingStream {
        match self {
            Self::Plain(s) => s,
            Self::Tls(s) => s.get_ref().0,
        }
    }
}

impl std::fmt::Debug for MaybeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaybeTls")
            .field("tls", &self.is_tls())
            .field("peer", &self.tcp().peer_addr().ok())
            .finish()
    }
}

/// Who is on the other end of a server connection; in every request's
/// extensions.
#[derive(Debug, Clone, Default)]
pub struct PeerInfo {
    /// Its address.
    pub remote: Option<std::net::SocketAddr>,
    /// The subject of its verified client certificate (TLS only).
    pub subject: Option<String>,
    /// The role (and name) its verified certificate grants (TLS only).
    pub grant: Option<super::pki::Grant>,
}

impl Connected for MaybeTls {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        let cert = match self {
            Self::Plain(_) => None,
            Self::Tls(s) => s.get_ref().1.peer_certificates().and_then(|c| c.first()),
        };
        PeerInfo {
            remote: self.tcp().peer_addr().ok(),
            subject: cert.and_then(|c| super::subject(c)),
            grant: cert.and_then(|c| super::pki::grant(c)),
        }
    }
}

impl AsyncRead for MaybeTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
