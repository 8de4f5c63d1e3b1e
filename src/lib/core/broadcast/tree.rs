//! Dissemination trees of a swarm broadcast, pure.
//!
//! A large payload is cut into pieces; piece `p` travels down tree `p % k`
//! (SplitStream's stripes). A tree travels with its pieces as source routes: a
//! node receives, with each piece, the ordered list of the nodes below it, and
//! [`children`] splits that list the same way on every node, so no node needs
//! the same membership view as the origin. The shape is a complete `k`-ary
//! tree, which has the fewest forwarding nodes; [`plan`] places nodes so each
//! forwards in about one tree only: every node then uploads about one copy of
//! the payload, the origin included, whatever the cluster size.

use rand::{Rng, seq::SliceRandom as _};

use crate::ids::NodeId;

/// How many descendants each child of a node with `n` descendants takes, in a
/// complete `k`-ary tree filled level by level, left to right. Empty children
/// are left out. `k` below 2 is taken as 2.
pub fn child_sizes(n: usize, k: usize) -> Vec<usize> {
    let k = k.max(2);
    if n == 0 {
        return Vec::new();
    }
    // Full levels below the root: capacity of a full subtree of height h under
    // each child is (k^h - 1) / (k - 1).
    let total = n + 1;
    let mut full = 1usize; // nodes in a full tree of the current height
    let mut level = 1usize; // nodes on the last full level
    loop {
        let next_level = level.saturating_mul(k);
        let next_full = full.saturating_add(next_level);
        if next_full > total {
            break;
        }
        full = next_full;
        level = next_level;
    }
    // Each child's share: its full part (one k-th of the full levels below the
    // root) plus its share of the partial last level, filled left to right.
    let per_child_full = (full - 1) / k;
    let last = total - full;
    let per_child_last = level; // the last level has k * level slots, level per child
    (0..k)
        .map(|j| {
            let extra = last.saturating_sub(j * per_child_last).min(per_child_last);
            per_child_full + extra
        })
        .filter(|&size| size > 0)
        .map(|size| size - 1)
        .collect()
}

/// Splits the nodes below a node into its children and the nodes below each of
/// them. `subtree` is in layout order: each child is followed by its own
/// descendants.
pub fn children(subtree: &[NodeId], k: usize) -> Vec<(NodeId, Vec<NodeId>)> {
    let mut out = Vec::new();
    let mut at = 0;
    for size in child_sizes(subtree.len(), k) {
        let Some(head) = subtree.get(at) else { break };
        let end = (at + 1 + size).min(subtree.len());
        out.push((head.clone(), subtree[at + 1..end].to_vec()));
        at = end;
    }
    out
}

/// For each position of the layout of a tree of `n` nodes (position 0 is its
/// root), how many children that position has.
pub fn layout_fanouts(n: usize, k: usize) -> Vec<usize> {
    let mut out = vec![0; n];
    if n > 0 {
        fill_fanouts(&mut out, 0, n - 1, k);
    }
    out
}

fn fill_fanouts(out: &mut [usize], at: usize, below: usize, k: usize) {
    let sizes = child_sizes(below, k);
    out[at] = sizes.len();
    let mut child = at + 1;
    for size in sizes {
        fill_fanouts(out, child, size, k);
        child += 1 + size;
    }
}

