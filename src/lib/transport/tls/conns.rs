//! The server's connection table: caps on connections being opened and on
//! connections established, in all and per remote address, so that no one
//! address (idle sockets, HTTP/2 prefaces and nothing else) can take a node's
//! file descriptors or memory, and the accept loop never waits. At the global
//! cap the connection idle longest is closed to make room (if it has been idle
//! for [`MIN_IDLE_TO_EVICT`]); otherwise the new one is refused.

use std::{
    collections::HashMap,
    io,
    net::IpAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::Connected;

use crate::transport::refusals::Refused;

/// A connection idle for less than this is never closed to make room.
pub const MIN_IDLE_TO_EVICT: Duration = Duration::from_secs(5);

/// The caps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnLimits {
    /// Connections being opened (first byte, TLS handshake) at once.
    pub max_opening: usize,
    /// The same, from one remote address.
    pub max_opening_per_address: usize,
    /// Connections established at once (kept below the file-descriptor limit).
    pub max_established: usize,
    /// The same, from one remote address.
    pub max_per_address: usize,
    /// Longest a new connection may take to send its first byte.
    pub first_byte_timeout: Duration,
    /// Longest a TLS handshake may take.
    pub handshake_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            max_opening: 256,
            max_opening_per_address: 32,
            max_established: established_budget(),
            max_per_address: 512,
            first_byte_timeout: Duration::from_secs(3),
            handshake_timeout: Duration::from_secs(5),
        }
    }
}

/// Three quarters of the soft file-descriptor limit (the rest is for outgoing
/// connections, files and the opening table), between 64 and 65,536.
fn established_budget() -> usize {
    let soft = crate::transport::fd_limit::soft()
        .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    (soft / 4 * 3).saturating_sub(256).clamp(64, 65_536)
}

#[derive(Debug)]
struct Established {
    ip: IpAddr,
    /// Milliseconds since the table's epoch of its last byte either way.
    activity: Arc<AtomicU64>,
    close: CancellationToken,
}

#[derive(Debug, Default)]
struct Inner {
    opening: HashMap<IpAddr, usize>,
    opening_total: usize,
    established: HashMap<u64, Established>,
    per_address: HashMap<IpAddr, usize>,
    next_id: u64,
}

/// The table; shared by the accept loop and every connection.
#[derive(Debug)]
pub struct ConnTable {
    limits: ConnLimits,
    epoch: Instant,
    inner: Mutex<Inner>,
}

fn dec(map: &mut HashMap<IpAddr, usize>, ip: IpAddr) {
    if let Some(n) = map.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            map.remove(&ip);
        }
    }
}

