//! Admin authentication: the bearer token a node may require on admin calls,
//! compared in constant time, and the actor (who made a call) recorded in
//! audit events. The token itself is never logged or echoed.

use std::{
    fmt,
    sync::{Arc, Mutex, PoisonError, RwLock},
};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::{Request, Status, metadata::MetadataMap};

use crate::core::rate_limit::{RateConfig, RateLimiter};

use super::{
    refusals::{Refusals, Refused},
    tls::incoming::PeerInfo,
};

/// Metadata key a node forwarding a routed admin call uses to name the
/// original caller; trusted only from an authenticated caller.
pub const FORWARDED_FOR: &str = "x-gsp-forwarded-for";

/// What a call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads state (members, queries, status, watch).
    Read,
    /// Changes state or the cluster (maintenance set, send).
    Write,
}

/// Read calls per second one caller may make (burst: twice that): members,
/// queries, jobs, logs, watches. A caller is its certificate's name under
/// mutual TLS, else its IP address (a fresh port or claimed name buys no
/// fresh bucket).
pub const DEFAULT_READ_RATE: f64 = 100.0;

/// A node's admin token, kept only as its SHA-256 digest, and the read rate
/// per caller. Clones share both, so [`AdminAuth::replace_with`] (SIGHUP)
/// changes the policy for every user.
#[derive(Clone)]
pub struct AdminAuth {
    policy: Arc<RwLock<Policy>>,
    /// Refused attempts, shared with the node's metrics and role checks.
    failures: Arc<Refusals>,
    /// Read calls per caller.
    reads: Arc<Mutex<RateLimiter>>,
}

impl Default for AdminAuth {
    fn default() -> Self {
        Self {
            policy: Arc::default(),
            failures: Arc::default(),
            reads: Arc::new(Mutex::new(RateLimiter::new(RateConfig::per_second(
                DEFAULT_READ_RATE,
            )))),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Policy {
    digest: Option<[u8; 32]>,
    require_for_reads: bool,
}

#[allow(
    clippy::missing_fields_in_debug,
    reason = "the policy's fields are shown, the token redacted"
)]
impl fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.policy();
        f.debug_struct("AdminAuth")
            .field("token", &p.digest.map(|_| "<redacted>"))
            .field("require_for_reads", &p.require_for_reads)
            .field("failures", &self.failures)
            .finish()
    }
}

/// An unusable token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Empty or whitespace only.
    #[error("the admin token is empty")]
    Empty,
    /// Would not fit an HTTP header.
    #[error("the admin token must be printable ASCII without spaces")]
    NotPrintable,
}

/// Checks a token before use: non-empty printable ASCII, no whitespace (it
/// travels in an `authorization` header). Surrounding whitespace (a file's
/// trailing newline) is trimmed.
///
/// # Errors
/// The token is empty or has characters a header cannot carry.
pub fn validate_token(raw: &str) -> Result<String, TokenError> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(TokenError::Empty);
    }
    if !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TokenError::NotPrintable);
    }
    Ok(t.to_owned())
}

impl AdminAuth {
    /// No token: every call is allowed and its actor is `anonymous`.
    pub fn open() -> Self {
        Self::default()
    }

    /// Calls of [`Access::Write`] (and reads too with `require_for_reads`)
    /// must carry `authorization: Bearer <token>`.
    pub fn with_token(token: &str, require_for_reads: bool) -> Self {
        Self {
            policy: Arc::new(RwLock::new(Policy {
                digest: Some(Sha256::digest(token.as_bytes()).into()),
                require_for_reads,
            })),
            ..Self::default()
        }
    }

