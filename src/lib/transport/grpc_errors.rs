//! Counts gRPC calls that end in an error status, by service and code, including
//! those tonic refuses before a handler runs (undecodable messages, oversized
//! messages, unknown methods). Feeds `gsp_grpc_errors_total` on `/metrics`.

use std::{
    collections::BTreeMap,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
};

/// Error counts by (service, numeric gRPC code).
#[derive(Debug, Default)]
pub struct GrpcErrors {
    counts: Mutex<BTreeMap<(&'static str, u8), u64>>,
}

/// Services named in the counts; anything else is `other` (bounded labels).
const SERVICES: &[&str] = &[
    "discovery.DiscoveryService",
    "gsp.membership.v1.Membership",
    "gsp.gossip.v1.DataPlane",
    "gsp.admin.v1.Admin",
];

impl GrpcErrors {
    fn record(&self, service: &'static str, code: u8) {
        *self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((service, code))
            .or_default() += 1;
    }

    /// `(service, code name, count)` for every error seen.
    pub fn snapshot(&self) -> Vec<(&'static str, &'static str, u64)> {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|((s, c), n)| (*s, code_name(*c), *n))
            .collect()
    }
}

fn code_name(c: u8) -> &'static str {
    const NAMES: [&str; 17] = [
        "ok",
        "cancelled",
        "unknown",
        "invalid_argument",
        "deadline_exceeded",
        "not_found",
        "already_exists",
        "permission_denied",
        "resource_exhausted",
        "failed_precondition",
        "aborted",
        "out_of_range",
        "unimplemented",
        "internal",
        "unavailable",
        "data_loss",
        "unauthenticated",
    ];
    NAMES.get(usize::from(c)).copied().unwrap_or("unknown")
}

/// A tower layer counting error statuses into a [`GrpcErrors`].
#[derive(Debug, Clone)]
pub struct CountErrorsLayer {
    errors: Arc<GrpcErrors>,
}

impl CountErrorsLayer {
    /// Counts into `errors`.
    pub fn new(errors: Arc<GrpcErrors>) -> Self {
        Self { errors }
    }
}

impl<S> tower_layer::Layer<S> for CountErrorsLayer {
    type Service = CountErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountErrors {
            inner,
            errors: Arc::clone(&self.errors),
        }
    }
}

/// The service made by [`CountErrorsLayer`].
#[derive(Debug, Clone)]
pub struct CountErrors<S> {
    inner: S,
    errors: Arc<GrpcErrors>,
}

impl<S, B, R> tower_service::Service<http::Request<B>> for CountErrors<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path();
        let service = SERVICES
            .iter()
            .copied()
            .find(|s| {
                path.strip_prefix('/')
                    .is_some_and(|p| p.starts_with(s) && p[s.len()..].starts_with('/'))
            })
            .unwrap_or("other");
        let errors = Arc::clone(&self.errors);
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            // Calls refused before any message are "trailers-only": the status is
            // in the headers. (Errors after a streamed message, in trailers, are
            // the handlers' own and counted by them.)
            if let Some(code) = resp
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u8>().ok())
                .filter(|c| *c != 0)
            {
                errors.record(service, code);
            }
            Ok(resp)
        })
    }
}
