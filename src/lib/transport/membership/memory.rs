//! The in-memory network for simulations: nodes call each other's handlers
//! directly, with loss, delay, crashes and partitions injected from a seeded RNG.
//! Every message is round-tripped through its protobuf form, as on the wire, and
//! counted in bytes. Under a paused tokio clock on a current-thread runtime, a
//! simulation is deterministic.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use prost::Message as _;
use rand::{Rng as _, SeedableRng as _, rngs::StdRng};

use super::{
    CallError, MembershipHandler, MembershipTransport,
    convert::{RecordLimits, record_from_pb, records_to_pb},
};
use crate::core::{
    membership::{
        messages::{Gossip, IndirectPing, Ping, PingReply, PushPull, PushPullReply},
        record::MemberRecord,
    },
    resources::{
        inventory::Inventory,
        query::{Query, QueryAnswer},
    },
};

#[derive(Default)]
struct NetState {
    nodes: HashMap<String, Arc<dyn MembershipHandler>>,
    /// Data plane sinks (broadcast simulations), by address.
    sinks: HashMap<String, Arc<dyn crate::transport::data_plane::sink::MessageSink>>,
    /// Addresses whose node is crashed: calls fail at once (connection refused).
    crashed: HashSet<String>,
    /// Partition groups: calls between different groups are silently dropped.
    groups: HashMap<String, usize>,
    /// Addresses whose traffic is dropped both ways (a stalled or cut-off host).
    isolated: HashSet<String>,
    /// One-way cuts: traffic from the first address to the second is dropped.
    blocked: HashSet<(String, String)>,
    loss: f64,
    delay: Duration,
    rng: Option<StdRng>,
    bytes: HashMap<String, (u64, u64)>,
    calls: u64,
}

/// A simulated network of membership handlers, addressed by string.
#[derive(Clone, Default)]
pub struct MemoryNetwork {
    state: Arc<Mutex<NetState>>,
}

impl std::fmt::Debug for MemoryNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryNetwork").finish_non_exhaustive()
    }
}

/// What happens to one call.
struct Route {
    handler: Option<Arc<dyn MembershipHandler>>,
    drop_request: bool,
    drop_reply: bool,
    delay: Duration,
}

impl MemoryNetwork {
    /// A network whose random loss is drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        let net = Self::default();
        net.lock().rng = Some(StdRng::seed_from_u64(seed));
        net
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Attaches `handler` at `addr` (a start or restart clears any crash there).
    pub fn register(&self, addr: &str, handler: Arc<dyn MembershipHandler>) {
        let mut s = self.lock();
        s.crashed.remove(addr);
        s.nodes.insert(addr.to_owned(), handler);
    }

    /// Crashes the node at `addr`: calls to it fail at once.
    pub fn crash(&self, addr: &str) {
        let mut s = self.lock();
        s.nodes.remove(addr);
        s.sinks.remove(addr);
        s.crashed.insert(addr.to_owned());
    }

    /// Attaches a data plane sink at `addr` (broadcast simulations).
    pub fn register_sink(
        &self,
        addr: &str,
        sink: Arc<dyn crate::transport::data_plane::sink::MessageSink>,
    ) {
        self.lock().sinks.insert(addr.to_owned(), sink);
    }

    /// Routes a data plane send of `bytes` from `from` to `to`: the sink, whether
    /// the request and the reply are lost, and the one-way delay; `None` when
    /// nothing listens there. Counts the bytes.
    #[allow(clippy::type_complexity, reason = "a private route tuple")]
    pub(crate) fn route_sink(
        &self,
        from: &str,
        to: &str,
        bytes: usize,
    ) -> Option<(
        Arc<dyn crate::transport::data_plane::sink::MessageSink>,
        bool,
        bool,
        Duration,
    )> {
        let route = self.route(from, to);
        let sink = self.lock().sinks.get(to).cloned()?;
        self.count(from, to, bytes);
        Some((sink, route.drop_request, route.drop_reply, route.delay))
    }

    /// Drops each message (each direction independently) with probability `p`.
    pub fn set_loss(&self, p: f64) {
        self.lock().loss = p.clamp(0.0, 1.0);
    }

    /// Delays each message by `d` each way.
    pub fn set_delay(&self, d: Duration) {
        self.lock().delay = d;
    }

    /// Splits the network: calls between addresses of different groups are
    /// dropped; addresses in no group can reach everyone.
    pub fn partition(&self, groups: &[Vec<String>]) {
        let mut s = self.lock();
        s.groups = groups
            .iter()
            .enumerate()
            .flat_map(|(i, g)| g.iter().map(move |a| (a.clone(), i)))
            .collect();
    }

