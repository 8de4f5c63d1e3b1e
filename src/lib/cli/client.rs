//! Connecting the client commands to a node's admin service.

use std::{sync::Arc, time::Duration};

use tonic::{
    Request, Status,
    metadata::{AsciiMetadataValue, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};

use super::{
    GlobalArgs,
    exit::{Unreachable, UsageError},
};
use crate::transport::{
    auth::validate_token,
    error::TransportError,
    pb::admin::v1::admin_client::AdminClient,
    tls::{TlsConfig, TlsFiles, connector::Connector},
};

/// Adds `authorization: Bearer TOKEN` to every call when `--token` is set.
#[derive(Debug, Clone)]
pub(crate) struct BearerToken(Option<AsciiMetadataValue>);

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            request.metadata_mut().insert("authorization", v.clone());
        }
        Ok(request)
    }
}

/// The admin client the commands use.
pub(crate) type Admin = AdminClient<InterceptedService<Channel, BearerToken>>;

/// The `--token` / GSP_TOKEN header value.
///
/// # Errors
/// The token is empty or cannot be a header (exit 2).
fn bearer(global: &GlobalArgs) -> Result<BearerToken, UsageError> {
    let Some(raw) = &global.token else {
        return Ok(BearerToken(None));
    };
    let token = validate_token(raw).map_err(|e| UsageError(format!("--token: {e}")))?;
    let v = MetadataValue::try_from(format!("Bearer {token}"))
        .map_err(|_| UsageError("--token cannot be sent as a header".to_owned()))?;
    Ok(BearerToken(Some(v)))
}

/// Keepalive ping interval and timeout on client connections.
const CLIENT_KEEPALIVE: Duration = Duration::from_secs(5);

/// Default time a client command waits for the node.
pub(crate) const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The timeout a client command uses.
pub(crate) fn timeout(global: &GlobalArgs) -> Duration {
    global.timeout.unwrap_or(DEFAULT_CLIENT_TIMEOUT)
}

/// The client TLS settings of `--tls-ca` / `--tls-cert` / `--tls-key`.
///
/// # Errors
/// A certificate flag without `--tls-ca`, or an unusable file (exit 2).
pub(crate) fn tls(global: &GlobalArgs) -> Result<Option<TlsConfig>, UsageError> {
    let Some(ca) = global.tls_ca.clone() else {
        if global.tls_cert.is_some() || global.tls_key.is_some() {
            return Err(UsageError(
                "--tls-cert and --tls-key need --tls-ca (the CA that signed the node's \
                 certificate)"
                    .to_owned(),
            ));
        }
        return Ok(None);
    };
    TlsConfig::load(TlsFiles {
        cert: global.tls_cert.clone(),
        key: global.tls_key.clone(),
        ca,
    })
    .map(Some)
    .map_err(|e| UsageError(format!("TLS: {e}")))
}

/// An admin client for the node at `--addr`.
///
/// # Errors
/// The token is unusable (exit 2), the address is malformed, or nothing
/// answers there in time (exit 3).
pub(crate) async fn admin(global: &GlobalArgs) -> anyhow::Result<Admin> {
    Ok(conn(global, &global.addr).await?.admin())
}

/// A connection to one node that several clients share (HTTP/2 carries
/// their calls side by side): `gsp run` asks the node at `--addr` where to
/// run, then runs there too without a second handshake (with mutual TLS, a
/// second certificate exchange).
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    addr: String,
    channel: Channel,
    token: BearerToken,
}

/// Connects to the node at `addr`, with `--token` and the TLS flags.
///
/// # Errors
/// As [`admin`].
pub(crate) async fn conn(global: &GlobalArgs, addr: &str) -> anyhow::Result<Conn> {
    let (channel, token) = connect(global, addr).await?;
    Ok(Conn {
        addr: addr.to_owned(),
        channel,
        token,
    })
}

impl Conn {
    /// The address it was opened to.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// An admin client on it.
    pub(crate) fn admin(&self) -> Admin {
        // Whatever payload the node accepts (up to the largest --max-payload,
        // plus room for the message around it) must reach `gsp watch
        // --messages`.
        let largest =
            usize::try_from(crate::config::MAX_PAYLOAD_LIMIT + (1 << 20)).unwrap_or(usize::MAX);
        AdminClient::with_interceptor(self.channel.clone(), self.token.clone())
            .max_decoding_message_size(largest)
    }

