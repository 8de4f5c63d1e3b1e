//! Failed authentications, counted by reason and logged at most once per reason
//! per interval (with how many were not logged), so a flood of bad attempts is
//! visible without flooding the log.

use std::{
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tracing::warn;

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// A call that needs the admin token came without one.
    TokenMissing,
    /// A call came with a wrong admin token.
    TokenWrong,
    /// A client certificate called a node plane (membership, data plane).
    ClientOnNodePlane,
}

impl AuthFailure {
    /// Every reason, in metric order.
    pub const ALL: [Self; 3] = [
        Self::TokenMissing,
        Self::TokenWrong,
        Self::ClientOnNodePlane,
    ];

    /// The `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenMissing => "token_missing",
            Self::TokenWrong => "token_wrong",
            Self::ClientOnNodePlane => "client_certificate_on_node_plane",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::TokenMissing => 0,
            Self::TokenWrong => 1,
            Self::ClientOnNodePlane => 2,
        }
    }
}

/// How often each reason is logged at most.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Counts and log throttle of failed authentications.
#[derive(Debug, Default)]
pub struct AuthFailures {
    counts: [AtomicU64; AuthFailure::ALL.len()],
    /// Per reason: when it was last logged, and how many since.
    logged: Mutex<[(Option<Instant>, u64); AuthFailure::ALL.len()]>,
}

impl AuthFailures {
    /// Counts one failure; logs it unless this reason was logged within
    /// [`LOG_INTERVAL`] (then the next log line says how many were skipped).
    pub fn record(&self, why: AuthFailure, peer: Option<std::net::SocketAddr>, now: Instant) {
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
        warn!(reason = why.as_str(), %peer, suppressed, "refused a call: authentication failed");
    }

    /// Failures of `why` so far.
    pub fn count(&self, why: AuthFailure) -> u64 {
        self.counts[why.index()].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_is_counted_but_logging_is_throttled_per_reason() {
        let f = AuthFailures::default();
        let t0 = Instant::now();
        for i in 0..100 {
            f.record(AuthFailure::TokenWrong, None, t0 + Duration::from_millis(i));
        }
        f.record(AuthFailure::TokenMissing, None, t0);
        assert_eq!(f.count(AuthFailure::TokenWrong), 100);
        assert_eq!(f.count(AuthFailure::TokenMissing), 1);
        let logged = *f.logged.lock().unwrap();
        assert_eq!(logged[AuthFailure::TokenWrong.index()], (Some(t0), 99));
        f.record(AuthFailure::TokenWrong, None, t0 + LOG_INTERVAL);
        let logged = *f.logged.lock().unwrap();
        assert_eq!(
            logged[AuthFailure::TokenWrong.index()].1,
            0,
            "reported, reset"
        );
    }
}