    /// Removes every partition.
    pub fn heal(&self) {
        self.lock().groups.clear();
    }

    /// Drops (or restores) all traffic to and from `addr`.
    pub fn isolate(&self, addr: &str, isolated: bool) {
        let mut s = self.lock();
        if isolated {
            s.isolated.insert(addr.to_owned());
        } else {
            s.isolated.remove(addr);
        }
    }

    /// Drops (or restores) traffic from `from` to `to`, one way only.
    pub fn block(&self, from: &str, to: &str, blocked: bool) {
        let mut s = self.lock();
        let key = (from.to_owned(), to.to_owned());
        if blocked {
            s.blocked.insert(key);
        } else {
            s.blocked.remove(&key);
        }
    }

    /// Protobuf bytes sent and received by the node at `addr` so far.
    pub fn bytes(&self, addr: &str) -> (u64, u64) {
        self.lock().bytes.get(addr).copied().unwrap_or_default()
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    /// The transport of the node at `from`.
    pub fn transport(&self, from: &str) -> MemoryTransport {
        MemoryTransport {
            net: self.clone(),
            from: from.to_owned(),
        }
    }

    fn route(&self, from: &str, to: &str) -> Route {
        let mut s = self.lock();
        s.calls += 1;
        let cut = s.isolated.contains(from)
            || s.isolated.contains(to)
            || matches!((s.groups.get(from), s.groups.get(to)), (Some(a), Some(b)) if a != b);
        let one_way = |a: &str, b: &str| s.blocked.contains(&(a.to_owned(), b.to_owned()));
        let (cut_request, cut_reply) = (one_way(from, to), one_way(to, from));
        let loss = s.loss;
        let (drop_request, drop_reply) = match s.rng.as_mut() {
            Some(rng) if loss > 0.0 => (rng.random_bool(loss), rng.random_bool(loss)),
            _ => (false, false),
        };
        Route {
            handler: if s.crashed.contains(to) {
                None
            } else {
                s.nodes.get(to).cloned()
            },
            drop_request: cut || cut_request || drop_request,
            drop_reply: cut || cut_reply || drop_reply,
            delay: s.delay,
        }
    }

    fn count(&self, from: &str, to: &str, bytes: usize) {
        let mut s = self.lock();
        let b = bytes as u64;
        s.bytes.entry(from.to_owned()).or_default().0 += b;
        s.bytes.entry(to.to_owned()).or_default().1 += b;
    }
}

/// One node's view of the [`MemoryNetwork`].
#[derive(Clone, Debug)]
pub struct MemoryTransport {
    net: MemoryNetwork,
    from: String,
}

/// Round-trips records through their wire form, as a real transport would.
fn wire<R: std::borrow::Borrow<MemberRecord> + From<MemberRecord>>(
    records: &[R],
) -> (Vec<R>, usize) {
    let pb = records_to_pb(records);
    let bytes = pb.iter().map(prost::Message::encoded_len).sum::<usize>();
    let limits = RecordLimits::default();
    let back = pb
        .into_iter()
        .filter_map(|p| record_from_pb(p, "updates", &limits, i64::MAX / 2).ok())
        .map(R::from)
        .collect();
    (back, bytes)
}

/// Fixed per-call overhead counted for headers and ids.
const CALL_OVERHEAD: usize = 64;

impl MemoryTransport {
    /// Delivers a request: fails at once to a crashed node, times out when the
    /// request is lost, otherwise waits out the delay and returns the handler.
    async fn begin(
        &self,
        to: &str,
        timeout: Duration,
        request_bytes: usize,
    ) -> Result<(Arc<dyn MembershipHandler>, Route), CallError> {
        let route = self.net.route(&self.from, to);
        let Some(handler) = route.handler.clone() else {
            return Err(CallError::Unreachable(format!(
                "connection refused by {to}"
            )));
        };
        self.net
            .count(&self.from, to, request_bytes + CALL_OVERHEAD);
        if route.drop_request || route.delay * 2 > timeout {
            tokio::time::sleep(timeout).await;
            return Err(CallError::Timeout(timeout));
        }
        tokio::time::sleep(route.delay).await;
        Ok((handler, route))
    }

