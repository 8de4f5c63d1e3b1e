//! The origin's side of a broadcast: starting one, and counting the receipts
//! of the members it must reach.

use std::time::Instant;

use rand::Rng;

use super::{Action, BroadcastState, OriginateError};
use crate::{
    ack_tracker::{AckEffect, Answer, TrackError},
    ids::{MessageId, NodeId},
    message::{InboundMessage, OutboundMessage},
};

impl BroadcastState {
    /// Starts a broadcast of `msg` from this node to `members` (the live members,
    /// this node included), tracked until `deadline`.
    ///
    /// # Errors
    /// Too many broadcasts from this node are in flight.
    pub fn originate<R: Rng>(
        &mut self,
        msg: OutboundMessage,
        members: &[NodeId],
        now: Instant,
        deadline: Instant,
        rng: &mut R,
    ) -> Result<Vec<Action>, OriginateError> {
        let id = msg.meta.id;
        match self
            .origin
            .track(id, members.iter().cloned(), now, deadline, ())
        {
            Ok(_) | Err(TrackError::DuplicateId(_)) => {}
            Err(TrackError::Full(n)) => return Err(OriginateError::TooManyInFlight(n)),
        }
        let inbound = InboundMessage {
            sender: self.local.clone(),
            meta: msg.meta,
            payload: msg.payload,
            crc32: msg.crc32,
        };
        let peers: Vec<NodeId> = members
            .iter()
            .filter(|m| **m != self.local)
            .cloned()
            .collect();
        // No relay peers: the origin sends the payload to every member (itself,
        // or as pieces down the swarm's trees), so announcing it as a relay
        // would only duplicate that.
        let mut relayed = inbound.meta.clone();
        relayed.hops = relayed.hops.saturating_add(1);
        relayed.ttl = relayed.ttl.saturating_sub(1);
        let (payload, crc32) = (inbound.payload.clone(), inbound.crc32);
        let (_, mut actions) = self.on_payload(inbound, &[], now, rng);
        match self.originate_swarm(&relayed, (&payload, crc32), &peers, now, rng) {
            Some(pieces) => actions.extend(pieces),
            None => actions.extend(
                peers
                    .into_iter()
                    .map(|to| Action::Send { to, id, attempt: 0 }),
            ),
        }
        Ok(actions)
    }

    /// As origin: `to` acknowledged the payload of `id` sent to it directly, as
    /// delivered or as already delivered: it counts as `to`'s receipt.
    pub fn on_direct_ack(&mut self, id: MessageId, to: &NodeId, now: Instant) -> Vec<Action> {
        self.receipt(id, to, now)
    }

    /// As origin: `nodes` delivered `id`.
    pub fn on_receipt(&mut self, id: MessageId, nodes: &[NodeId], now: Instant) -> Vec<Action> {
        nodes
            .iter()
            .flat_map(|n| self.receipt(id, n, now))
            .collect()
    }

    pub(super) fn receipt(&mut self, id: MessageId, node: &NodeId, now: Instant) -> Vec<Action> {
        let started = self.origin.started(id);
        match self.origin.on_ack(id, node, Answer::Delivered, now) {
            AckEffect::Ignored => Vec::new(),
            AckEffect::Progress => vec![Self::acked(id, node, started, now)],
            AckEffect::Completed(c) => vec![Self::acked(id, node, started, now), Action::Done(c)],
        }
    }

    fn acked(id: MessageId, node: &NodeId, started: Option<Instant>, now: Instant) -> Action {
        Action::Acked {
            id,
            node: node.clone(),
            latency: started.map_or_else(std::time::Duration::default, |s| {
                now.saturating_duration_since(s)
            }),
        }
    }
}
