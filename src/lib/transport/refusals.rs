//! Refused connections and calls that no handler counts: failed
//! authentications and connection-level refusals, counted by reason
//! (`gsp_refused_total{reason}`) and logged at most once per reason per
//! [`LOG_INTERVAL`], with how many were not logged, so a flood of bad attempts
//! is visible without flooding the log.

use std::{
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tracing::warn;

/// Why a connection or call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A call that needs the admin token came without one.
    TokenMissing,
    /// A call came with a wrong admin token.
    TokenWrong,
    /// A client certificate called a node plane (membership, data plane).
    ClientOnNodePlane,
    /// A TLS handshake failed (no certificate, another CA, bad role).
    TlsHandshake,
    /// A plaintext caller reached a TLS node.
    PlaintextOnTls,
    /// A TLS caller reached a plaintext node.
    TlsOnPlaintext,
    /// A new connection sent nothing (or no complete handshake) in time.
    SlowOpening,
    /// Too many connections were being opened at once, in all or from its address.
    OpeningTableFull,
    /// Its address already holds as many connections as one address may.
    PerAddressCap,
    /// An idle connection was closed to make room at the global cap.
    EvictedIdle,
    /// A plaintext connection opened with an HTTP/1 request (a browser or
    /// `curl` at the gRPC port): answered `505` and closed.
    Http1OnGrpc,
    /// A plaintext connection opened with bytes that are neither HTTP/2's
    /// preface nor a TLS handshake: closed.
    NotHttp2,
    /// A gRPC message over the decode limit of its service.
    MessageTooLarge,
    /// A read call (members, query, jobs, logs) over its caller's rate.
    ReadRateLimited,
}

impl Refused {
    /// Every reason, in metric order.
    pub const ALL: [Self; 14] = [
        Self::TokenMissing,
        Self::TokenWrong,
        Self::ClientOnNodePlane,
        Self::TlsHandshake,
        Self::PlaintextOnTls,
        Self::TlsOnPlaintext,
        Self::SlowOpening,
        Self::OpeningTableFull,
        Self::PerAddressCap,
        Self::EvictedIdle,
        Self::Http1OnGrpc,
        Self::NotHttp2,
        Self::MessageTooLarge,
        Self::ReadRateLimited,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenMissing => "token_missing",
            Self::TokenWrong => "token_wrong",
            Self::ClientOnNodePlane => "client_certificate_on_node_plane",
            Self::TlsHandshake => "tls_handshake",
            Self::PlaintextOnTls => "plaintext_on_tls",
            Self::TlsOnPlaintext => "tls_on_plaintext",
            Self::SlowOpening => "slow_opening",
            Self::OpeningTableFull => "opening_table_full",
            Self::PerAddressCap => "per_address_cap",
            Self::EvictedIdle => "evicted_idle",
            Self::Http1OnGrpc => "http1_on_grpc_port",
            Self::NotHttp2 => "not_http2",
            Self::MessageTooLarge => "message_too_large",
            Self::ReadRateLimited => "read_rate_limited",
        }
    }

    /// The log line's message.
    fn message(self) -> &'static str {
        match self {
            Self::TokenMissing | Self::TokenWrong | Self::ClientOnNodePlane => {
                "refused a call: authentication failed"
            }
            Self::TlsHandshake => "TLS handshake refused",
            Self::PlaintextOnTls => {
                "refused a plaintext connection: this node requires TLS; the caller needs \
                 --tls-cert, --tls-key and --tls-ca"
            }
            Self::TlsOnPlaintext => {
                "refused a TLS connection: this node runs without TLS; give it --tls-cert, \
                 --tls-key and --tls-ca to join a TLS cluster"
            }
            Self::SlowOpening => "closed a connection that did not open in time",
            Self::OpeningTableFull => "too many connections being opened; closed a new one",
            Self::PerAddressCap => "an address holds too many connections; closed a new one",
            Self::EvictedIdle => "connection table full; closed the connection idle longest",
            Self::Http1OnGrpc => {
                "refused an HTTP/1 request on the gRPC port (HTTP is served on the side \
                 port, --http-listen)"
            }
            Self::NotHttp2 => "closed a connection that did not open with HTTP/2 or TLS",
            Self::MessageTooLarge => "refused a gRPC message over its size limit",
            Self::ReadRateLimited => "refused a read call over its caller's rate",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// How often each reason is logged at most.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Counts and log throttle of refusals.
#[derive(Debug, Default)]
pub struct Refusals {
    counts: [AtomicU64; Refused::ALL.len()],
    /// Per reason: when it was last logged, and how many since.
    logged: Mutex<[(Option<Instant>, u64); Refused::ALL.len()]>,
}

impl Refusals {
    /// Counts one refusal; logs it unless this reason was logged within
    /// [`LOG_INTERVAL`] (then the next log line says how many were skipped).
    /// `detail` (an error, a peer's claim) goes into the line.
    pub fn record(
        &self,
        why: Refused,
        peer: Option<std::net::SocketAddr>,
        detail: &dyn std::fmt::Display,
        now: Instant,
    ) {
        self.counts[why.index()].fetch_add(1, Ordering::Relaxed);
        let suppressed = {
            let mut logged = self.logged.lock().unwrap_or_else(PoisonError::into_inner);
            let (last, skipped) = &mut logged[why.index()];
            if last.is_some_and(|t| now.saturating_duration_since(t) < LOG_INTERVAL) {
                *skipped += 1;
                return;
            }
            *last = Some(now);
            std::mem::take(skipped)
        };
        let peer = peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string());
        warn!(reason = why.as_str(), %peer, %detail, suppressed, "{}", why.message());
    }

    /// Refusals of `why` so far.
    pub fn count(&self, why: Refused) -> u64 {
        self.counts[why.index()].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_is_counted_but_logging_is_throttled_per_reason() {
        let f = Refusals::default();
        let t0 = Instant::now();
        for i in 0..100 {
            f.record(
                Refused::TokenWrong,
                None,
                &"",
                t0 + Duration::from_millis(i),
            );
        }
        f.record(Refused::TokenMissing, None, &"", t0);
        assert_eq!(f.count(Refused::TokenWrong), 100);
        assert_eq!(f.count(Refused::TokenMissing), 1);
        let logged = *f.logged.lock().unwrap();
        assert_eq!(logged[Refused::TokenWrong.index()], (Some(t0), 99));
        f.record(Refused::TokenWrong, None, &"", t0 + LOG_INTERVAL);
        let logged = *f.logged.lock().unwrap();
        assert_eq!(logged[Refused::TokenWrong.index()].1, 0, "reported, reset");
    }

    #[test]
    fn reasons_have_distinct_labels() {
        let mut labels: Vec<_> = Refused::ALL.iter().map(|r| r.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Refused::ALL.len());
        for (i, r) in Refused::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