/// Lays out `trees` trees over `peers` (the origin not included): in each, the
/// first node is the root the origin sends to and the rest is the root's
/// subtree in layout order. Forwarding duty is spread so the busiest node
/// forwards as few pieces as possible: each tree's forwarding positions go, the
/// busiest first, to the least loaded nodes not yet used in that tree.
pub fn plan<R: Rng>(peers: &[NodeId], trees: usize, k: usize, rng: &mut R) -> Vec<Vec<NodeId>> {
    let mut order: Vec<usize> = (0..peers.len()).collect();
    order.shuffle(rng);
    let fanouts = layout_fanouts(peers.len(), k);
    let mut forwarding: Vec<usize> = (0..fanouts.len()).filter(|&p| fanouts[p] > 0).collect();
    forwarding.sort_by_key(|&p| std::cmp::Reverse(fanouts[p]));
    let mut load = vec![0usize; peers.len()];
    (0..trees)
        .map(|_| {
            let mut slot: Vec<Option<usize>> = vec![None; peers.len()];
            let mut used = vec![false; peers.len()];
            for &pos in &forwarding {
                // Least loaded, ties broken by the shuffled order (stable sort).
                let pick = order
                    .iter()
                    .copied()
                    .filter(|&n| !used[n])
                    .min_by_key(|&n| load[n]);
                if let Some(n) = pick {
                    used[n] = true;
                    load[n] += fanouts[pos];
                    slot[pos] = Some(n);
                }
            }
            // Leaves: the rest, in an order rotated per tree so a node's parents
            // differ from tree to tree.
            let mut rest = order.iter().copied().filter(|&n| !used[n]);
            slot.into_iter()
                .filter_map(|s| s.or_else(|| rest.next()))
                .map(|n| peers[n].clone())
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use rand::{SeedableRng as _, rngs::StdRng};

    use super::*;

    fn ids(n: usize) -> Vec<NodeId> {
        (0..n)
            .map(|i| NodeId::parse(&format!("n{i}")).unwrap())
            .collect()
    }

    /// Every node reached by walking the tree from its root, with its parent.
    fn walk(layout: &[NodeId], k: usize) -> Vec<(NodeId, Option<NodeId>, usize)> {
        let mut out = vec![(layout[0].clone(), None, 0)];
        let mut stack = vec![(layout[0].clone(), layout[1..].to_vec(), 0)];
        while let Some((node, below, depth)) = stack.pop() {
            for (c, sub) in children(&below, k) {
                out.push((c.clone(), Some(node.clone()), depth + 1));
                stack.push((c, sub, depth + 1));
            }
        }
        out
    }

    #[test]
    fn child_sizes_fill_a_complete_tree() {
        assert_eq!(child_sizes(0, 4), Vec::<usize>::new());
        assert_eq!(child_sizes(3, 4), vec![0, 0, 0]);
        assert_eq!(child_sizes(4, 4), vec![0, 0, 0, 0]);
        // 14 below the root, k = 4: four children, then 10 grandchildren
        // filled left to right, 4 + 4 + 2 + 0.
        assert_eq!(child_sizes(14, 4), vec![4, 4, 2, 0]);
        assert_eq!(child_sizes(20, 4), vec![4, 4, 4, 4]);
        assert_eq!(child_sizes(21, 4), vec![5, 4, 4, 4]);
        for n in 0..2000 {
            for k in 2..6 {
                let s = child_sizes(n, k);
                assert!(s.len() <= k);
                assert_eq!(s.iter().map(|x| x + 1).sum::<usize>(), n, "n={n} k={k}");
            }
        }
    }

    #[test]
    fn every_node_is_reached_once_within_log_depth() {
        let mut rng = StdRng::seed_from_u64(1);
        for n in [1, 2, 5, 15, 31, 100, 1000] {
            for k in [2, 4, 8] {
                let peers = ids(n);
                for layout in plan(&peers, k, k, &mut rng) {
                    let reached = walk(&layout, k);
                    assert_eq!(reached.len(), n);
                    let distinct: HashSet<_> = reached.iter().map(|(id, _, _)| id).collect();
                    assert_eq!(distinct.len(), n, "n={n} k={k}: a node reached twice");
                    let depth = reached.iter().map(|r| r.2).max().unwrap_or(0);
                    // Smallest d with k^d >= n, plus one.
                    let bound = (0..32u32).find(|d| k.pow(*d) >= n).unwrap() as usize + 1;
                    assert!(depth <= bound, "n={n} k={k}: depth {depth} > {bound}");
                }
            }
        }
    }

    #[test]
    fn forwarding_is_spread_so_no_node_uploads_much_more_than_one_copy() {
        let mut rng = StdRng::seed_from_u64(7);
        for (n, k) in [(15, 4), (31, 4), (100, 4), (1000, 4), (999, 8), (50, 2)] {
            let peers = ids(n);
            let layouts = plan(&peers, k, k, &mut rng);
            // Pieces forwarded per piece of each tree: children in that tree.
            let mut load: HashMap<NodeId, usize> = HashMap::new();
            for layout in &layouts {
                for (_, parent, _) in walk(layout, k) {
                    if let Some(p) = parent {
                        *load.entry(p).or_default() += 1;
                    }
                }
            }
            // One copy of the payload is k pieces-per-tree; the most any node
            // forwards is within one fanout of that.
            let max = load.values().copied().max().unwrap_or(0);
            assert!(
                max <= 2 * k,
                "n={n} k={k}: a node forwards {max} > {}",
                2 * k
            );
            let total: usize = load.values().sum();
            assert_eq!(total, k * (n - 1), "each tree has n - 1 edges");
        }
    }
}
