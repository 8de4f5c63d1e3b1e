//! The agent as its peers' server: what it answers to probes, indirect probes,
//! pushes, push-pulls, peer lists and queries.

use std::sync::{Arc, PoisonError};

use tracing::debug;

use super::{
    agent::{MembershipAgent, now},
    stats::MembershipStats,
};
use crate::{
    core::{
        ids::NodeId,
        membership::{
            exchange::Request,
            messages::{Gossip, IndirectPing, Ping, PingReply, PushPull, PushPullReply},
            record::MemberRecord,
        },
    },
    transport::membership::{MembershipHandler, Refusal},
};

#[tonic::async_trait]
impl MembershipHandler for MembershipAgent {
    fn on_ping(&self, msg: Ping, caller: Option<&str>) -> Result<PingReply, Refusal> {
        let s = &self.shared;
        s.check_domain(&msg.domain)?;
        if s.shutdown.is_cancelled() {
            return Err(Refusal::ShuttingDown);
        }
        if msg.target != s.local_id {
            return Err(Refusal::WrongNode {
                expected: msg.target,
                actual: s.local_id.clone(),
            });
        }
        let now = now();
        let source = caller.unwrap_or(msg.from.as_str());
        let weighted = s.source(source);
        let updates = s.authentic(msg.updates);
        let reply_updates = s.with_state(|st| {
            st.answer_ping(&msg.from, updates, msg.want_record, Some(weighted), now)
        });
        Ok(PingReply {
            from: s.local_id.clone(),
            seq: msg.seq,
            ack: true,
            updates: reply_updates,
        })
    }

    async fn on_ping_req(
        &self,
        msg: IndirectPing,
        caller: Option<&str>,
    ) -> Result<PingReply, Refusal> {
        let s = &self.shared;
        s.check_domain(&msg.domain)?;
        if s.shutdown.is_cancelled() {
            return Err(Refusal::ShuttingDown);
        }
        s.merge_from(msg.updates, Some(caller.unwrap_or(msg.from.as_str())));
        // Probe only a member known here at that address, and only so many at
        // once: a peer cannot make this node probe arbitrary addresses, nor
        // many at a time. Refusing is a nack: the asker learns nothing false.
        let known = s.with_state(|st| {
            st.get(&msg.target)
                .is_some_and(|r| r.address == msg.target_address)
        });
        let slot = known
            .then(|| Arc::clone(&s.ping_req_slots).try_acquire_owned().ok())
            .flatten();
        let Some(_slot) = slot else {
            MembershipStats::inc(&s.stats.ping_req_refused);
            debug!(target_node = %msg.target, address = %msg.target_address, known, "indirect probe refused");
            let updates = s.with_state(|st| st.piggyback(Some(&msg.from)));
            return Ok(PingReply {
                from: s.local_id.clone(),
                seq: msg.seq,
                ack: false,
                updates,
            });
        };
        MembershipStats::inc(&s.stats.ping_req_served);
        let acked = s
            .probe_for(&msg.target, &msg.target_address, msg.timeout)
            .await;
        let ack = acked.is_ok();
        if let Ok(reply) = acked {
            s.merge(reply.updates);
        }
        let updates = s.with_state(|st| st.piggyback(Some(&msg.from)));
        Ok(PingReply {
            from: s.local_id.clone(),
            seq: msg.seq,
            ack,
            updates,
        })
    }

    fn on_gossip(&self, msg: Gossip, caller: Option<&str>) -> Result<(), Refusal> {
        self.shared.check_domain(&msg.domain)?;
        if self.shared.shutdown.is_cancelled() {
            return Err(Refusal::ShuttingDown);
        }
        let source = caller.unwrap_or(msg.from.as_str());
        self.shared.merge_from(msg.updates, Some(source));
        Ok(())
    }

    fn on_push_pull(&self, msg: PushPull, caller: Option<&str>) -> Result<PushPullReply, Refusal> {
        let s = &self.shared;
        s.check_domain(&msg.domain)?;
        if msg.from == s.local_id {
            // A seed address that is this node's own: not a join.
            return Err(Refusal::Myself(msg.from));
        }
        if s.shutdown.is_cancelled() {
            return Err(Refusal::ShuttingDown);
        }
        let (ours, foreign): (Vec<_>, Vec<_>) =
            msg.records.into_iter().partition(|r| r.domain == s.domain);
        for _ in &foreign {
            MembershipStats::inc(&s.stats.refused_foreign_domain);
        }
        let ours = s.authentic(ours);
        let now = now();
        let source = caller.unwrap_or(msg.from.as_str());
        let weighted = s.source(source);
        let request = Request {
            phase: msg.phase,
            records: ours,
            table_hash: msg.table_hash,
            want: msg.want,
        };
        Ok(s.with_state(|st| st.answer_push_pull(&msg.from, request, Some(weighted), now)))
    }

    fn on_peer_list(
        &self,
        domain: &str,
        requester_address: &str,
        known: Vec<String>,
    ) -> Result<Vec<String>, Refusal> {
        self.shared.check_domain(domain)?;
        let mut candidates = known;
        candidates.push(requester_address.to_owned());
        self.add_seeds(candidates);
        Ok(self.with_state(|st| {
            st.all_records()
                .into_iter()
                .filter(|r| r.state.is_up())
                .map(|r| r.address.clone())
                .collect()
        }))
    }

    async fn on_query(
        &self,
        q: crate::core::resources::query::Query,
    ) -> Result<crate::core::resources::query::QueryAnswer, Refusal> {
        self.shared.check_domain(&q.domain)?;
        if self.shared.shutdown.is_cancelled() {
            return Err(Refusal::ShuttingDown);
        }
        MembershipStats::inc(&self.shared.stats.queries);
        self.shared
            .answer_query(q)
            .await
            .inspect_err(|r| self.shared.count_refusal(r))
    }

    fn local_record(&self) -> MemberRecord {
        self.with_state(|st| MemberRecord::clone(st.local()))
    }

    fn local_inventory(&self) -> Option<crate::core::resources::inventory::Inventory> {
        self.shared
            .inventory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn count_refusal(&self, refusal: &Refusal) {
        self.shared.count_refusal(refusal);
    }

    fn name_of(&self, id: &NodeId) -> Option<String> {
        self.with_state(|st| st.get(id).map(|r| r.name.clone()))
    }

    fn members_at(&self, host: &str) -> usize {
        self.shared.members_at(host)
    }
}
