//! What a node tells its operator about its own security: a node serving
//! plaintext on an address other hosts can reach says so at start and in every
//! `gsp peers` (Serf's "encryption disabled"), unless `--insecure` says it is
//! on purpose.

use std::net::SocketAddr;

/// The warning for a node listening on `listen`, or `None` when it runs TLS,
/// listens on loopback only, or was started with `--insecure`.
pub fn plaintext_warning(tls: bool, insecure: bool, listen: SocketAddr) -> Option<String> {
    if tls || insecure || listen.ip().is_loopback() {
        return None;
    }
    Some(format!(
        "this node runs without TLS on {listen}: anyone who can reach that port can join \
         the cluster, inject membership and deliver broadcasts (set up TLS with `gsp tls`, \
         or pass --insecure if the network is trusted)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reachable_plaintext_nodes_warn() {
        let any: SocketAddr = "0.0.0.0:50005".parse().unwrap_or_else(|_| unreachable!());
        let lo: SocketAddr = "127.0.0.1:50005".parse().unwrap_or_else(|_| unreachable!());
        assert!(plaintext_warning(false, false, any).is_some_and(|w| w.contains("gsp tls")));
        assert!(plaintext_warning(true, false, any).is_none());
        assert!(plaintext_warning(false, true, any).is_none());
        assert!(plaintext_warning(false, false, lo).is_none());
    }
}
