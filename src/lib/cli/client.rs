//! Connecting the client commands to a node's admin service.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use super::GlobalArgs;
use crate::transport::{error::TransportError, pb::admin::v1::admin_client::AdminClient};

/// Default time a client command waits for the node.
pub(crate) const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The timeout a client command uses.
pub(crate) fn timeout(global: &GlobalArgs) -> Duration {
    global.timeout.unwrap_or(DEFAULT_CLIENT_TIMEOUT)
}

/// An admin client for the node at `--addr`.
///
/// # Errors
/// The address is malformed, or nothing answers there in time (exit 3).
pub(crate) async fn admin(global: &GlobalArgs) -> Result<AdminClient<Channel>, TransportError> {
    let addr = &global.addr;
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).map_err(|e| {
        TransportError::BadAddress {
            addr: addr.clone(),
            reason: e.to_string(),
        }
    })?;
    let channel = endpoint
        .connect_timeout(timeout(global))
        .connect()
        .await
        .map_err(|e| unreachable(addr, &e))?;
    Ok(AdminClient::new(channel).max_decoding_message_size(64 << 20))
}

/// A connection failure as "cannot reach".
pub(crate) fn unreachable(addr: &str, e: &dyn std::error::Error) -> TransportError {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    TransportError::Unreachable {
        addr: addr.to_owned(),
        status: tonic::Status::unavailable(msg),
    }
}

/// A failed call, classified: unavailable and auth errors exit 3.
pub(crate) fn call_failed(addr: &str, status: tonic::Status) -> anyhow::Error {
    use tonic::Code;
    match status.code() {
        Code::Unavailable
        | Code::Unauthenticated
        | Code::PermissionDenied
        | Code::DeadlineExceeded => TransportError::Unreachable {
            addr: addr.to_owned(),
            status,
        }
        .into(),
        _ => anyhow::Error::new(status).context(format!("node at {addr} refused the request")),
    }
}