    /// A jobs client on it.
    pub(crate) fn jobs(&self) -> JobsClient {
        crate::transport::pb::jobs::v1::jobs_client::JobsClient::with_interceptor(
            self.channel.clone(),
            self.token.clone(),
        )
        .max_decoding_message_size(4 << 20)
    }
}

/// The jobs client the commands use.
pub(crate) type JobsClient = crate::transport::pb::jobs::v1::jobs_client::JobsClient<
    InterceptedService<Channel, BearerToken>,
>;

/// A jobs client for the node at `addr`, with `--token` and the TLS flags.
///
/// # Errors
/// As [`admin`].
pub(crate) async fn jobs(global: &GlobalArgs, addr: &str) -> anyhow::Result<JobsClient> {
    Ok(conn(global, addr).await?.jobs())
}

async fn connect(global: &GlobalArgs, addr: &str) -> anyhow::Result<(Channel, BearerToken)> {
    let token = bearer(global)?;
    let tls = tls(global)?;
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).map_err(|e| {
        TransportError::BadAddress {
            addr: addr.to_owned(),
            reason: e.to_string(),
        }
    })?;
    let channel = endpoint
        .connect_timeout(timeout(global))
        // A node that vanished (host down, link cut) under a long stream
        // (`gsp run`, `gsp watch`) is noticed within about 15 s, not never.
        .http2_keep_alive_interval(CLIENT_KEEPALIVE)
        .keep_alive_timeout(CLIENT_KEEPALIVE)
        .keep_alive_while_idle(true)
        .connect_with_connector(Connector::new(Arc::default(), tls))
        .await
        .map_err(|e| unreachable(addr, &e))?;
    Ok((channel, token))
}

/// A connection failure as "cannot reach": the causes joined once each, and
/// for a refused connection, where to look.
pub(crate) fn unreachable(addr: &str, e: &(dyn std::error::Error + 'static)) -> TransportError {
    let mut parts: Vec<String> = Vec::new();
    let mut refused = false;
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        let text = s.to_string();
        // tonic and hyper repeat their cause in their own message.
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.retain(|p| !text.contains(p.as_str()));
            parts.push(text);
        }
        src = s.source();
    }
    let mut msg = parts.join(": ");
    if refused {
        "connection refused (no node listens there: start one with `gsp node`, or point \
         --addr / GSP_ADDR at a running node)"
            .clone_into(&mut msg);
    }
    TransportError::Unreachable {
        addr: addr.to_owned(),
        status: tonic::Status::unavailable(msg),
    }
}

/// A failed call, classified and named: unreachable and refused credentials
/// exit 3 (each with its own message), anything else the node refused exits 2.
pub(crate) fn call_failed(addr: &str, status: tonic::Status) -> anyhow::Error {
    use tonic::Code;
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded => TransportError::Unreachable {
            addr: addr.to_owned(),
            status,
        }
        .into(),
        Code::Unauthenticated | Code::PermissionDenied => Unreachable(format!(
            "the node at {addr} refused the credentials: {}",
            status.message()
        ))
        .into(),
        // The connection died before any answer: a TLS node refusing the
        // client's certificate (or the lack of one) looks like this.
        Code::Cancelled | Code::Unknown if std::error::Error::source(&status).is_some() => {
            TransportError::Unreachable {
                addr: addr.to_owned(),
                status: tonic::Status::unavailable(format!(
                    "the node closed the connection ({}); if it requires TLS, pass --tls-ca, \
                     and --tls-cert/--tls-key signed by its CA",
                    status.message()
                )),
            }
            .into()
        }
        _ => anyhow::anyhow!(
            "the node at {addr} refused the request: {}",
            status.message()
        ),
    }
}

/// A stream that was answering broke: the node went away (killed, restarted,
/// link cut), which is not a credentials problem (exit 3).
pub(crate) fn stream_broken(addr: &str, status: &tonic::Status) -> anyhow::Error {
    match status.code() {
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => Unreachable(format!(
            "the node at {addr} refused the credentials: {}",
            status.message()
        ))
        .into(),
        _ => Unreachable(format!(
            "the node at {addr} went away: {}",
            if status.message().is_empty() {
                "the stream ended"
            } else {
                status.message()
            }
        ))
        .into(),
    }
}
