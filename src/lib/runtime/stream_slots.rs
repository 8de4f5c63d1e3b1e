//! Bounds on the long-lived streams clients hold open: `gsp watch`, `gsp watch
//! --messages` and `gsp logs`. Each costs the node a task and a queue for as
//! long as the client keeps it, so one caller address may hold
//! [`PER_CALLER`] of them and the node [`TOTAL`] in all; beyond, the call is
//! refused with RESOURCE_EXHAUSTED naming the limit. A slot is freed when the
//! client's stream goes away (the response stream is dropped).

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
};

use tokio_stream::Stream;
use tonic::{Request, Status};

/// Streams one caller address may hold open at one node.
pub const PER_CALLER: usize = 32;
/// Streams a node holds open in all.
pub const TOTAL: usize = 512;

/// Open streams per caller address.
#[derive(Debug, Clone)]
pub struct StreamSlots {
    open: Arc<Mutex<HashMap<String, usize>>>,
    per_caller: usize,
    total: usize,
}

impl Default for StreamSlots {
    fn default() -> Self {
        Self::new(PER_CALLER, TOTAL)
    }
}

impl StreamSlots {
    /// At most `per_caller` streams per caller address, `total` in all.
    pub fn new(per_caller: usize, total: usize) -> Self {
        Self {
            open: Arc::new(Mutex::new(HashMap::new())),
            per_caller,
            total,
        }
    }

    /// Takes a slot for a stream `request`'s caller opens, or refuses it.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED: the caller or the node holds as many as it may.
    pub fn admit<T>(&self, request: &Request<T>) -> Result<StreamSlot, Status> {
        let caller = crate::transport::auth::remote(request)
            .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string());
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let total: usize = open.values().sum();
        let mine = open.get(&caller).copied().unwrap_or(0);
        if mine >= self.per_caller || total >= self.total {
            return Err(Status::resource_exhausted(format!(
                "too many streams open: {mine} from {caller}, {total} in all at this node \
                 (limits {} and {}); close some `gsp watch` or `gsp logs --follow`",
                self.per_caller, self.total
            )));
        }
        *open.entry(caller.clone()).or_default() += 1;
        Ok(StreamSlot {
            open: Arc::clone(&self.open),
            caller,
        })
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .sum()
    }
}

/// One open stream's slot; freed when dropped.
#[derive(Debug)]
pub struct StreamSlot {
    open: Arc<Mutex<HashMap<String, usize>>>,
    caller: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.caller);
            }
        }
    }
}

/// A response stream holding its slot: dropped (the client went away, or
/// the stream ended), it frees it.
#[derive(Debug)]
pub struct Slotted<S> {
    inner: S,
    _slot: StreamSlot,
}

impl<S> Slotted<S> {
    /// `inner`, holding `slot` while it lives.
    pub fn new(inner: S, slot: StreamSlot) -> Self {
        Self { inner, _slot: slot }
    }
}

impl<S: Stream + Unpin> Stream for Slotted<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(ip: &str) -> Request<()> {
        let mut r = Request::new(());
        let addr: std::net::SocketAddr = format!("{ip}:5000").parse().expect("address");
        r.extensions_mut()
            .insert(tonic::transport::server::TcpConnectInfo {
                local_addr: None,
                remote_addr: Some(addr),
            });
        r
    }

    #[test]
    fn a_caller_gets_its_share_the_node_its_total_and_a_closed_stream_frees_its_slot() {
        let slots = StreamSlots::new(2, 3);
        let a1 = slots.admit(&from("10.0.0.1")).expect("first");
        let _a2 = slots.admit(&from("10.0.0.1")).expect("second");
        let refused = slots.admit(&from("10.0.0.1")).expect_err("third");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            refused.message().contains("2 from 10.0.0.1"),
            "{}",
            refused.message()
        );
        let _b1 = slots.admit(&from("10.0.0.2")).expect("another caller");
        let full = slots.admit(&from("10.0.0.3")).expect_err("node total");
        assert!(full.message().contains("3 in all"), "{}", full.message());
        drop(a1);
        assert_eq!(slots.open(), 2);
        slots
            .admit(&from("10.0.0.1"))
            .expect("a freed slot is taken again");
    }
}
