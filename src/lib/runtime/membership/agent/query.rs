//! Multi-hop resource queries: answer from this node's view (with its own fresh
//! record), forward to a few peers while hops remain, merge what comes back.
//! Every query id is answered once per node (a cycle neither loops nor
//! double-counts); queries in flight are bounded per caller and in all.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use rand::seq::IndexedRandom as _;
use tokio::time::Instant;

use super::{MembershipAgent, Shared};
use crate::{
    core::{
        dedup::DedupCache,
        ids::NodeId,
        membership::record::MemberState,
        resources::{
            matcher::select,
            query::{MAX_HOPS_CAP, Query, QueryAnswer, merge},
            request::ResourceRequest,
        },
    },
    transport::membership::Refusal,
};

/// Peers a query is forwarded to at each hop.
pub const QUERY_FANOUT: usize = 8;
/// Queries in flight at one node from one caller.
pub const MAX_IN_FLIGHT_PER_CALLER: usize = 16;
/// Queries in flight at one node in all.
pub const MAX_IN_FLIGHT: usize = 256;
/// Query ids remembered (for a minute each) to answer each query once.
pub const SEEN_QUERIES: usize = 4096;

/// Dedup and admission state of one node's query handling.
#[derive(Debug)]
pub(in crate::runtime::membership) struct QueryState {
    /// `std::sync::Mutex`: held only to check or record, never across an await.
    seen: Mutex<DedupCache<String>>,
    in_flight: Mutex<HashMap<NodeId, usize>>,
}

impl QueryState {
    pub(in crate::runtime::membership) fn new() -> Self {
        Self {
            seen: Mutex::new(DedupCache::new(SEEN_QUERIES, Duration::from_secs(60))),
            in_flight: Mutex::new(HashMap::new()),
        }
    }
}

/// Releases an in-flight slot when dropped.
struct Slot<'a> {
    state: &'a QueryState,
    caller: NodeId,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut m = self
            .state
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = m.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.caller);
            }
        }
    }
}

fn admit<'a>(state: &'a QueryState, caller: &NodeId) -> Result<Slot<'a>, Refusal> {
    let mut m = state
        .in_flight
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let total: usize = m.values().sum();
    let mine = m.get(caller).copied().unwrap_or(0);
    if total >= MAX_IN_FLIGHT || mine >= MAX_IN_FLIGHT_PER_CALLER {
        return Err(Refusal::Overloaded(format!(
            "{mine} queries in flight from {caller}, {total} in all (limits {MAX_IN_FLIGHT_PER_CALLER} and {MAX_IN_FLIGHT})"
        )));
    }
    *m.entry(caller.clone()).or_default() += 1;
    Ok(Slot {
        state,
        caller: caller.clone(),
    })
}

impl Shared {
    /// One hop of a query: see the module docs.
    pub(in crate::runtime::membership) async fn answer_query(
        self: &Arc<Self>,
        q: Query,
    ) -> Result<QueryAnswer, Refusal> {
        let started = Instant::now();
        let fresh = self
            .queries
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(q.id.clone(), started.into_std());
        if !fresh {
            return Ok(QueryAnswer {
                responder: Some(self.local_id.clone()),
                ..QueryAnswer::default()
            });
        }
        let _slot = admit(&self.queries, &q.from)?;
        let max_hops = q.max_hops.min(MAX_HOPS_CAP);
        let (local, targets) = self.with_state(|st| {
            let local = select(st.records(), &q.request);
            let targets: Vec<(NodeId, String)> = if q.current_hops < max_hops {
                let candidates: Vec<_> = st
                    .records()
                    .filter(|r| {
                        r.state == MemberState::Alive && r.id != self.local_id && r.id != q.from
                    })
                    .map(|r| (r.id.clone(), r.address.clone()))
                    .collect();
                let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
                candidates
                    .choose_multiple(&mut *rng, QUERY_FANOUT)
                    .cloned()
                    .collect()
            } else {
                Vec::new()
            };
            (local, targets)
        });
        let mut parts = vec![(q.current_hops, local)];
        // Children get most of what is left, so their answers arrive in time.
        let child_timeout = q.timeout.saturating_sub(started.elapsed()).mul_f64(0.8);
        if !targets.is_empty() && child_timeout > Duration::from_millis(5) {
            let mut asks = tokio::task::JoinSet::new();
            for (_, addr) in targets {
                let child = Query {
                    from: self.local_id.clone(),
                    from_address: self.address.clone(),
                    current_hops: q.current_hops + 1,
                    max_hops,
                    timeout: child_timeout,
                    ..q.clone()
                };
                let transport = Arc::clone(&self.transport);
                asks.spawn(async move { transport.query(&addr, child, child_timeout).await });
            }
            let deadline = started + child_timeout + Duration::from_millis(5);
            while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, asks.join_next()).await {
                if let Ok(Ok(answer)) = joined {
                    parts.push((answer.hops_used.max(q.current_hops + 1), answer.nodes));
                }
            }
            asks.abort_all();
        }
        let (nodes, hops_used) = merge(parts, &q.request);
        Ok(QueryAnswer {
            responder: Some(self.local_id.clone()),
            nodes,
            hops_used,
        })
    }
}

/// A query started at this node.
#[derive(Debug, Clone)]
pub struct QueryOutcome {
    /// Its id.
    pub id: String,
    /// The hop limit applied.
    pub max_hops: u32,
    /// The merged answer.
    pub answer: QueryAnswer,
}

impl MembershipAgent {
    /// Runs a query from this node: its own view, then peers up to `max_hops`
    /// away (capped at [`MAX_HOPS_CAP`]), within `timeout`.
    ///
    /// # Errors
    /// Too many queries in flight.
    pub async fn query(
        &self,
        request: ResourceRequest,
        max_hops: u32,
        timeout: Duration,
    ) -> Result<QueryOutcome, Refusal> {
        let s = &self.shared;
        let q = Query {
            id: uuid::Uuid::now_v7().to_string(),
            from: s.local_id.clone(),
            from_address: s.address.clone(),
            domain: s.domain.clone(),
            request,
            max_hops: max_hops.min(MAX_HOPS_CAP),
            current_hops: 0,
            timeout,
        };
        let id = q.id.clone();
        let max_hops = q.max_hops;
        let answer = s.answer_query(q).await?;
        Ok(QueryOutcome {
            id,
            max_hops,
            answer,
        })
    }
}
