//! Membership simulations on the in-memory network: deterministic (seeded RNGs,
//! paused clock, one thread) and fast. Round counts are printed for the record;
//! the assertions are about outcomes, with generous round budgets.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::sim::Sim;
use gsp::{
    core::membership::{
        config::MembershipConfig, events::EventKind, messages::Gossip, record::MemberState,
    },
    transport::membership::MembershipHandler,
};

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_hundred_nodes_join_through_one_seed_and_converge() {
    let mut sim = Sim::new(1, 100, MembershipConfig::for_test());
    sim.start_all();
    let rounds = sim.until(100, Sim::converged).await;
    println!("100-node join converged after {rounds:?} rounds");
    assert!(
        rounds.is_some(),
        "100 nodes did not converge within 100 rounds"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_crashed_node_is_marked_dead_by_all() {
    let mut sim = Sim::new(2, 20, MembershipConfig::for_test());
    sim.start_all();
    assert!(sim.until(60, Sim::converged).await.is_some());
    sim.crash(7).await;
    let rounds = sim
        .until(60, |s| s.all_see(7, Some(MemberState::Dead)))
        .await;
    println!("crash detected everywhere after {rounds:?} rounds");
    assert!(
        rounds.is_some(),
        "not every node marked the crashed node dead"
    );
    // Others were never suspected to death meanwhile.
    assert!(
        sim.events_of(EventKind::Dead)
            .iter()
            .all(|e| e.id == sim.nodes[7].id)
    );
    // After the node TTL it is removed everywhere.
    let ttl_rounds =
        u32::try_from(sim.config.node_ttl.as_millis() / sim.interval().as_millis()).unwrap();
    assert!(
        sim.until(ttl_rounds + 20, |s| s.all_see(7, None))
            .await
            .is_some()
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn no_false_positives_over_300_rounds_with_20_percent_loss() {
    let mut sim = Sim::new(3, 20, MembershipConfig::for_test());
    sim.start_all();
    assert!(sim.until(60, Sim::converged).await.is_some());
    sim.net.set_loss(0.2);
    sim.run(300).await;
    let dead = sim.events_of(EventKind::Dead);
    assert!(dead.is_empty(), "alive nodes were marked dead: {dead:?}");
    let suspicions = sim.events_of(EventKind::Suspect).len();
    println!("300 rounds at 20% loss: {suspicions} suspect events, all refuted");
    sim.net.set_loss(0.0);
    assert!(sim.until(30, Sim::converged).await.is_some());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_50_50_partition_heals_and_reconverges() {
    let mut sim = Sim::new(4, 20, MembershipConfig::for_test());
    sim.start_all();
    assert!(sim.until(60, Sim::converged).await.is_some());
    let (a, b): (Vec<String>, Vec<String>) = (0..20).map(common::sim::addr).partition(|x| {
        let last: usize = x
            .rsplit('.')
            .next()
            .unwrap()
            .split(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        last <= 10
    });
    sim.net.partition(&[a, b]);
    // Each side declares the other dead.
    let split = sim
        .until(100, |s| {
            (0..20).all(|i| {
                let v = s.view(i);
                v.values().filter(|st| **st == MemberState::Alive).count() == 10
            })
        })
        .await;
    println!("partition noticed after {split:?} rounds");
    assert!(split.is_some(), "the sides did not notice the partition");
    sim.net.heal();
    let healed = sim.until(200, Sim::converged).await;
    println!("partition healed after {healed:?} rounds");
    assert!(
        healed.is_some(),
        "the cluster did not reconverge after the partition healed"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_restarted_node_is_seen_alive_with_its_new_address() {
    let mut sim = Sim::new(5, 10, MembershipConfig::for_test());
    sim.start_all();
    assert!(sim.until(60, Sim::converged).await.is_some());
    sim.crash(4).await;
    assert!(
        sim.until(60, |s| s.all_see(4, Some(MemberState::Dead)))
            .await
            .is_some()
    );
    // Same id, new incarnation, new address.
    sim.nodes[4].addr = "10.9.9.9:6000".into();
    sim.start(4, 2, &[0]);
    let rounds = sim.until(60, Sim::converged).await;
    assert!(
        rounds.is_some(),
        "the restarted node was not seen alive everywhere"
    );
    let id = sim.nodes[4].id.clone();
    for i in sim.running() {
        let addr = sim.nodes[i]
            .agent
            .as_ref()
            .unwrap()
            .with_state(|s| s.get(&id).map(|r| r.address.clone()));
        assert_eq!(
            addr.as_deref(),
            Some("10.9.9.9:6000"),
            "node {i} has a stale address"
        );
    }
    assert!(sim.events_about(4, EventKind::AliveAgain) > 0);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_removed_node_does_not_come_back_from_stale_gossip() {
    let mut sim = Sim::new(6, 8, MembershipConfig::for_test());
    sim.start_all();
    assert!(sim.until(60, Sim::converged).await.is_some());
    let stale = sim.nodes[0]
        .agent
        .as_ref()
        .unwrap()
        .with_state(|s| s.get(&sim.nodes[3].id).cloned().unwrap());
    sim.crash(3).await;
    let ttl_rounds =
        u32::try_from(sim.config.node_ttl.as_millis() / sim.interval().as_millis()).unwrap();
    assert!(
        sim.until(ttl_rounds + 80, |s| s.all_see(3, None))
            .await
            .is_some()
    );
    // A lagging peer re-gossips the old alive record everywhere.
    for i in sim.running() {
        let agent = sim.nodes[i].agent.as_ref().unwrap();
        agent
            .on_gossip(
                Gossip {
                    from: sim.nodes[1].id.clone(),
                    domain: "default".into(),
                    updates: vec![stale.clone().into()],
                },
                None,
            )
            .unwrap();
    }
    sim.run(20).await;
    assert!(
        sim.all_see(3, None),
        "stale gossip resurrected a removed node"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_foreign_domain_node_is_never_merged() {
    let mut sim = Sim::new(7, 6, MembershipConfig::for_test());
    sim.nodes[5].domain = "other".into();
    sim.start_all();
    sim.run(40).await;
    for i in 0..5 {
        assert!(
            !sim.view(i).contains_key(&sim.nodes[5].id),
            "node {i} merged a foreign node"
        );
        assert_eq!(sim.view(i).len(), 5);
    }
    assert_eq!(sim.view(5).len(), 1, "the foreign node merged someone");
    let refused: u64 = (0..5)
        .map(|i| {
            let a = sim.nodes[i].agent.as_ref().unwrap();
            gsp::runtime::membership::stats::MembershipStats::get(&a.stats().refused_foreign_domain)
        })
        .sum();
    assert!(refused > 0, "refusals were not counted");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_partition_outlasting_the_node_ttl_heals_when_the_network_does() {
    for lone in [false, true] {
        let mut sim = Sim::new(8, 8, MembershipConfig::for_test());
        sim.start_all();
        assert!(sim.until(60, Sim::converged).await.is_some());
        // Either one node cut off alone, or two halves.
        let split = if lone { 7 } else { 4 };
        let side_a: Vec<String> = (0..split).map(|i| sim.nodes[i].addr.clone()).collect();
        let side_b: Vec<String> = (split..8).map(|i| sim.nodes[i].addr.clone()).collect();
        sim.net.partition(&[side_a, side_b]);
        // The node TTL (10 s in tests) passes: each side removes the other.
        sim.run(150).await;
        assert!(
            !sim.view(0).contains_key(&sim.nodes[7].id),
            "node 7 was not removed"
        );
        sim.net.heal();
        // Within the tombstone TTL (60 s = 300 rounds): waiting for tombstones to
        // expire does not count.
        let rounds = sim.until(150, Sim::converged).await;
        println!(
            "partition (lone node: {lone}) outlasting the node TTL healed after {rounds:?} rounds"
        );
        assert!(
            rounds.is_some(),
            "the two sides never merged again (lone node: {lone})"
        );
    }
}

/// Events of `kind` that nodes `observers` logged about nodes `subjects`.
fn events_between(
    sim: &Sim,
    observers: std::ops::Range<usize>,
    subjects: std::ops::Range<usize>,
    kind: EventKind,
) -> usize {
    observers
        .flat_map(|i| sim.nodes[i].seen.iter())
        .filter(|e| e.kind == kind && subjects.clone().any(|j| e.id == sim.nodes[j].id))
        .count()
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_healed_partition_kills_no_one_on_the_far_sides_word_and_stops_flapping() {
    // 3 of 8 cut off for 50 rounds (long enough for both sides to declare the
    // other dead, shorter than the node TTL), then healed.
    let mut sim = Sim::new(11, 8, MembershipConfig::for_test());
    sim.start_all();
    assert!(sim.until(60, Sim::converged).await.is_some());
    for n in &mut sim.nodes {
        n.seen.clear();
    }
    let side_a: Vec<String> = (0..5).map(|i| sim.nodes[i].addr.clone()).collect();
    let side_b: Vec<String> = (5..8).map(|i| sim.nodes[i].addr.clone()).collect();
    sim.net.partition(&[side_a, side_b]);
    sim.run(50).await;
    assert!(
        events_between(&sim, 0..5, 5..8, EventKind::Dead) > 0,
        "the partition was not noticed"
    );
    sim.net.heal();
    let rounds = sim.until(100, Sim::converged).await;
    println!("3-of-8 partition healed after {rounds:?} rounds");
    assert!(rounds.is_some(), "no convergence within 100 rounds");
    // The cut-off side declared the majority dead; none of those verdicts may
    // kill a majority node in a majority node's view once the links are back.
    assert_eq!(
        events_between(&sim, 0..5, 0..5, EventKind::Dead),
        0,
        "a node that was never cut off was declared dead by its own side"
    );
    for n in &mut sim.nodes {
        n.seen.clear();
    }
    sim.run(300).await;
    assert_eq!(
        events_between(&sim, 0..8, 0..8, EventKind::Suspect),
        0,
        "members flapped after convergence"
    );
}

/// A consumer that comes after the join (a node's `--on-event` handlers start
/// late in its start-up, after its seed may have answered) still gets it:
/// `events_from_start` holds every event since the agent started.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn events_from_the_start_include_the_joins_before_their_consumer_came() {
    let mut sim = Sim::new(5, 2, MembershipConfig::for_test());
    sim.start_all();
    assert!(sim.until(50, Sim::converged).await.is_some());
    let agent = sim.nodes[1].agent.clone().unwrap();
    let joins = |rx: &mut tokio::sync::broadcast::Receiver<_>| {
        let mut ids = Vec::new();
        while let Ok(gsp::core::membership::events::MembershipEvent { id, kind, .. }) =
            rx.try_recv()
        {
            if kind == EventKind::Joined {
                ids.push(id);
            }
        }
        ids
    };
    // Subscribed now, the seed's join is missed: what the node did before.
    assert!(joins(&mut agent.subscribe()).is_empty());
    let mut early = agent.events_from_start().expect("the first caller gets it");
    assert_eq!(joins(&mut early), [sim.nodes[0].id.clone()]);
    assert!(agent.events_from_start().is_none(), "taken once");
}

/// Log lines written while a test runs, for assertions.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A node whose member table is full says so: once at the first newcomer
/// turned away, then at most once a minute, however many come.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_full_member_table_is_said_once_a_minute_not_silently_or_per_newcomer() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let config = MembershipConfig {
        max_members: 16,
        ..MembershipConfig::for_test()
    };
    let mut sim = Sim::new(9, 30, config);
    sim.start_all();
    sim.run(200).await;
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines = text
        .lines()
        .filter(|l| l.contains("the member table is full"))
        .count();
    let refusing = sim
        .nodes
        .iter()
        .filter_map(|n| n.agent.as_ref())
        .filter(|a| a.with_state(|s| s.counters().refused_table_full) > 0)
        .count();
    assert!(refusing > 0, "no table filled up");
    // 200 rounds of 0.2 s: 40 s, within one minute: one line per node.
    assert_eq!(lines, refusing, "{text}");
}
