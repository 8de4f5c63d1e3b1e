//! Calls this node makes to a peer on the agent's behalf: push-pull messages
//! and pings (direct probes).

use std::time::Duration;

use super::Shared;
use crate::{
    core::{
        ids::NodeId,
        membership::{
            messages::{Ping, PingReply},
            record::SharedRecord,
        },
    },
    transport::membership::CallError,
};

impl Shared {
    /// `request` as a push-pull call from this node.
    pub(in crate::runtime::membership) fn push_pull_msg(
        &self,
        request: crate::core::membership::exchange::Request,
    ) -> crate::core::membership::messages::PushPull {
        crate::core::membership::messages::PushPull {
            from: self.local_id.clone(),
            from_address: self.address.clone(),
            domain: self.domain.clone(),
            phase: request.phase,
            records: request.records,
            table_hash: request.table_hash,
            want: request.want,
        }
    }

    /// Pings `target` at `address` once, with piggybacked updates (its suspicion
    /// first, if it is suspected).
    ///
    /// # Errors
    /// No ack in time (a reply from another node counts as none).
    pub(in crate::runtime::membership) async fn probe_for(
        &self,
        target: &NodeId,
        address: &str,
        timeout: Duration,
    ) -> Result<PingReply, CallError> {
        let updates = self.with_state(|s| s.piggyback(Some(target)));
        let seq = self.next_seq();
        self.ping_with(target, address, seq, (updates, false), timeout)
            .await
    }

    /// Pings `target` at `address` once, carrying `updates` (and asking for
    /// its own record with `want_record`), as probe `seq`.
    ///
    /// # Errors
    /// No ack in time (a reply from another node counts as none).
    pub(in crate::runtime::membership) async fn ping_with(
        &self,
        target: &NodeId,
        address: &str,
        seq: u64,
        (updates, want_record): (Vec<SharedRecord>, bool),
        timeout: Duration,
    ) -> Result<PingReply, CallError> {
        let ping = Ping {
            from: self.local_id.clone(),
            domain: self.domain.clone(),
            target: target.clone(),
            seq,
            updates,
            want_record,
        };
        let sent = std::time::Instant::now();
        match self.transport.ping(address, ping, timeout).await {
            Ok(reply) if reply.ack && &reply.from == target => {
                self.stats.probe_rtt.observe(sent.elapsed());
                Ok(reply)
            }
            Ok(reply) => Err(CallError::Refused(format!(
                "answered by {} instead",
                reply.from
            ))),
            Err(e) => Err(e),
        }
    }
}