    fn policy(&self) -> Policy {
        *self.policy.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `other`'s token and read policy, for this value and every clone
    /// of it. Returns whether anything changed.
    pub fn replace_with(&self, other: &AdminAuth) -> bool {
        let new = other.policy();
        let mut p = self.policy.write().unwrap_or_else(PoisonError::into_inner);
        let changed = *p != new;
        *p = new;
        changed
    }

    /// Whether reads need the token too.
    pub fn requires_token_for_reads(&self) -> bool {
        self.policy().require_for_reads
    }

    /// Where failed attempts are counted.
    pub fn failures(&self) -> &Arc<Refusals> {
        &self.failures
    }

    /// The same settings, counting failed attempts into `refusals` (the
    /// node's, shared with its connection and role checks).
    #[must_use]
    pub fn counting_into(mut self, refusals: Arc<Refusals>) -> Self {
        self.failures = refusals;
        self
    }

    /// Whether a token is configured.
    pub fn has_token(&self) -> bool {
        self.policy().digest.is_some()
    }

    /// Authorizes `request` for `access` and names who made it.
    ///
    /// # Errors
    /// UNAUTHENTICATED when a required token is missing or wrong;
    /// RESOURCE_EXHAUSTED when a read is over its caller's rate.
    pub fn check<T>(&self, request: &Request<T>, access: Access) -> Result<String, Status> {
        if access == Access::Read {
            self.admit_read(request)?;
        }
        let caller = caller(request);
        let subject = subject(request);
        let anonymous = subject.unwrap_or("anonymous");
        let policy = self.policy();
        let Some(want) = &policy.digest else {
            return Ok(with_forwarded(
                format!("{anonymous}{caller}"),
                request.metadata(),
            ));
        };
        let presented = bearer(request.metadata());
        let ok = presented.is_some_and(|t| {
            let got: [u8; 32] = Sha256::digest(t.as_bytes()).into();
            bool::from(got.ct_eq(want))
        });
        if ok {
            let who =
                subject.map_or_else(|| "admin-token".to_owned(), |s| format!("admin-token, {s}"));
            return Ok(with_forwarded(format!("{who}{caller}"), request.metadata()));
        }
        if access == Access::Read && !policy.require_for_reads {
            return Ok(format!("{anonymous}{caller}"));
        }
        let why = if presented.is_some() {
            Refused::TokenWrong
        } else {
            Refused::TokenMissing
        };
        self.failures
            .record(why, remote(request), &"", std::time::Instant::now());
        Err(Status::unauthenticated(match why {
            Refused::TokenWrong => "the admin token is wrong (check --token / GSP_TOKEN)",
            _ => "this node requires an admin token: pass --token or set GSP_TOKEN",
        }))
    }
}

impl AdminAuth {
    /// Whether a read on the HTTP side port (its JSON, metrics and the web
    /// view's data) may go ahead: always, unless reads need the token; then
    /// only with `authorization: Bearer TOKEN` (`header` is that header's
    /// value). A refusal is counted as the gRPC one is and says why.
    ///
    /// # Errors
    /// The token is required and missing or wrong.
    pub fn check_http_read(
        &self,
        header: Option<&str>,
        from: Option<std::net::SocketAddr>,
    ) -> Result<(), &'static str> {
        let policy = self.policy();
        let Some(want) = policy.digest.filter(|_| policy.require_for_reads) else {
            return Ok(());
        };
        let presented = header.and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then_some(token.trim())
        });
        let ok = presented.is_some_and(|t| {
            let got: [u8; 32] = Sha256::digest(t.as_bytes()).into();
            bool::from(got.ct_eq(&want))
        });
        if ok {
            return Ok(());
        }
        let why = if presented.is_some() {
            Refused::TokenWrong
        } else {
            Refused::TokenMissing
        };
        self.failures
            .record(why, from, &"", std::time::Instant::now());
        Err(match why {
            Refused::TokenWrong => "the admin token is wrong",
            _ => "this node requires the admin token for reads: send authorization: Bearer TOKEN",
        })
    }
}

impl AdminAuth {
    /// Takes a token from the caller's read bucket.
    fn admit_read<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let key = subject(request).map_or_else(
            || remote(request).map_or_else(|| "local".to_owned(), |a| a.ip().to_string()),
            str::to_owned,
        );
        let now = std::time::Instant::now();
        let ok = self
            .reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .allow(&key, now);
        if ok {
            return Ok(());
        }
        self.failures
            .record(Refused::ReadRateLimited, remote(request), &key, now);
        Err(Status::resource_exhausted(format!(
            "rate limited: {key} makes read calls faster than this node accepts ({DEFAULT_READ_RATE:.0} a second, bursts of twice that)"
        )))
    }
}

