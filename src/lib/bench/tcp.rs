//! The raw-TCP baseline: the same bytes, the same connection pattern (one
//! connection per ordered pair, messages one way, 8-byte ACKs back on the same
//! connection), over plain tokio `TcpStream`s. What the machine can do.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::Mutex,
    task::JoinSet,
    time::Instant,
};

use super::{
    error::BenchError,
    progress::{IterationOutcome, Progress},
};

/// One sender-side connection: write half for messages, read half for ACKs.
#[derive(Debug)]
struct Pair {
    writer: Arc<Mutex<OwnedWriteHalf>>,
    reader: Arc<Mutex<OwnedReadHalf>>,
}

/// `nodes` listeners and one connection per ordered pair, kept across iterations.
#[derive(Debug)]
pub struct TcpMesh {
    pairs: Vec<Pair>,
    servers: JoinSet<()>,
}

impl TcpMesh {
    /// Binds `nodes` loopback listeners accepting payloads up to `max_payload` and
    /// connects every ordered pair.
    ///
    /// # Errors
    /// Binding or connecting failed.
    pub async fn start(nodes: usize, max_payload: u64) -> Result<Self, BenchError> {
        let setup = |e: std::io::Error| BenchError::Setup(format!("tcp baseline: {e}"));
        let mut servers = JoinSet::new();
        let mut addrs = Vec::with_capacity(nodes);
        for _ in 0..nodes {
            let listener = TcpListener::bind("127.0.0.1:0").await.map_err(setup)?;
            addrs.push(listener.local_addr().map_err(setup)?);
            servers.spawn(accept_loop(listener, max_payload));
        }
        let mut pairs = Vec::with_capacity(nodes * nodes.saturating_sub(1));
        for i in 0..nodes {
            for (j, addr) in addrs.iter().enumerate() {
                if i == j {
                    continue;
                }
                let stream = TcpStream::connect(addr).await.map_err(setup)?;
                stream.set_nodelay(true).map_err(setup)?;
                let (r, w) = stream.into_split();
                pairs.push(Pair {
                    writer: Arc::new(Mutex::new(w)),
                    reader: Arc::new(Mutex::new(r)),
                });
            }
        }
        Ok(Self { pairs, servers })
    }

    /// Moves `messages_per_peer` copies of `payload` over every connection.
    ///
    /// # Errors
    /// An I/O error or the deadline.
    pub async fn run_iteration(
        &self,
        payload: &Bytes,
        messages_per_peer: usize,
        iteration: usize,
        timeout: Duration,
        progress: &Arc<dyn Progress>,
    ) -> Result<IterationOutcome, BenchError> {
        let start = Instant::now();
        let mut tasks = JoinSet::new();
        for pair in &self.pairs {
            let (writer, reader) = (Arc::clone(&pair.writer), Arc::clone(&pair.reader));
            let payload = payload.clone();
            let progress = Arc::clone(progress);
            tasks.spawn(async move {
                let mut submitted = Vec::with_capacity(messages_per_peer);
                let write = async {
                    let mut w = writer.lock().await;
                    for seq in 0..messages_per_peer as u64 {
                        submitted.push(Instant::now());
                        let mut header = [0u8; 16];
                        header[..8].copy_from_slice(&(payload.len() as u64).to_le_bytes());
                        header[8..].copy_from_slice(&seq.to_le_bytes());
                        w.write_all(&header).await?;
                        w.write_all(&payload).await?;
                    }
                    Ok::<_, std::io::Error>(())
                };
                let read = async {
                    let mut r = reader.lock().await;
                    let mut acks = Vec::with_capacity(messages_per_peer);
                    for _ in 0..messages_per_peer {
                        let mut ack = [0u8; 8];
                        r.read_exact(&mut ack).await?;
                        acks.push(Instant::now());
                        progress.advance(1);
                    }
                    Ok::<_, std::io::Error>(acks)
                };
                let ((), acks) = tokio::try_join!(write, read)?;
                Ok::<_, std::io::Error>((submitted, acks))
            });
        }
        let collect = async {
            let mut outcome = IterationOutcome::default();
            let mut last = start;
            while let Some(joined) = tasks.join_next().await {
                let (submitted, acks) = joined
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()))
                    .map_err(|reason| BenchError::Tcp { iteration, reason })?;
                for (s, a) in submitted.iter().zip(&acks) {
                    let ns = a.saturating_duration_since(*s).as_nanos();
                    outcome
                        .ack_latencies_ns
                        .push(u64::try_from(ns).unwrap_or(u64::MAX));
                    last = last.max(*a);
                }
                outcome.messages += acks.len() as u64;
            }
            outcome.convergence = last.saturating_duration_since(start);
            outcome.bytes = outcome.messages * payload.len() as u64;
            Ok(outcome)
        };
        tokio::time::timeout(timeout, collect)
            .await
            .map_err(|_| BenchError::Tcp {
                iteration,
                reason: format!("did not finish within {timeout:?}"),
            })?
    }

    /// Stops the listeners.
    pub fn shutdown(mut self) {
        self.servers.abort_all();
    }
}

async fn accept_loop(listener: TcpListener, max_payload: u64) {
    let mut conns = JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        conns.spawn(serve(stream, max_payload));
    }
}

/// Reads framed messages into one reused buffer and ACKs each with its sequence number.
async fn serve(mut stream: TcpStream, max_payload: u64) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let mut header = [0u8; 16];
        if stream.read_exact(&mut header).await.is_err() {
            return Ok(());
        }
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&header[..8]);
        let len = u64::from_le_bytes(len_bytes);
        if len > max_payload {
            return Err(std::io::Error::other("tcp baseline frame over the limit"));
        }
        buf.resize(usize::try_from(len).unwrap_or(0), 0);
        stream.read_exact(&mut buf).await?;
        stream.write_all(&header[8..]).await?;
    }
}
