//! A liar on the membership plane, over real gRPC on 127.0.0.1:0: forged deaths
//! and leaves at absurd and plausible versions (once, and as a flood), a forged
//! record of the victim itself, thousands of made-up members in one message,
//! and an impostor that answers probes as any member it is asked about. Each
//! was an attack that worked; each is now a regression test of what users see.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
#![allow(
    clippy::print_stderr,
    reason = "the tests report their figures on stderr"
)]

mod common;

use std::time::{Duration, Instant};

use gsp::{
    core::membership::record::{MAX_COUNTER, MemberRecord, MemberState},
    runtime::node::NodeHandle,
    transport::{
        membership::convert::record_to_pb,
        pb::{
            discovery::{self as dpb, discovery_service_client::DiscoveryServiceClient},
            membership::v1 as mpb,
        },
    },
};

async fn cluster(n: usize) -> Vec<NodeHandle> {
    let seed = common::member_node("n0", vec![], "default").await;
    let mut nodes = vec![];
    for i in 1..n {
        let addr = seed.advertise().to_owned();
        nodes.push(common::member_node(&format!("n{i}"), vec![addr], "default").await);
    }
    nodes.insert(0, seed);
    let converged = common::eventually(Duration::from_secs(20), || {
        nodes.iter().all(|x| alive_count(x) == n)
    })
    .await;
    assert!(converged, "the cluster did not converge");
    nodes
}

fn alive_count(n: &NodeHandle) -> usize {
    n.membership().with_state(|s| {
        s.records()
            .filter(|r| r.state == MemberState::Alive)
            .count()
    })
}

fn record_of(at: &NodeHandle, name: &str) -> Option<MemberRecord> {
    at.membership()
        .with_state(|s| s.records().find(|r| r.name == name).cloned())
}

/// Sends `records` to the node at `addr` as an unauthenticated stranger would:
/// one iarnet GossipNodeInfo from a made-up sender.
async fn inject(addr: &str, records: Vec<dpb::PeerNodeInfo>) {
    try_inject(addr, records)
        .await
        .expect("the forged message is well-formed and accepted");
}

/// [`inject`], saying whether the node took it.
async fn try_inject(addr: &str, records: Vec<dpb::PeerNodeInfo>) -> Result<(), tonic::Status> {
    let mut c = DiscoveryServiceClient::connect(format!("http://{addr}"))
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?
        .max_encoding_message_size(16 << 20);
    c.gossip_node_info(dpb::NodeInfoGossipMessage {
        sender_node_id: "liar".into(),
        sender_address: "127.0.0.1:9".into(),
        sender_domain_id: "default".into(),
        nodes: records,
        message_id: "forged".into(),
        ttl: 5,
        max_hops: 5,
        ..Default::default()
    })
    .await
    .map(|_| ())
}