/// The caller's address, when known (plaintext or TLS).
pub fn remote<T>(request: &Request<T>) -> Option<std::net::SocketAddr> {
    request
        .extensions()
        .get::<PeerInfo>()
        .and_then(|p| p.remote)
        .or_else(|| request.remote_addr())
}

/// ` from IP`, or nothing when the address is unknown. The port is left
/// out: a client's is ephemeral and names nothing an operator can use.
fn caller<T>(request: &Request<T>) -> String {
    remote(request)
        .map(|a| format!(" from {}", a.ip()))
        .unwrap_or_default()
}

/// The verified client certificate's subject, if the call came over mTLS.
fn subject<T>(request: &Request<T>) -> Option<&str> {
    request
        .extensions()
        .get::<PeerInfo>()
        .and_then(|p| p.subject.as_deref())
}

/// `actor` plus the original caller a forwarding node named, if any.
fn with_forwarded(actor: String, md: &MetadataMap) -> String {
    match md.get(FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(orig) if !orig.is_empty() => {
            let orig: String = orig.chars().take(256).collect();
            format!("{orig} (via {actor})")
        }
        _ => actor,
    }
}

/// The token of an `authorization: Bearer TOKEN` header.
fn bearer(md: &MetadataMap) -> Option<&str> {
    let v = md.get("authorization")?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Adds `authorization: Bearer token` to outgoing metadata.
///
/// # Errors
/// The token cannot be a header value (see [`validate_token`]).
pub fn attach(md: &mut MetadataMap, token: &str) -> Result<(), Status> {
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| Status::invalid_argument("the token cannot be sent as a header"))?;
    md.insert("authorization", value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(token: Option<&str>) -> Request<()> {
        let mut r = Request::new(());
        if let Some(t) = token {
            attach(r.metadata_mut(), t).expect("header");
        }
        r
    }

    #[test]
    fn writes_need_the_right_token() {
        let auth = AdminAuth::with_token("s3cret", false);
        let missing = auth.check(&req(None), Access::Write).expect_err("no token");
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        assert!(missing.message().contains("--token"));
        let wrong = auth
            .check(&req(Some("guess")), Access::Write)
            .expect_err("wrong");
        assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
        assert!(!wrong.message().contains("s3cret"));
        let actor = auth
            .check(&req(Some("s3cret")), Access::Write)
            .expect("right token");
        assert_eq!(actor, "admin-token");
        assert_eq!(auth.failures().count(Refused::TokenMissing), 1);
        assert_eq!(auth.failures().count(Refused::TokenWrong), 1);
    }

    #[test]
    fn reads_are_open_unless_required() {
        let open_reads = AdminAuth::with_token("t", false);
        assert_eq!(
            open_reads.check(&req(None), Access::Read).expect("open"),
            "anonymous"
        );
        let closed = AdminAuth::with_token("t", true);
        assert!(closed.check(&req(None), Access::Read).is_err());
        assert!(closed.check(&req(Some("t")), Access::Read).is_ok());
    }

    #[test]
    fn forwarded_callers_are_named_only_when_authenticated() {
        let auth = AdminAuth::with_token("t", false);
        let mut r = req(Some("t"));
        r.metadata_mut().insert(
            FORWARDED_FOR,
            "admin-token from 10.0.0.9:4000".parse().expect("v"),
        );
        assert_eq!(
            auth.check(&r, Access::Write).expect("ok"),
            "admin-token from 10.0.0.9:4000 (via admin-token)"
        );
        let mut anon = req(None);
        anon.metadata_mut()
            .insert(FORWARDED_FOR, "root".parse().expect("v"));
        assert_eq!(auth.check(&anon, Access::Read).expect("read"), "anonymous");
    }

    #[test]
    fn tokens_are_validated_and_never_debug_printed() {
        assert_eq!(validate_token("abc\n").expect("trimmed"), "abc");
        assert_eq!(validate_token("  \n"), Err(TokenError::Empty));
        assert_eq!(validate_token("a b"), Err(TokenError::NotPrintable));
        let dbg = format!("{:?}", AdminAuth::with_token("hunter2", false));
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }
}
