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

/// Encrypted bytes rustls may hold for the socket (its default is 64 KiB),
/// which also bounds the plaintext it takes from one write. At 64 KiB a
/// 512 KiB message took 8 rounds of encrypt-then-`writev`; at 512 KiB it takes
/// one (`gsp bench --tls`, 2-core EPYC: TLS 1641 -> 1919 MiB/s; 256 KiB gave
/// less, 1 and 2 MiB no more). Held only while the socket is full, on top of
/// the kernel's send buffer.
const SEND_BUFFER_BYTES: usize = 512 << 10;

/// What a TLS connection reads from its socket at once (see
/// [`CountingStream::with_read_ahead`]; allocated on its first read): rustls
/// asks for one record (~16 KiB) per read, ~35 `recvfrom` calls per 512 KiB
/// message; 64 KiB ahead makes it ~9 (`gsp bench --tls`, 2-core EPYC: TLS
/// 1919 -> 2037 MiB/s; 128 and 256 KiB were no better).
pub(super) const READ_AHEAD_BYTES: usize = 64 << 10;

impl MaybeTls {
    /// The client side of an established TLS connection.
    pub fn tls_client(mut s: tokio_rustls::client::TlsStream<CountingStream>) -> Self {
        s.get_mut().1.set_buffer_limit(Some(SEND_BUFFER_BYTES));
        Self::Tls(Box::new(s.into()))
    }

    /// The server side of an established TLS connection.
    pub fn tls_server(mut s: tokio_rustls::server::TlsStream<CountingStream>) -> Self {
        s.get_mut().1.set_buffer_limit(Some(SEND_BUFFER_BYTES));
        Self::Tls(Box::new(s.into()))
    }

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