impl ConnTable {
    /// An empty table with `limits`.
    pub fn new(limits: ConnLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            epoch: Instant::now(),
            inner: Mutex::new(Inner::default()),
        })
    }

    /// The caps.
    pub fn limits(&self) -> &ConnLimits {
        &self.limits
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// A slot to open a connection from `ip` in, or why there is none.
    ///
    /// # Errors
    /// The opening table is full, in all or for `ip`, or `ip` holds its cap of
    /// established connections.
    pub fn try_open(self: &Arc<Self>, ip: IpAddr) -> Result<Opening, Refused> {
        let mut t = self.lock();
        if t.opening_total >= self.limits.max_opening
            || t.opening.get(&ip).copied().unwrap_or(0) >= self.limits.max_opening_per_address
        {
            return Err(Refused::OpeningTableFull);
        }
        if t.per_address.get(&ip).copied().unwrap_or(0) >= self.limits.max_per_address {
            return Err(Refused::PerAddressCap);
        }
        t.opening_total += 1;
        *t.opening.entry(ip).or_default() += 1;
        Ok(Opening {
            table: Arc::clone(self),
            ip,
        })
    }

    /// Turns an opened connection into an established one at `now`, closing
    /// the connection idle longest if the table is full.
    ///
    /// # Errors
    /// The table is full and no connection has been idle long enough to close,
    /// or the address reached its cap meanwhile. Returns what was evicted on
    /// success, so the caller can log it.
    pub fn establish(
        self: &Arc<Self>,
        slot: Opening,
        now: Instant,
    ) -> Result<(Conn, bool), Refused> {
        let ip = slot.ip;
        drop(slot);
        let now = self.ms(now);
        let mut t = self.lock();
        if t.per_address.get(&ip).copied().unwrap_or(0) >= self.limits.max_per_address {
            return Err(Refused::PerAddressCap);
        }
        let mut evicted = false;
        if t.established.len() >= self.limits.max_established {
            let min_idle = u64::try_from(MIN_IDLE_TO_EVICT.as_millis()).unwrap_or(u64::MAX);
            let oldest = t
                .established
                .iter()
                .filter(|(_, e)| !e.close.is_cancelled())
                .min_by_key(|(_, e)| e.activity.load(Ordering::Relaxed))
                .filter(|(_, e)| now.saturating_sub(e.activity.load(Ordering::Relaxed)) >= min_idle)
                .map(|(id, _)| *id);
            let Some(id) = oldest else {
                return Err(Refused::EvictedIdle);
            };
            if let Some(e) = t.established.remove(&id) {
                e.close.cancel();
                dec(&mut t.per_address, e.ip);
                evicted = true;
            }
        }
        let id = t.next_id;
        t.next_id += 1;
        let activity = Arc::new(AtomicU64::new(now));
        let close = CancellationToken::new();
        t.established.insert(
            id,
            Established {
                ip,
                activity: Arc::clone(&activity),
                close: close.clone(),
            },
        );
        *t.per_address.entry(ip).or_default() += 1;
        Ok((
            Conn {
                table: Arc::clone(self),
                id,
                activity,
                closed: Box::pin(close.cancelled_owned()),
            },
            evicted,
        ))
    }

    /// Connections (being opened, established).
    pub fn counts(&self) -> (usize, usize) {
        let t = self.lock();
        (t.opening_total, t.established.len())
    }
}

/// A connection being opened; frees its slot when dropped.
#[derive(Debug)]
pub struct Opening {
    table: Arc<ConnTable>,
    ip: IpAddr,
}

impl Drop for Opening {
    fn drop(&mut self) {
        let mut t = self.table.lock();
        t.opening_total = t.opening_total.saturating_sub(1);
        dec(&mut t.opening, self.ip);
    }
}

/// An established connection's entry; leaves the table when dropped.
pub struct Conn {
    table: Arc<ConnTable>,
    id: u64,
    activity: Arc<AtomicU64>,
    closed: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.id)
            .field("activity", &self.activity)
            .finish_non_exhaustive()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let mut t = self.table.lock();
        if let Some(e) = t.established.remove(&self.id) {
            dec(&mut t.per_address, e.ip);
        }
    }
}

impl Conn {
    fn touch(&self) {
        let now = self.table.ms(Instant::now());
        self.activity.store(now, Ordering::Relaxed);
    }

    fn check_closed(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.closed.as_mut().poll(cx).is_ready() {
            Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed to make room: the connection table is full",
            ))
        } else {
            Ok(())
        }
    }
}

/// An I/O stream whose connection is in the table: its activity is recorded,
/// and it fails once the table closes it.
#[derive(Debug)]
pub struct Tracked<T> {
    io: T,
    conn: Conn,
}

impl<T> Tracked<T> {
    /// `io`, accounted for by `conn`.
    pub fn new(io: T, conn: Conn) -> Self {
        Self { io, conn }
    }
}

impl<T: Connected> Connected for Tracked<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.conn.check_closed(cx)?;
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.conn.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.conn.check_closed(cx)?;
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.conn.touch();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.conn.check_closed(cx)?;
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.conn.touch();
        }
        r
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

#[cfg(test)]
mod tests;
