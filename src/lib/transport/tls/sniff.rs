//! Telling plaintext from TLS on a fresh connection, so that a plaintext node
//! and a TLS cluster refuse each other with a clear error on both sides rather
//! than a protocol error on one.

use std::time::Duration;

use tokio::{io::AsyncWriteExt as _, net::TcpStream};

/// Debug text of the GOAWAY a TLS node sends a plaintext caller; a plaintext
/// client that reads it logs why it was refused.
pub(super) const REQUIRES_TLS: &[u8] =
    b"gsp: this node requires TLS; give the caller --tls-cert, --tls-key and --tls-ca";

/// What a connection opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Opening {
    /// A TLS handshake record.
    Tls,
    /// Anything else (an HTTP/2 preface, or garbage).
    Plain,
    /// Nothing arrived in time, or the peer closed.
    Nothing,
}

/// Peeks at the first byte without consuming it, waiting at most `timeout`.
pub(super) async fn opening(stream: &TcpStream, timeout: Duration) -> Opening {
    let mut first = [0u8; 1];
    match tokio::time::timeout(timeout, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == 0x16 => Opening::Tls,
        Ok(Ok(1)) => Opening::Plain,
        _ => Opening::Nothing,
    }
}

/// HTTP/2's connection preface: every gRPC connection in plaintext opens so.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How a plaintext connection opened, past its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Plaintext {
    /// HTTP/2's preface: a gRPC caller.
    Http2,
    /// An HTTP/1 request line (`GET / HTTP/1.1`, ...).
    Http1,
    /// Anything else.
    Garbage,
    /// The preface did not complete in time, or the peer closed.
    Incomplete,
}

/// Peeks (without consuming) until the opening bytes match HTTP/2's preface
/// or stop matching it, waiting at most `timeout` in all.
pub(super) async fn plaintext(stream: &TcpStream, timeout: Duration) -> Plaintext {
    let mut buf = [0u8; PREFACE.len()];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return Plaintext::Incomplete,
        };
        if buf[..n] != PREFACE[..n] {
            let token = buf[..n]
                .iter()
                .position(|b| *b == b' ')
                .is_some_and(|i| i > 0 && buf[..i].iter().all(u8::is_ascii_uppercase));
            return if token {
                Plaintext::Http1
            } else {
                Plaintext::Garbage
            };
        }
        if n == PREFACE.len() {
            return Plaintext::Http2;
        }
        // The rest of the preface is on its way (peek returns what is there).
        if tokio::time::Instant::now() >= deadline {
            return Plaintext::Incomplete;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Answers an HTTP/1 request on the gRPC port with `505` naming the fix,
/// then closes.
pub(super) async fn refuse_http1(mut stream: TcpStream) {
    let body = "gsp: this port speaks gRPC (HTTP/2); the node's HTTP endpoints are on its side port (--http-listen)\n";
    let reply = format!(
        "HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = stream.write_all(reply.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Answers a plaintext HTTP/2 caller with SETTINGS and a GOAWAY
/// (INADEQUATE_SECURITY) carrying [`REQUIRES_TLS`], then closes.
pub(super) async fn refuse_plaintext(mut stream: TcpStream) {
    let mut out = Vec::with_capacity(9 + 9 + 8 + REQUIRES_TLS.len());
    // SETTINGS, empty.
    out.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    let len = u32::try_from(8 + REQUIRES_TLS.len()).unwrap_or(0);
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[0x7, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&0u32.to_be_bytes()); // last stream id
    out.extend_from_slice(&0xcu32.to_be_bytes()); // INADEQUATE_SECURITY
    out.extend_from_slice(REQUIRES_TLS);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = stream.write_all(&out).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Whether `bytes` (the first a plaintext client read) are a TLS node's refusal.
pub(super) fn is_tls_refusal(bytes: &[u8]) -> bool {
    bytes.windows(REQUIRES_TLS.len()).any(|w| w == REQUIRES_TLS)
}
