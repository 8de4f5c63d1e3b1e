//! Whom to talk to: the probe order, indirect-probe helpers, gossip targets,
//! suspects to tell, dead members to retry.

use rand::{Rng, seq::IndexedRandom as _, seq::SliceRandom as _};

use super::Membership;
use crate::core::{
    ids::NodeId,
    membership::{
        ProbeTarget,
        record::{MemberRecord, MemberState},
    },
};

impl Membership {
    /// The next node to probe: every member that is up, in a shuffled order that
    /// is renewed after each full pass, so each is probed once per pass.
    pub fn next_probe<R: Rng>(&mut self, rng: &mut R) -> Option<ProbeTarget> {
        for id in std::mem::take(&mut self.probe_newcomers) {
            if self.probe_order[self.probe_next..].contains(&id) {
                continue;
            }
            let at = rng.random_range(self.probe_next..=self.probe_order.len());
            self.probe_order.insert(at, id);
        }
        for _ in 0..2 {
            while let Some(id) = self.probe_order.get(self.probe_next).cloned() {
                self.probe_next += 1;
                if let Some(e) = self.table.get(&id)
                    && e.record.state.is_up()
                {
                    return Some(ProbeTarget {
                        id,
                        address: e.record.address.clone(),
                    });
                }
            }
            self.probe_order = self.up_peers().map(|r| r.id.clone()).collect();
            self.probe_order.shuffle(rng);
            self.probe_next = 0;
            self.probe_newcomers.clear();
            if self.probe_order.is_empty() {
                return None;
            }
        }
        None
    }

    fn up_peers(&self) -> impl Iterator<Item = &MemberRecord> {
        self.table
            .entries()
            .map(|e| &e.record)
            .filter(|r| r.state.is_up() && r.id != self.local.id)
    }

    /// Up to `k` alive members other than `exclude`, to probe it indirectly.
    pub fn helpers<R: Rng>(&self, exclude: &NodeId, k: usize, rng: &mut R) -> Vec<ProbeTarget> {
        let candidates: Vec<&MemberRecord> = self
            .up_peers()
            .filter(|r| r.state == MemberState::Alive && &r.id != exclude)
            .collect();
        candidates
            .choose_multiple(rng, k)
            .map(|r| ProbeTarget {
                id: r.id.clone(),
                address: r.address.clone(),
            })
            .collect()
    }

    /// Up to `fanout` members to push pending updates to this round.
    pub fn gossip_targets<R: Rng>(&self, rng: &mut R) -> Vec<ProbeTarget> {
        let candidates: Vec<&MemberRecord> = self.up_peers().collect();
        candidates
            .choose_multiple(rng, self.config.fanout)
            .map(|r| ProbeTarget {
                id: r.id.clone(),
                address: r.address.clone(),
            })
            .collect()
    }

    /// Members currently suspected, with their suspect records, so each round they
    /// can be told directly and refute at once (Lifeguard's buddy system, pushed
    /// rather than waiting for the next probe). At most `max_piggyback`.
    pub fn suspects(&self) -> Vec<(ProbeTarget, MemberRecord)> {
        self.suspicions
            .keys()
            .filter_map(|id| self.table.get(id))
            .filter(|e| e.record.state == MemberState::Suspect)
            .take(self.config.max_piggyback)
            .map(|e| {
                (
                    ProbeTarget {
                        id: e.record.id.clone(),
                        address: e.record.address.clone(),
                    },
                    e.record.clone(),
                )
            })
            .collect()
    }

    /// A random dead member, to try to reach again (Fabric's reconnect).
    pub fn random_dead<R: Rng>(&self, rng: &mut R) -> Option<ProbeTarget> {
        self.dead_sample(1, rng).pop()
    }

    /// Up to `max` dead members, chosen at random.
    pub fn dead_sample<R: Rng>(&self, max: usize, rng: &mut R) -> Vec<ProbeTarget> {
        let dead: Vec<&MemberRecord> = self
            .table
            .entries()
            .map(|e| &e.record)
            .filter(|r| r.state == MemberState::Dead)
            .collect();
        dead.choose_multiple(rng, max)
            .map(|r| ProbeTarget {
                id: r.id.clone(),
                address: r.address.clone(),
            })
            .collect()
    }
}
