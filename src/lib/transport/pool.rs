//! The client connection pool: one HTTP/2 channel per peer address, shared by
//! every client of that peer (data plane link and RPCs alike).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use tonic::transport::{Channel, Endpoint};

use super::{
    config::DataPlaneConfig,
    error::TransportError,
    tls::{TlsConfig, connector::Connector},
    traffic::Traffic,
};

/// Default number of peer channels kept; the least recently used is dropped past it.
pub const DEFAULT_POOL_CAPACITY: usize = 4096;

/// One lazily connected channel per peer address.
#[derive(Debug, Clone)]
pub struct ChannelPool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    config: DataPlaneConfig,
    traffic: Arc<Traffic>,
    tls: Option<TlsConfig>,
    capacity: usize,
    /// Where channels run their connection tasks (`None`: the caller's runtime).
    runtime: Option<tokio::runtime::Handle>,
    /// `std::sync::Mutex`: held only to look up or insert, never across an await.
    channels: Mutex<HashMap<String, (Channel, Instant)>>,
}

impl ChannelPool {
    /// A pool whose channels use `config`'s HTTP/2 tuning, holding at most
    /// `capacity`, counting their bytes into `traffic`.
    pub fn new(config: DataPlaneConfig, capacity: usize, traffic: Arc<Traffic>) -> Self {
        Self::with_tls(config, capacity, traffic, None)
    }

    /// Like [`Self::new`], dialing with TLS when `tls` is set.
    pub fn with_tls(
        config: DataPlaneConfig,
        capacity: usize,
        traffic: Arc<Traffic>,
        tls: Option<TlsConfig>,
    ) -> Self {
        Self {
            inner: Arc::new(PoolInner {
                config,
                traffic,
                tls,
                capacity: capacity.max(1),
                runtime: None,
                channels: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A plaintext pool whose connections run on `runtime`, to be shared by
    /// many nodes of one process (benchmarks): one connection per peer address
    /// instead of one per node pair, and a node whose own runtime stalls or
    /// is dropped does not take the shared connections with it.
    pub fn shared(
        config: DataPlaneConfig,
        capacity: usize,
        traffic: Arc<Traffic>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            inner: Arc::new(PoolInner {
                config,
                traffic,
                tls: None,
                capacity: capacity.max(1),
                runtime: Some(runtime),
                channels: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The channel to `addr` (`host:port`), created on first use. The TCP connection
    /// is made lazily and re-made by tonic after failures.
    ///
    /// # Errors
    /// `addr` is not a valid `host:port`.
    pub fn get(&self, addr: &str) -> Result<Channel, TransportError> {
        let mut channels = self
            .inner
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if let Some((channel, used)) = channels.get_mut(addr) {
            *used = now;
            return Ok(channel.clone());
        }
        // The channel's worker task, and through it every connection it makes,
        // is spawned on the runtime current here.
        let _entered = self
            .inner
            .runtime
            .as_ref()
            .map(tokio::runtime::Handle::enter);
        let channel = endpoint(addr, &self.inner.config)?.connect_with_connector_lazy(
            Connector::new(Arc::clone(&self.inner.traffic), self.inner.tls.clone())
                .with_keepalive(self.inner.config.keepalive),
        );
        if channels.len() >= self.inner.capacity
            && let Some(oldest) = channels
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
        {
            channels.remove(&oldest);
        }
        channels.insert(addr.to_owned(), (channel.clone(), now));
        Ok(channel)
    }

    /// Forgets the channel to `addr` (after the peer left, or its address changed).
    pub fn remove(&self, addr: &str) {
        self.inner
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(addr);
    }

    /// Channels currently held.
    pub fn len(&self) -> usize {
        self.inner
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Whether the pool holds no channel.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A client endpoint for `addr` with the data plane's HTTP/2 tuning.
///
/// # Errors
/// `addr` is not a valid `host:port`.
pub fn endpoint(addr: &str, config: &DataPlaneConfig) -> Result<Endpoint, TransportError> {
    let uri = format!("http://{addr}");
    let ep = Endpoint::from_shared(uri).map_err(|e| TransportError::BadAddress {
        addr: addr.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(ep
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true)
        .max_frame_size(config.h2_max_frame_bytes)
        .initial_stream_window_size(config.h2_stream_window_bytes)
        .initial_connection_window_size(config.h2_connection_window_bytes)
        // Idle pooled connections are checked too: a probe must not be the
        // first to find that its connection died during a partition.
        .http2_keep_alive_interval(config.keepalive.interval)
        .keep_alive_timeout(config.keepalive.timeout)
        .keep_alive_while_idle(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reuses_channels_and_stays_bounded() {
        let pool = ChannelPool::new(DataPlaneConfig::default(), 2, Arc::default());
        pool.get("127.0.0.1:1").unwrap();
        pool.get("127.0.0.1:1").unwrap();
        assert_eq!(pool.len(), 1);
        pool.get("127.0.0.1:2").unwrap();
        pool.get("127.0.0.1:3").unwrap();
        assert_eq!(pool.len(), 2);
    }

    #[tokio::test]
    async fn bad_addresses_are_named() {
        let pool = ChannelPool::new(DataPlaneConfig::default(), 2, Arc::default());
        let err = pool.get("not a host").unwrap_err();
        assert!(err.to_string().contains("not a host"), "{err}");
    }
}
