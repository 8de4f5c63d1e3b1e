//! Dead-connection detection on every gRPC connection, client and server side.
//!
//! A link that half-dies (a partition, a host that froze, a NAT that forgot the
//! flow) leaves a TCP connection ESTABLISHED with data stuck in its send queue
//! and retransmissions backing off to tens of seconds. Requests on it wait until
//! their deadline, and after the link heals the kernel may not retry for half a
//! minute. Three timers, all derived from the gossip interval, bound this:
//!
//! - **HTTP/2 PING** after `interval` without reading anything (busy connections
//!   never ping: any frame read counts), closed if unanswered within `timeout`.
//!   tonic then redials on the next request.
//! - **`TCP_USER_TIMEOUT`**: sent data unacknowledged for longer is an error, so
//!   a connection whose peer vanished mid-write dies even while it is writing.
//! - **TCP keepalive** probes on idle sockets, for the kernel's own view.

use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;

/// Shortest keepalive interval, whatever the gossip interval.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Longest keepalive interval.
const MAX_INTERVAL: Duration = Duration::from_secs(15);
/// Shortest time a PING may take to be answered: a busy link's send queue may
/// hold a few hundred milliseconds of data ahead of it.
const MIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest PING timeout.
const MAX_TIMEOUT: Duration = Duration::from_secs(20);
/// Shortest `TCP_USER_TIMEOUT`.
const MIN_USER_TIMEOUT: Duration = Duration::from_secs(5);

/// Keepalive timers of one process's gRPC connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAlive {
    /// Silence after which an HTTP/2 PING is sent (and TCP keepalive starts).
    pub interval: Duration,
    /// Time an HTTP/2 PING may go unanswered before the connection is closed.
    pub timeout: Duration,
    /// `TCP_USER_TIMEOUT`: time sent data may stay unacknowledged.
    pub user_timeout: Duration,
}

impl Default for KeepAlive {
    /// The timers for the default one-second gossip interval.
    fn default() -> Self {
        Self::for_gossip_interval(Duration::from_secs(1))
    }
}

impl KeepAlive {
    /// Timers tied to the gossip round: a PING after five silent rounds, closed
    /// five rounds later (within bounds), so a dead connection is gone in about
    /// ten rounds (3 s at 0.2 s rounds, 10 s at 1 s rounds), well before the
    /// suspicion timeout would mark a healthy member dead because of it.
    pub fn for_gossip_interval(round: Duration) -> Self {
        let interval = (round * 5).clamp(MIN_INTERVAL, MAX_INTERVAL);
        let timeout = (round * 5).clamp(MIN_TIMEOUT, MAX_TIMEOUT);
        let user_timeout = ((interval + timeout) * 2).max(MIN_USER_TIMEOUT);
        Self {
            interval,
            timeout,
            user_timeout,
        }
    }

    /// Sets TCP keepalive and `TCP_USER_TIMEOUT` on `tcp`. Failures are
    /// returned, not fatal: HTTP/2 PINGs still detect a dead connection.
    ///
    /// # Errors
    /// The socket refused an option.
    pub fn apply(&self, tcp: &TcpStream) -> std::io::Result<()> {
        let sock = SockRef::from(tcp);
        let ka = TcpKeepalive::new()
            .with_time(self.interval)
            .with_interval(self.interval);
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "macos"))]
        let ka = ka.with_retries(3);
        sock.set_tcp_keepalive(&ka)?;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        sock.set_tcp_user_timeout(Some(self.user_timeout))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_follow_the_gossip_round_within_bounds() {
        let fast = KeepAlive::for_gossip_interval(Duration::from_millis(200));
        assert_eq!(fast.interval, Duration::from_secs(1));
        assert_eq!(fast.timeout, Duration::from_secs(2));
        assert_eq!(fast.user_timeout, Duration::from_secs(6));
        let default = KeepAlive::default();
        assert_eq!(default.interval, Duration::from_secs(5));
        assert_eq!(default.timeout, Duration::from_secs(5));
        assert_eq!(default.user_timeout, Duration::from_secs(20));
        let slow = KeepAlive::for_gossip_interval(Duration::from_secs(60));
        assert_eq!(slow.interval, MAX_INTERVAL);
        assert_eq!(slow.timeout, MAX_TIMEOUT);
    }

    #[tokio::test]
    async fn options_reach_the_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let ka = KeepAlive::for_gossip_interval(Duration::from_millis(200));
        ka.apply(&tcp).unwrap();
        let sock = SockRef::from(&tcp);
        assert!(sock.keepalive().unwrap());
        #[cfg(target_os = "linux")]
        {
            assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(1));
            assert_eq!(sock.tcp_user_timeout().unwrap(), Some(ka.user_timeout));
        }
    }
}
