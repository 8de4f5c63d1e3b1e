//! Multi-hop resource queries: the messages, and merging partial answers.

use std::{collections::BTreeMap, time::Duration};

use super::{matcher::sort_for, request::ResourceRequest};
use crate::{ids::NodeId, membership::record::MemberRecord};

/// Time a query gets when its asker sets none (iarnet's
/// `query_timeout_seconds` default).
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Most hops a query may travel; larger requests are capped.
pub const MAX_HOPS_CAP: u32 = 8;

/// A query as it travels.
#[derive(Debug, Clone)]
pub struct Query {
    /// Unique id, the same on every hop (duplicates are answered empty).
    pub id: String,
    /// The node that sent it on this hop.
    pub from: NodeId,
    /// That node's address.
    pub from_address: String,
    /// Its domain.
    pub domain: String,
    /// What is asked for.
    pub request: ResourceRequest,
    /// Hops the query may travel in all.
    pub max_hops: u32,
    /// Hops travelled before reaching this node.
    pub current_hops: u32,
    /// Time left to answer.
    pub timeout: Duration,
}

/// One node's answer, covering everything it reached.
#[derive(Debug, Clone, Default)]
pub struct QueryAnswer {
    /// The answering node.
    pub responder: Option<NodeId>,
    /// Matching nodes, best first, at most one record per node.
    pub nodes: Vec<MemberRecord>,
    /// The deepest hop whose answer contributed a node (0: found locally).
    pub hops_used: u32,
}

/// Merges answers to `req`: one record per node, the newest version wins;
/// best first (the offer order of [`super::matcher`]).
pub fn merge(
    parts: impl IntoIterator<Item = (u32, Vec<MemberRecord>)>,
    req: &ResourceRequest,
) -> (Vec<MemberRecord>, u32) {
    let mut by_id: BTreeMap<NodeId, (u32, MemberRecord)> = BTreeMap::new();
    for (hops, records) in parts {
        for r in records {
            match by_id.get(&r.id) {
                Some((_, known)) if !r.supersedes(known) => {}
                _ => {
                    by_id.insert(r.id.clone(), (hops, r));
                }
            }
        }
    }
    let hops_used = by_id.values().map(|(h, _)| *h).max().unwrap_or(0);
    let mut nodes: Vec<MemberRecord> = by_id.into_values().map(|(_, r)| r).collect();
    sort_for(&mut nodes, req);
    (nodes, hops_used)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, counter: u64) -> MemberRecord {
        crate::membership::record::testing::record(
            id,
            counter,
            crate::membership::record::MemberState::Alive,
        )
    }

    #[test]
    fn merge_keeps_the_newest_record_per_node_and_counts_hops() {
        let (nodes, hops) = merge(
            [
                (0, vec![rec("a", 1)]),
                (2, vec![rec("a", 3), rec("b", 1)]),
                (1, vec![rec("a", 2)]),
            ],
            &ResourceRequest::default(),
        );
        assert_eq!(nodes.len(), 2);
        assert_eq!(
            nodes
                .iter()
                .find(|r| r.id.as_str() == "a")
                .unwrap()
                .version
                .counter,
            3
        );
        assert_eq!(hops, 2);
        assert_eq!(merge([], &ResourceRequest::default()).1, 0);
    }
}
