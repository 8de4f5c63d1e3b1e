//! Membership at scale, simulated: N agents on the in-memory network under a
//! paused clock. Every node starts at once, joining through node 0; the test
//! counts rounds until every node sees every node alive, then the protobuf
//! bytes each node sends and receives per round once idle.
//!
//! CI runs 300 nodes; `GSP_SIM_NODES=1000` runs more, and prints the figures to
//! compare across sizes. The target is a join within 2 log2 N rounds; measured
//! here (release) 2 rounds at 300 nodes and 4 at 1,000.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::sim::Sim;
use gsp::core::membership::config::MembershipConfig;

fn nodes() -> usize {
    std::env::var("GSP_SIM_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_large_cluster_joins_in_logarithmic_rounds_with_flat_per_node_traffic() {
    let n = nodes();
    let config = MembershipConfig {
        max_members: n + 16,
        ..MembershipConfig::for_test()
    };
    let mut sim = Sim::new(42, n, config);
    sim.start_all();
    let limit = 40 + 4 * n.ilog2();
    let rounds = sim
        .until(limit, Sim::converged)
        .await
        .unwrap_or_else(|| panic!("{n} nodes did not converge within {limit} rounds"));
    // Idle traffic: bytes per node per round over 20 rounds.
    sim.run(10).await;
    let total = |sim: &Sim| -> u64 {
        sim.nodes
            .iter()
            .map(|x| {
                let (s, r) = sim.net.bytes(&x.addr);
                s + r
            })
            .sum()
    };
    let before = total(&sim);
    sim.run(20).await;
    let per_node_round = (total(&sim) - before) as f64 / n as f64 / 20.0;
    eprintln!(
        "membership sim: {n} nodes joined in {rounds} rounds (2 log2 N = {}); idle {per_node_round:.0} bytes per node per round",
        2 * n.ilog2()
    );
    let bound = 2 * n.ilog2();
    assert!(
        rounds <= bound,
        "{n} nodes took {rounds} rounds to join, over 2 log2 N = {bound}"
    );
    // SWIM's per-node cost does not grow with the cluster: a probe, its ack,
    // piggybacked updates, and an anti-entropy digest now and then.
    assert!(
        per_node_round < 2_000.0,
        "{per_node_round:.0} bytes per node per round"
    );
}
