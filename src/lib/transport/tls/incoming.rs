//! The server's accepted connections: counted, `TCP_NODELAY`, admitted through
//! the connection table (caps in all and per address; see [`super::conns`]) and,
//! with TLS configured, handshaken. The accept loop never waits. Callers that
//! speak the wrong protocol are refused with a log line naming the fix; every
//! refusal is counted, and logged at most once per cause per interval.

use std::{io, sync::Arc, time::Instant};

use tokio::{net::TcpListener, sync::mpsc};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tracing::warn;

pub use super::io::PeerInfo;
use super::{
    TlsConfig,
    conns::{ConnTable, Tracked},
    io::{MaybeTls, READ_AHEAD_BYTES},
    sniff::{self, Opening},
};
use crate::transport::{
    keepalive::KeepAlive,
    refusals::{Refusals, Refused},
    traffic::{CountingStream, Traffic},
};

/// Connections handed to the server but not yet taken.
const ACCEPT_QUEUE: usize = 128;

/// Accepts on `listener` until the returned stream is dropped.
pub fn incoming(
    listener: TcpListener,
    traffic: Arc<Traffic>,
    tls: Option<TlsConfig>,
    table: Arc<ConnTable>,
    refusals: Arc<Refusals>,
    keepalive: KeepAlive,
) -> impl Stream<Item = io::Result<Tracked<MaybeTls>>> {
    let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
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
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            // Best effort: HTTP/2 PINGs still find a dead connection without it.
            let _ = keepalive.apply(&tcp);
            // Never wait here: a slot-hogging caller must not stop accepts.
            let slot = match table.try_open(remote.ip()) {
                Ok(slot) => slot,
                Err(why) => {
                    refusals.record(why, Some(remote), &"", Instant::now());
                    continue;
                }
            };
            let (tx, traffic, tls) = (tx.clone(), Arc::clone(&traffic), tls.clone());
            let (table, refusals) = (Arc::clone(&table), Arc::clone(&refusals));
            tokio::spawn(async move {
                let limits = table.limits().clone();
                let refuse = |why, detail: &dyn std::fmt::Display| {
                    refusals.record(why, Some(remote), detail, Instant::now());
                };
                let opening = sniff::opening(&tcp, limits.first_byte_timeout).await;
                let io = match (tls, opening) {
                    (_, Opening::Nothing) => return refuse(Refused::SlowOpening, &"no first byte"),
                    (None, Opening::Tls) => return refuse(Refused::TlsOnPlaintext, &""),
                    (None, Opening::Plain) => {
                        match sniff::plaintext(&tcp, limits.first_byte_timeout).await {
                            sniff::Plaintext::Http2 => {}
                            sniff::Plaintext::Http1 => {
                                refuse(Refused::Http1OnGrpc, &"");
                                sniff::refuse_http1(tcp).await;
                                return;
                            }
                            sniff::Plaintext::Garbage => return refuse(Refused::NotHttp2, &""),
                            sniff::Plaintext::Incomplete => {
                                return refuse(Refused::SlowOpening, &"incomplete HTTP/2 preface");
                            }
                        }
                        MaybeTls::Plain(CountingStream::new(tcp, traffic))
                    }
                    (Some(_), Opening::Plain) => {
                        refuse(Refused::PlaintextOnTls, &"");
                        sniff::refuse_plaintext(tcp).await;
                        return;
                    }
                    (Some(tls), Opening::Tls) => {
                        let Some(config) = tls.server() else { return };
                        let acceptor = tokio_rustls::TlsAcceptor::from(config);
                        let stream =
                            CountingStream::new(tcp, traffic).with_read_ahead(READ_AHEAD_BYTES);
                        match tokio::time::timeout(
                            limits.handshake_timeout,
                            acceptor.accept(stream),
                        )
                        .await
                        {
                            Ok(Ok(s)) => MaybeTls::tls_server(s),
                            Ok(Err(e)) => return refuse(Refused::TlsHandshake, &e),
                            Err(_) => {
                                return refuse(Refused::SlowOpening, &"TLS handshake timed out");
                            }
                        }
                    }
                };
                // The opening slot covers opening only, not waiting for the server.
                let conn = match table.establish(slot, Instant::now()) {
                    Ok((conn, evicted)) => {
                        if evicted {
                            refuse(Refused::EvictedIdle, &"to admit this caller");
                        }
                        conn
                    }
                    Err(why) => return refuse(why, &""),
                };
                let _ = tx.send(Ok(Tracked::new(io, conn))).await;
            });
        }
    });
    ReceiverStream::new(rx)
}