    /// Delivers the reply: times out when it is lost, otherwise waits out the delay.
    async fn finish(
        &self,
        to: &str,
        route: &Route,
        reply_bytes: usize,
        timeout: Duration,
    ) -> Result<(), CallError> {
        self.net.count(to, &self.from, reply_bytes + CALL_OVERHEAD);
        if route.drop_reply {
            tokio::time::sleep(timeout.saturating_sub(route.delay)).await;
            return Err(CallError::Timeout(timeout));
        }
        tokio::time::sleep(route.delay).await;
        Ok(())
    }
}

/// What a caller over gRPC gets for refusal `e`: its status, mapped back
/// (a node shutting down is unreachable, an overloaded one refuses).
fn refused(e: &super::Refusal) -> CallError {
    super::grpc::call_error(&tonic::Status::from(e.clone()), Duration::ZERO)
}

/// [`refused`] for a push-pull, where a node of another domain answers with
/// its domain (iarnet's empty exchange) rather than an error.
fn refused_push_pull(e: &super::Refusal) -> CallError {
    match e {
        super::Refusal::ForeignDomain { local, .. } => CallError::ForeignDomain(local.clone()),
        _ => refused(e),
    }
}

#[tonic::async_trait]
impl MembershipTransport for MemoryTransport {
    async fn ping(
        &self,
        addr: &str,
        mut msg: Ping,
        timeout: Duration,
    ) -> Result<PingReply, CallError> {
        let (updates, bytes) = wire(&msg.updates);
        msg.updates = updates;
        let (h, route) = self.begin(addr, timeout, bytes).await?;
        let mut r = h.on_ping(msg, None).map_err(|e| refused(&e))?;
        let (updates, bytes) = wire(&r.updates);
        r.updates = updates;
        self.finish(addr, &route, bytes, timeout).await?;
        Ok(r)
    }

    async fn ping_req(
        &self,
        addr: &str,
        mut msg: IndirectPing,
        timeout: Duration,
    ) -> Result<PingReply, CallError> {
        let (updates, bytes) = wire(&msg.updates);
        msg.updates = updates;
        let (h, route) = self.begin(addr, timeout, bytes).await?;
        let mut r = h.on_ping_req(msg, None).await.map_err(|e| refused(&e))?;
        let (updates, bytes) = wire(&r.updates);
        r.updates = updates;
        self.finish(addr, &route, bytes, timeout).await?;
        Ok(r)
    }

    async fn gossip(
        &self,
        addr: &str,
        mut msg: Gossip,
        timeout: Duration,
    ) -> Result<(), CallError> {
        let (updates, bytes) = wire(&msg.updates);
        msg.updates = updates;
        let (h, route) = self.begin(addr, timeout, bytes).await?;
        h.on_gossip(msg, None).map_err(|e| refused(&e))?;
        self.finish(addr, &route, 0, timeout).await
    }

    async fn push_pull(
        &self,
        addr: &str,
        mut msg: PushPull,
        timeout: Duration,
    ) -> Result<PushPullReply, CallError> {
        let (records, bytes) = wire(&msg.records);
        msg.records = records;
        let bytes = bytes + msg.want.iter().map(|w| w.as_str().len() + 2).sum::<usize>();
        let (h, route) = self.begin(addr, timeout, bytes).await?;
        let mut r = h
            .on_push_pull(msg, None)
            .map_err(|e| refused_push_pull(&e))?;
        let (records, mut bytes) = wire(&r.records);
        r.records = records;
        bytes += r
            .digests
            .iter()
            .map(|d| super::convert::digest_to_pb(d).encoded_len())
            .sum::<usize>();
        self.finish(addr, &route, bytes, timeout).await?;
        Ok(r)
    }

    async fn query(
        &self,
        addr: &str,
        q: Query,
        timeout: Duration,
    ) -> Result<QueryAnswer, CallError> {
        let bytes = super::extras::query_to_pb(&q, 0).encoded_len();
        let (h, route) = self.begin(addr, timeout, bytes).await?;
        let mut a = h.on_query(q).await.map_err(|e| refused(&e))?;
        let (nodes, bytes) = wire(&a.nodes);
        a.nodes = nodes;
        self.finish(addr, &route, bytes, timeout).await?;
        Ok(a)
    }

    async fn local_record(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> Result<crate::core::membership::record::MemberRecord, CallError> {
        let (h, route) = self.begin(addr, timeout, 0).await?;
        let record = h.local_record();
        self.finish(addr, &route, 0, timeout).await?;
        Ok(record)
    }

    async fn inventory(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> Result<Option<Inventory>, CallError> {
        let (h, route) = self.begin(addr, timeout, 0).await?;
        let inv = h.local_inventory();
        self.finish(addr, &route, 0, timeout).await?;
        Ok(inv)
    }
}
