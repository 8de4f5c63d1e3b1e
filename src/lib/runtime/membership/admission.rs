//! Which records are merged: under TLS only those their member signed, and
//! which caller a node heard of second-hand is charged to (weighted by the
//! members it hosts).

use std::sync::PoisonError;

use tracing::debug;

use super::{
    agent::{Shared, host_of},
    stats::MembershipStats,
};
use crate::core::membership::{
    candidates::Source,
    force::is_forced_leave,
    record::{MemberState, SharedRecord},
};

/// How often the members-per-host count behind per-address rates is redone.
const HOSTS_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

impl Shared {
    /// Members up at `host` (see [`MembershipHandler::members_at`]).
    pub(super) fn members_at(&self, host: &str) -> usize {
        let s = self;
        let mut hosts = s.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        let now = std::time::Instant::now();
        let stale = hosts
            .0
            .is_none_or(|t| now.saturating_duration_since(t) >= HOSTS_REFRESH);
        if stale {
            let counts = s.with_state(|st| {
                let mut m = std::collections::HashMap::<String, usize>::new();
                for r in st.records().filter(|r| r.state.is_up()) {
                    if let Some(h) = host_of(&r.address) {
                        *m.entry(h.to_owned()).or_default() += 1;
                    }
                }
                m
            });
            *hosts = (Some(now), counts);
        }
        hosts.1.get(host).copied().unwrap_or(0)
    }

    /// The records worth merging: under TLS, an alive or left record that would
    /// change what is known about another member must carry that member's
    /// signature and keep its name; the rest are dropped, counted and logged.
    /// Signatures are checked outside the state lock.
    pub(super) fn authentic(&self, records: Vec<SharedRecord>) -> Vec<SharedRecord> {
        let Some(auth) = &self.config.record_auth else {
            return records;
        };
        let known: Vec<Option<(bool, String)>> = {
            let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            records
                .iter()
                .map(|r| {
                    let needs = r.id != self.local_id
                        && matches!(r.state, MemberState::Alive | MemberState::Left)
                        // A force-leave is a claim, taken at the known version
                        // like a death; only the member's own records are signed.
                        && !is_forced_leave(r)
                        && st.get(&r.id).is_none_or(|k| r.supersedes(k));
                    needs.then(|| {
                        let name = st.get(&r.id).map(|k| k.name.clone());
                        (name.is_some(), name.unwrap_or_default())
                    })
                })
                .collect()
        };
        records
            .into_iter()
            .zip(known)
            .filter(|(r, known)| {
                let Some((listed, name)) = known else {
                    return true;
                };
                let verdict = if *listed && *name != r.name {
                    Err(format!(
                        "record of {} renames it from {name} to {}",
                        r.id, r.name
                    ))
                } else {
                    auth.verifier.verify_record(r)
                };
                verdict
                    .inspect_err(|why| {
                        MembershipStats::inc(&self.stats.records_unauthenticated);
                        debug!(reason = %why, "dropped a membership record");
                    })
                    .is_ok()
            })
            .map(|(r, _)| r)
            .collect()
    }

    /// `key` (a caller's identity or address) as a source of unknown nodes,
    /// weighted by the members it hosts.
    pub(super) fn source<'a>(&self, key: &'a str) -> Source<'a> {
        Source::caller(key, self.members_at(key))
    }
}
