//! The web view at `/`: one self-contained page (`page.html`, compiled into
//! the binary; no build step, nothing loaded from elsewhere) that polls the
//! side port's JSON once a second and shows members, this node's jobs and
//! the broadcasts it sent. The page carries no data itself, so it is served
//! to anyone; its requests for data follow the side port's read policy (it
//! asks for the admin token when the node answers 401, keeps it for the
//! browser tab, and takes it from `#token=...` in the address).

use axum::{http::header, response::IntoResponse};

/// The page.
pub const PAGE: &str = include_str!("page.html");

/// Only the page's own inline script and style, and requests to this port.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub(super) async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
}
