//! Whom to talk to: the probe order, indirect-probe helpers, gossip targets,
//! suspects to tell, dead members to retry.

use rand::{Rng, seq::IndexedRandom as _, seq::SliceRandom as _};

use super::Membership;
use crate::{
    ids::NodeId,
    membership::{
        ProbeTarget,
        record::{MemberRecord, MemberState, SharedRecord},
    },
};

/// Tables up to this size are scanned whole to pick peers (exact and cheap).
const SCAN_BELOW: usize = 64;

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
            .map(|e| &*e.record)
            .filter(|r| r.state.is_up() && r.id != self.local.id)
    }

    /// Up to `k` alive members other than `exclude`, to probe it indirectly.
    pub fn helpers<R: Rng>(&self, exclude: &NodeId, k: usize, rng: &mut R) -> Vec<ProbeTarget> {
        self.sample(
            k,
            |r| r.state == MemberState::Alive && &r.id != exclude,
            rng,
        )
    }

    /// Up to `fanout` members to push pending updates to this round.
    pub fn gossip_targets<R: Rng>(&self, rng: &mut R) -> Vec<ProbeTarget> {
        self.sample(self.config.fanout, |_| true, rng)
    }

    /// Up to `k` distinct peers that are up and pass `ok`, chosen at random.
    ///
    /// A round must not cost O(members): in a large table the peers are drawn
    /// from the probe order (every member up when the pass began, plus those
    /// that came up since), checked against the table, so a draw costs O(k log
    /// n). A small table, or draws that keep missing (most of the order went
    /// down), fall back to a scan of the whole table.
    fn sample<R: Rng>(
        &self,
        k: usize,
        ok: impl Fn(&MemberRecord) -> bool,
        rng: &mut R,
    ) -> Vec<ProbeTarget> {
        let target = |r: &MemberRecord| ProbeTarget {
            id: r.id.clone(),
            address: r.address.clone(),
        };
        let pool = self.probe_order.len() + self.probe_newcomers.len();
        if k > 0 && self.table.len() > SCAN_BELOW && pool >= self.table.len() / 2 {
            let mut out: Vec<ProbeTarget> = Vec::with_capacity(k);
            for _ in 0..(4 * k + 16) {
                let at = rng.random_range(0..pool);
                let id = self
                    .probe_order
                    .get(at)
                    .or_else(|| self.probe_newcomers.get(at - self.probe_order.len()));
                if let Some(e) = id.and_then(|id| self.table.get(id))
                    && e.record.state.is_up()
                    && e.record.id != self.local.id
                    && ok(&e.record)
                    && !out.iter().any(|t| t.id == e.record.id)
                {
                    out.push(target(&e.record));
                    if out.len() == k {
                        return out;
                    }
                }
            }
        }
        let candidates: Vec<&MemberRecord> = self.up_peers().filter(|r| ok(r)).collect();
        candidates
            .choose_multiple(rng, k)
            .map(|r| target(r))
            .collect()
    }

    /// Members currently suspected, with their suspect records, so each round they
    /// can be told directly and refute at once (Lifeguard's buddy system, pushed
    /// rather than waiting for the next probe). At most `max_piggyback`.
    pub fn suspects(&self) -> Vec<(ProbeTarget, SharedRecord)> {
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
            .map(|e| &*e.record)
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
