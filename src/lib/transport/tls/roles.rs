//! Only nodes speak as nodes: a tower layer that refuses membership, discovery
//! and data-plane calls from a caller whose verified certificate is a client's
//! (`gsp tls cert --client`), with PERMISSION_DENIED, before any handler runs.
//! Admin, health and reflection stay open to clients.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use super::{io::PeerInfo, pki::Role};
use crate::transport::refusals::{Refusals, Refused};

/// gRPC services only nodes may call.
pub const NODE_PLANES: &[&str] = &[
    "discovery.DiscoveryService",
    "gsp.membership.v1.Membership",
    "gsp.gossip.v1.DataPlane",
];

/// Whether `path` (`/package.Service/Method`) belongs to a node plane.
pub fn is_node_plane(path: &str) -> bool {
    let Some(p) = path.strip_prefix('/') else {
        return false;
    };
    NODE_PLANES
        .iter()
        .any(|s| p.strip_prefix(s).is_some_and(|rest| rest.starts_with('/')))
}

/// The layer; counts refusals into an [`Refusals`].
#[derive(Debug, Clone)]
pub struct NodeOnlyLayer {
    failures: Arc<Refusals>,
}

impl NodeOnlyLayer {
    /// Refusals are counted into `failures`.
    pub fn new(failures: Arc<Refusals>) -> Self {
        Self { failures }
    }
}

impl<S> tower_layer::Layer<S> for NodeOnlyLayer {
    type Service = NodeOnly<S>;

    fn layer(&self, inner: S) -> Self::Service {
        NodeOnly {
            inner,
            failures: Arc::clone(&self.failures),
        }
    }
}

/// The service made by [`NodeOnlyLayer`].
#[derive(Debug, Clone)]
pub struct NodeOnly<S> {
    inner: S,
    failures: Arc<Refusals>,
}

impl<S, B> tower_service::Service<http::Request<B>> for NodeOnly<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let peer = req.extensions().get::<PeerInfo>();
        let client = peer
            .and_then(|p| p.grant.as_ref())
            .is_some_and(|g| g.role == Role::Client);
        if client && is_node_plane(req.uri().path()) {
            self.failures.record(
                Refused::ClientOnNodePlane,
                peer.and_then(|p| p.remote),
                &req.uri().path(),
                std::time::Instant::now(),
            );
            let status = tonic::Status::permission_denied(
                "a client certificate may not call node services (membership, data plane); \
                 nodes need a certificate from `gsp tls cert --node`",
            );
            return Box::pin(std::future::ready(Ok(status.into_http())));
        }
        Box::pin(self.inner.call(req))
    }
}

/// The node name a caller's verified node certificate carries, if any: the
/// identity the caller may speak as on the node planes.
pub fn certified_node<T>(request: &tonic::Request<T>) -> Option<String> {
    request
        .extensions()
        .get::<PeerInfo>()
        .and_then(|p| p.grant.as_ref())
        .filter(|g| g.role == Role::Node)
        .and_then(|g| g.name.clone())
}

/// Checks that a caller certified as node `cert` speaks only as itself: the
/// member it claims to be (`claimed`, known here as `known_name`) bears that
/// name, and so does every record it sends about itself (`own_names`).
///
/// # Errors
/// PERMISSION_DENIED naming both identities.
pub fn check_speaks_as_itself<'a>(
    cert: Option<&str>,
    claimed: &str,
    known_name: Option<&str>,
    own_names: impl IntoIterator<Item = &'a str>,
) -> Result<(), tonic::Status> {
    let Some(cert) = cert else {
        return Ok(());
    };
    let other = known_name
        .filter(|n| *n != cert)
        .or_else(|| own_names.into_iter().find(|n| *n != cert));
    match other {
        Some(name) => Err(tonic::Status::permission_denied(format!(
            "the certificate of node {cert} cannot speak as node {claimed} ({name})"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certified_node_speaks_only_as_itself() {
        assert!(check_speaks_as_itself(None, "x", Some("b"), ["c"]).is_ok());
        assert!(check_speaks_as_itself(Some("a"), "x", Some("a"), ["a"]).is_ok());
        assert!(check_speaks_as_itself(Some("a"), "x", None, []).is_ok());
        let e = check_speaks_as_itself(Some("a"), "x", Some("b"), []).unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(e.message().contains("node a cannot speak as node x (b)"));
        assert!(check_speaks_as_itself(Some("a"), "x", None, ["b"]).is_err());
    }

    #[test]
    fn node_planes_are_recognised_by_service_not_by_prefix() {
        assert!(is_node_plane("/gsp.gossip.v1.DataPlane/Stream"));
        assert!(is_node_plane("/gsp.membership.v1.Membership/Ping"));
        assert!(is_node_plane("/discovery.DiscoveryService/GossipNodeInfo"));
        assert!(!is_node_plane("/gsp.admin.v1.Admin/ListMembers"));
        assert!(!is_node_plane("/gsp.gossip.v1.DataPlaneX/Stream"));
        assert!(!is_node_plane("/grpc.health.v1.Health/Check"));
    }
}