/// A victim declared dead by a forger stays (or comes back) alive on every node
/// within a few rounds, and stays so.
async fn victim_survives(nodes: &[NodeHandle], victim: &str) {
    // Let the forgery spread, then require the truth everywhere.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let healed = common::eventually(Duration::from_secs(5), || {
        nodes
            .iter()
            .all(|n| record_of(n, victim).is_some_and(|r| r.state == MemberState::Alive))
    })
    .await;
    assert!(healed, "{victim} was not alive again on every node");
    tokio::time::sleep(Duration::from_secs(1)).await;
    for n in nodes {
        let r = record_of(n, victim).unwrap();
        assert_eq!(r.state, MemberState::Alive, "{victim} on {}", n.advertise());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_death_at_an_absurd_version_does_not_evict_the_victim() {
    let nodes = cluster(3).await;
    let victim = record_of(&nodes[0], "n2").unwrap();
    let mut forged = victim.clone();
    forged.state = MemberState::Dead;
    forged.version.counter = MAX_COUNTER;
    inject(nodes[0].advertise(), vec![record_to_pb(&forged, 1)]).await;
    inject(nodes[1].advertise(), vec![record_to_pb(&forged, 1)]).await;
    victim_survives(&nodes, "n2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_death_at_a_plausible_version_is_refuted() {
    let nodes = cluster(3).await;
    let victim = record_of(&nodes[0], "n2").unwrap();
    let mut forged = victim.clone();
    forged.state = MemberState::Dead;
    forged.version.counter += 1;
    inject(nodes[0].advertise(), vec![record_to_pb(&forged, 1)]).await;
    victim_survives(&nodes, "n2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_record_of_the_victim_itself_is_refuted_past_the_counter_cap() {
    let nodes = cluster(3).await;
    let victim = record_of(&nodes[0], "n2").unwrap();
    let mut forged = victim.clone();
    forged.version.counter = MAX_COUNTER;
    forged.address = "127.0.0.1:9".into();
    inject(nodes[0].advertise(), vec![record_to_pb(&forged, 1)]).await;
    victim_survives(&nodes, "n2").await;
    let restored = common::eventually(Duration::from_secs(5), || {
        nodes
            .iter()
            .all(|n| record_of(n, "n2").unwrap().address == victim.address)
    })
    .await;
    assert!(restored, "the victim's address was not restored everywhere");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_thousand_made_up_members_are_never_listed_and_a_crash_is_still_seen() {
    let mut nodes = cluster(3).await;
    let template = record_of(&nodes[0], "n1").unwrap();
    let fakes: Vec<dpb::PeerNodeInfo> = (0..4000)
        .map(|i| {
            let mut r = template.clone();
            r.id = gsp::core::ids::NodeId::parse(&format!("fake-{i}")).unwrap();
            r.name = format!("fake-{i}");
            // Addresses where nothing answers, on this machine only.
            r.address = format!("127.0.0.1:{}", 1 + i % 5);
            record_to_pb(&r, 1)
        })
        .collect();
    inject(nodes[0].advertise(), fakes).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for n in &nodes {
        assert_eq!(
            n.membership().with_state(|s| s.len()),
            3,
            "made-up members were listed"
        );
        assert_eq!(n.membership().with_state(|s| s.local_health()), 0);
    }
    let counters = nodes[0].membership().with_state(|s| s.counters().clone());
    let per_source = nodes[0]
        .membership()
        .with_state(|s| s.config().max_candidates_per_source);
    assert!(
        counters.candidates_dropped >= 4000 - per_source as u64,
        "one source may have only {per_source} unknown nodes waiting: {counters:?}"
    );
    // A real node joining now is still admitted everywhere.
    let late = common::member_node("late", vec![nodes[0].advertise().to_owned()], "default").await;
    let admitted = common::eventually(Duration::from_secs(10), || {
        nodes
            .iter()
            .all(|n| record_of(n, "late").is_some_and(|r| r.state == MemberState::Alive))
    })
    .await;
    assert!(
        admitted,
        "a real joiner was crowded out by the made-up members"
    );
    drop(late);
    // A real crash (no leave announced) is still detected by the survivors.
    drop(nodes.pop());
    let seen = common::eventually(Duration::from_secs(10), || {
        nodes
            .iter()
            .all(|n| record_of(n, "n2").is_some_and(|r| r.state == MemberState::Dead))
    })
    .await;
    assert!(seen, "the crash was not detected");
}

/// How the victim was listed while a forger sent claims: samples taken, and
/// samples in which some node listed it other than alive.
#[derive(Debug, Default)]
struct Listing {
    samples: u32,
    down: u32,
    longest_down: Duration,
}

/// A stranger sends `state` claims about n2 every 20 ms for `secs`, to n0 and
/// n1 in turn, each at the victim's current version, one past it, or the cap
/// (re-reading the victim's record as an attacker would), while every node's
/// listing of n2 is sampled every 5 ms. `GSP_FORGERY_SECS` runs it longer
/// (the figures: 60).
async fn claims_flood(state: MemberState, secs: u64) -> Listing {
    let secs = std::env::var("GSP_FORGERY_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(secs);
    let nodes = cluster(3).await;
    let addrs: Vec<String> = nodes[..2]
        .iter()
        .map(|n| n.advertise().to_owned())
        .collect();
    let end = Instant::now() + Duration::from_secs(secs);
    let victim_at = |n: &NodeHandle| record_of(n, "n2").unwrap();
    // The attacker re-reads the victim's record before each claim (any
    // member's node list shows it); here, from n0's table.
    let view = nodes[0].membership().clone();
    let forger = tokio::spawn({
        let addrs = addrs.clone();
        async move {
            let mut clients = Vec::new();
            for a in &addrs {
                clients.push(
                    DiscoveryServiceClient::connect(format!("http://{a}"))
                        .await
                        .unwrap(),
                );
            }
            let mut i = 0u64;
            while Instant::now() < end {
                let victim = view
                    .with_state(|s| s.records().find(|r| r.name == "n2").cloned())
                    .unwrap();
                let mut forged = victim.clone();
                forged.state = state;
                forged.suspected_by = (state == MemberState::Suspect)
                    .then(|| gsp::core::ids::NodeId::parse("liar").unwrap());
                forged.version.counter = match i % 3 {
                    0 => victim.version.counter,
                    1 => victim.version.counter + 1,
                    _ => MAX_COUNTER,
                };
                let c = &mut clients[usize::try_from(i % 2).unwrap()];
                let _ = c
                    .gossip_node_info(dpb::NodeInfoGossipMessage {
                        sender_node_id: "liar".into(),
                        sender_address: "127.0.0.1:9".into(),
                        sender_domain_id: "default".into(),
                        nodes: vec![record_to_pb(&forged, 1)],
                        message_id: format!("forged-{i}"),
                        ttl: 5,
                        max_hops: 5,
                        ..Default::default()
                    })
                    .await;
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let mut listing = Listing::default();
    let mut down_since: Option<Instant> = None;
    while Instant::now() < end {
        let down = nodes
            .iter()
            .any(|n| victim_at(n).state != MemberState::Alive);
        listing.samples += 1;
        if down {
            listing.down += 1;
            let since = *down_since.get_or_insert_with(Instant::now);
            listing.longest_down = listing.longest_down.max(since.elapsed());
        } else {
            down_since = None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    forger.await.unwrap();
    listing
}

fn assert_never_down(state: MemberState, l: &Listing) {
    let share = f64::from(l.down) / f64::from(l.samples.max(1));
    eprintln!(
        "forged {state} claims every 20 ms: victim listed down in {} of {} samples ({:.2}%), longest {:?}",
        l.down,
        l.samples,
        share * 100.0,
        l.longest_down
    );
    assert!(
        share < 0.02,
        "a stranger's {state} claims listed the victim down in {} of {} samples ({:.1}%), longest {:?}",
        l.down,
        l.samples,
        share * 100.0,
        l.longest_down
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_forged_leaves_never_lists_the_victim_down() {
    let l = claims_flood(MemberState::Left, 3).await;
    assert_never_down(MemberState::Left, &l);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_forged_deaths_never_lists_the_victim_down() {
    let l = claims_flood(MemberState::Dead, 3).await;
    assert_never_down(MemberState::Dead, &l);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_forged_suspicions_never_lists_the_victim_down() {
    let l = claims_flood(MemberState::Suspect, 3).await;
    assert_never_down(MemberState::Suspect, &l);
}

/// A host that answers every probe as whatever member it is asked about
/// (`gsp.membership.v1.Ping` acked as the target), so anything announced at
/// its address passes a naive verification.
#[derive(Clone)]
struct Impostor;

#[tonic::async_trait]
impl mpb::membership_server::Membership for Impostor {
    async fn ping(
        &self,
        request: tonic::Request<mpb::PingRequest>,
    ) -> Result<tonic::Response<mpb::PingResponse>, tonic::Status> {
        let r = request.into_inner();
        Ok(tonic::Response::new(mpb::PingResponse {
            from_node_id: r.target_node_id,
            seq: r.seq,
            ack: true,
            updates: vec![],
        }))
    }

    async fn ping_req(
        &self,
        request: tonic::Request<mpb::IndirectPingRequest>,
    ) -> Result<tonic::Response<mpb::PingResponse>, tonic::Status> {
        let r = request.into_inner();
        Ok(tonic::Response::new(mpb::PingResponse {
            from_node_id: "impostor".into(),
            seq: r.seq,
            ack: false,
            updates: vec![],
        }))
    }

    async fn gossip(
        &self,
        _: tonic::Request<mpb::GossipRequest>,
    ) -> Result<tonic::Response<mpb::GossipResponse>, tonic::Status> {
        Ok(tonic::Response::new(mpb::GossipResponse {}))
    }
}

async fn impostor() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(mpb::membership_server::MembershipServer::new(Impostor))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr
}

fn fakes_listed(n: &NodeHandle) -> usize {
    n.membership()
        .with_state(|s| s.records().filter(|r| r.name.starts_with("fake-")).count())
}

/// How long until every node in `nodes` lists `name` dead.
async fn detection(nodes: &[NodeHandle], name: &str, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    common::eventually(within, || {
        nodes
            .iter()
            .all(|n| record_of(n, name).is_some_and(|r| r.state == MemberState::Dead))
    })
    .await
    .then(|| start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impostor_answering_probes_as_anyone_is_one_member_and_a_crash_is_still_seen() {
    let mut nodes = cluster(4).await;
    // Detection in the quiet cluster first, for comparison.
    drop(nodes.pop());
    let quiet = detection(&nodes, "n3", Duration::from_secs(20))
        .await
        .expect("the quiet crash was not detected");
    let imp = impostor().await;
    let template = record_of(&nodes[0], "n1").unwrap();
    // `GSP_IMPOSTORS` announces more (the figures: 4000).
    let count = std::env::var("GSP_IMPOSTORS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500);
    let fakes: Vec<dpb::PeerNodeInfo> = (0..count)
        .map(|i| {
            let mut r = template.clone();
            r.id = gsp::core::ids::NodeId::parse(&format!("fake-{i}")).unwrap();
            r.name = format!("fake-{i}");
            r.address.clone_from(&imp);
            record_to_pb(&r, 1)
        })
        .collect();
    // The impostor announces its made-up members to every node, again and
    // again, while a real node is killed.
    let targets: Vec<String> = nodes.iter().map(|n| n.advertise().to_owned()).collect();
    let flood = tokio::spawn(async move {
        for _ in 0..60 {
            for t in &targets {
                // The node killed below refuses from then on.
                let _ = try_inject(t, fakes.clone()).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    for n in &nodes {
        assert!(
            fakes_listed(n) <= 1,
            "{} lists {} made-up members at one address",
            n.advertise(),
            fakes_listed(n)
        );
    }
    drop(nodes.pop());
    let flooded = detection(&nodes, "n2", Duration::from_secs(20)).await;
    flood.abort();
    let flooded = flooded.expect("the crash during the flood was not detected");
    for n in &nodes {
        assert!(fakes_listed(n) <= 1);
        let c = n.membership().with_state(|s| s.counters().clone());
        assert!(c.refused_address_taken > 0, "{c:?}");
    }
    // Timings are for people (the bench measures them): shown on failure
    // above, and here with --nocapture.
    eprintln!("crash detected in {quiet:?} quiet, {flooded:?} under the flood");
}
