//! Swarm broadcast at 1,000 nodes, simulated over the pure broadcast core with
//! a per-node link model (see `gsp::bench::swarm_sim`): every live node
//! delivers once and intact, the origin uploads about one copy, and the last
//! node finishes in about the time one node needs to download the payload.
//!
//! CI runs 8 MiB; `GSP_SIM_FULL=1` runs the 64 MiB case of the issue (about a
//! minute here: each node's copy is checksummed).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::time::Duration;

use gsp::bench::swarm_sim::{SimConfig, SimReport, run};

fn payload_bytes() -> u64 {
    if std::env::var_os("GSP_SIM_FULL").is_some_and(|v| v == "1") {
        64 << 20
    } else {
        8 << 20
    }
}

/// The bound: 2 x S/R + 20 pieces' time + hops of latency, plus
/// `detect` for finding out that members are dead.
fn assert_fast(r: &SimReport, cfg: &SimConfig, piece: u64, detect: Duration) {
    let piece_time = Duration::from_secs_f64(piece as f64 / cfg.rate);
    let hops = usize::BITS - cfg.nodes.leading_zeros(); // ceil(log2(n)) or one more
    let bound = 2 * r.floor + 20 * piece_time + cfg.latency * 2 * hops + detect;
    assert!(
        r.completion <= bound,
        "completion {:?} over {bound:?} (floor {:?}): {r:?}",
        r.completion,
        r.floor
    );
}

fn assert_exactly_once(r: &SimReport) {
    assert_eq!(r.delivered, r.live, "not every live node delivered: {r:?}");
    assert_eq!(r.extra_deliveries, 0, "a node delivered twice: {r:?}");
    assert_eq!(
        r.corrupt_deliveries, 0,
        "a node delivered a wrong payload: {r:?}"
    );
    assert!(r.converged, "the origin did not see every receipt: {r:?}");
}

#[test]
fn a_thousand_nodes_get_the_payload_once_at_about_one_download_time() {
    let cfg = SimConfig {
        nodes: 1000,
        payload_bytes: payload_bytes(),
        rate: 1.25e8, // 1 Gbit/s each way
        ..SimConfig::default()
    };
    let r = run(&cfg);
    eprintln!("{r:?}");
    assert_exactly_once(&r);
    assert!(r.pieces > 1, "not sent as a swarm: {r:?}");
    let s = cfg.payload_bytes;
    let fanout = cfg.broadcast.swarm_fanout as u64;
    assert!(
        r.origin_bytes <= (fanout + 1) * s,
        "origin uploaded {} bytes for a {s}-byte payload",
        r.origin_bytes
    );
    assert!(r.copy_ratio <= 1.05, "copy ratio {}", r.copy_ratio);
    assert!(
        r.max_node_bytes <= 2 * s + s / 2,
        "a node uploaded {} bytes",
        r.max_node_bytes
    );
    assert_fast(&r, &cfg, cfg.broadcast.piece_bytes, Duration::ZERO);
}

#[test]
fn dead_members_are_routed_around_and_everyone_else_delivers_once() {
    let cfg = SimConfig {
        nodes: 1000,
        payload_bytes: 8 << 20,
        rate: 1.25e8,
        // 5% of the cluster died just before the send, still listed alive.
        dead: (1..1000).step_by(20).collect(),
        ..SimConfig::default()
    };
    let r = run(&cfg);
    eprintln!("{r:?}");
    assert_eq!(r.live, 1000 - 50);
    assert_eq!(r.delivered, r.live, "a live node missed out: {r:?}");
    assert_eq!(r.extra_deliveries, 0);
    assert_eq!(r.corrupt_deliveries, 0);
    let s = cfg.payload_bytes;
    assert!(r.origin_bytes <= (cfg.broadcast.swarm_fanout as u64 + 1) * s);
    assert!(r.copy_ratio <= 1.05, "copy ratio {}", r.copy_ratio);
    // A dead node on a piece's path costs one failed send; two on one path
    // (parent and child) cost two.
    assert_fast(&r, &cfg, cfg.broadcast.piece_bytes, 2 * cfg.fail_after);
}

#[test]
fn the_swarm_beats_the_star_by_the_cluster_size() {
    let swarm = SimConfig {
        nodes: 100,
        payload_bytes: 4 << 20,
        rate: 1.25e8,
        ..SimConfig::default()
    };
    let mut star = swarm.clone();
    star.broadcast.swarm_min_bytes = u64::MAX;
    let (a, b) = (run(&swarm), run(&star));
    assert_exactly_once(&a);
    assert_exactly_once(&b);
    assert_eq!(b.pieces, 1);
    // The star's origin sends 99 copies, and one more per digest it sent
    // while its copies were still on their way (its uplink needs 3.4 s for
    // them, a digest leaves every 2 s, and a node told by the origin that it
    // holds a message pulls it at once); the swarm's about one.
    let digests = b.completion.as_secs() / 2;
    assert!(
        (99 * swarm.payload_bytes..=(99 + digests) * swarm.payload_bytes).contains(&b.origin_bytes),
        "star origin sent {} bytes in {:?}",
        b.origin_bytes,
        b.completion
    );
    assert!(a.origin_bytes <= 2 * swarm.payload_bytes);
    assert!(
        a.completion * 20 < b.completion,
        "swarm {:?} vs star {:?}",
        a.completion,
        b.completion
    );
}

/// The netns bench's case in simulation: 16 MiB to 10 nodes at 100 Mbit/s,
/// one node killed half a second in, each node in turn (every one relays in
/// some tree). The others deliver once, intact; the nodes below the dead one
/// fetch only the pieces it had not passed on. The model is pessimistic about
/// a dead relay's cost: a FIFO uplink keeps the time its transfers to the
/// dead node took, where a real link's share goes to the other connections
/// at once (`scripts/bench-broadcast-netns.sh` with `GSP_BENCH_KILL` measures
/// the real thing). Pulling the whole payload again instead took up to 7.4
/// times the undisturbed time here.
#[test]
fn a_relay_killed_mid_swarm_costs_its_subtree_only_the_pieces_it_held() {
    let base = SimConfig {
        nodes: 10,
        payload_bytes: 16 << 20,
        rate: 12.5e6,
        latency: Duration::from_micros(100),
        broadcast: gsp::core::broadcast::config::BroadcastConfig {
            store_bytes: 64 << 20,
            ..gsp::core::broadcast::config::BroadcastConfig::default()
        },
        limit: Duration::from_secs(60),
        ..SimConfig::default()
    };
    let calm = run(&base);
    assert_exactly_once(&calm);
    let calm_s = calm.completion.as_secs_f64();
    let mut times = Vec::new();
    for victim in 1..base.nodes {
        let cfg = SimConfig {
            kills: vec![(victim, Duration::from_millis(500))],
            ..base.clone()
        };
        let r = run(&cfg);
        assert_eq!(r.live, base.nodes - 1);
        assert_eq!(r.delivered, r.live, "node {victim} killed: {r:?}");
        assert_eq!(r.extra_deliveries, 0);
        assert_eq!(r.corrupt_deliveries, 0);
        eprintln!(
            "killed {victim}: {:?} (undisturbed {:?})",
            r.completion, calm.completion
        );
        times.push(r.completion.as_secs_f64() / calm_s);
    }
    let worst = times.iter().copied().fold(0.0, f64::max);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    assert!(
        mean <= 1.5,
        "{mean:.2} times the undisturbed time on average: {times:?}"
    );
    assert!(
        worst <= 2.25,
        "{worst:.2} times the undisturbed time at worst: {times:?}"
    );
}
