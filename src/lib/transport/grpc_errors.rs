//! Counts gRPC calls that end in an error status, by service and code, including
//! those tonic refuses before a handler runs (undecodable messages, oversized
//! messages, unknown methods): the status is read from the response headers
//! (trailers-only answers) or from the trailers that end the body. Feeds
//! `gsp_grpc_errors_total` on `/metrics`, and counts messages over their size
//! limit in `gsp_refused_total{reason="message_too_large"}`.

use std::{
    collections::BTreeMap,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
};

use super::refusals::{Refusals, Refused};

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

/// A tower layer counting error statuses into a [`GrpcErrors`], and
/// messages tonic refused as over their size limit into the refusals.
#[derive(Debug, Clone)]
pub struct CountErrorsLayer {
    errors: Arc<GrpcErrors>,
    refusals: Option<Arc<Refusals>>,
}

impl CountErrorsLayer {
    /// Counts into `errors`.
    pub fn new(errors: Arc<GrpcErrors>) -> Self {
        Self {
            errors,
            refusals: None,
        }
    }

    /// Also counts oversized messages as [`Refused::MessageTooLarge`].
    #[must_use]
    pub fn with_refusals(mut self, refusals: Arc<Refusals>) -> Self {
        self.refusals = Some(refusals);
        self
    }
}

impl<S> tower_layer::Layer<S> for CountErrorsLayer {
    type Service = CountErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountErrors {
            inner,
            errors: Arc::clone(&self.errors),
            refusals: self.refusals.clone(),
        }
    }
}

/// The service made by [`CountErrorsLayer`].
#[derive(Debug, Clone)]
pub struct CountErrors<S> {
    inner: S,
    errors: Arc<GrpcErrors>,
    refusals: Option<Arc<Refusals>>,
}

impl<S, B, R> tower_service::Service<http::Request<B>> for CountErrors<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: http_body::Body + Unpin,
{
    type Response = http::Response<Counted<R>>;
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
        let mut seen = Seen {
            service,
            errors: Arc::clone(&self.errors),
            refusals: self.refusals.clone(),
            done: false,
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            // Calls refused before any message are "trailers-only": the status
            // is in the headers. Otherwise it comes in the trailers, after the
            // body (a message too large to decode ends a unary call so too).
            seen.status(resp.headers());
            Ok(resp.map(|inner| Counted { inner, seen }))
        })
    }
}

/// What a call's status is counted into, once.
#[derive(Debug)]
pub struct Seen {
    service: &'static str,
    errors: Arc<GrpcErrors>,
    refusals: Option<Arc<Refusals>>,
    done: bool,
}

impl Seen {
    /// Counts the status in `headers` (response headers or trailers), if any.
    fn status(&mut self, headers: &http::HeaderMap) {
        if self.done {
            return;
        }
        let Some(code) = headers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u8>().ok())
        else {
            return;
        };
        self.done = true;
        if code == 0 {
            return;
        }
        self.errors.record(self.service, code);
        // tonic's own refusal of a message over the decode limit (the
        // message is percent-encoded on the wire).
        let oversized = tonic::Status::from_header_map(headers)
            .is_some_and(|s| s.message().contains("message length too large"));
        if oversized && let Some(r) = &self.refusals {
            r.record(
                Refused::MessageTooLarge,
                None,
                &self.service,
                std::time::Instant::now(),
            );
        }
    }
}

/// A response body whose trailers are read for the call's status.
#[derive(Debug)]
pub struct Counted<B> {
    inner: B,
    seen: Seen,
}

impl<B: http_body::Body + Unpin> http_body::Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(trailers) = frame.trailers_ref()
        {
            this.seen.status(trailers);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
