//! Multi-hop resource queries on the in-memory network with frozen partial views,
//! and the change-driven publication of resources. Deterministic: paused clock.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::{sync::Arc, time::Duration};

use gsp::{
    core::{
        ids::NodeId,
        membership::{
            config::MembershipConfig,
            record::{Amounts, Capacity, MemberRecord, Tags},
        },
        resources::{
            capacity::{Declared, Sample, publish},
            request::ResourceRequest,
        },
    },
    runtime::{
        membership::{AgentConfig, MembershipAgent, now},
        resources,
    },
    transport::membership::{MembershipHandler, Refusal, memory::MemoryNetwork},
};

fn addr(i: usize) -> String {
    format!("10.1.0.{}:50005", i + 1)
}

fn record(i: usize, gpus: i64) -> MemberRecord {
    let mut r = MemberRecord::new(
        NodeId::parse(&format!("q{i}")).unwrap(),
        format!("q{i}"),
        addr(i),
        "default".into(),
        1,
    );
    let a = Amounts {
        cpu_millis: 1000,
        memory_bytes: 1 << 30,
        gpus,
    };
    r.capacity = Some(Capacity {
        total: a,
        used: Amounts::default(),
        available: a,
    });
    r.tags = Tags {
        cpu: true,
        gpu: gpus > 0,
        memory: true,
        camera: false,
    };
    r
}

/// Frozen agents (no loops) whose views hold only the given neighbours.
fn frozen(net: &MemoryNetwork, gpus: &[i64], edges: &[(usize, usize)]) -> Vec<MembershipAgent> {
    let agents: Vec<MembershipAgent> = gpus
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let config = AgentConfig {
                membership: MembershipConfig::for_test(),
                run_loops: false,
                rng_seed: Some(i as u64),
                ..AgentConfig::default()
            };
            let a =
                MembershipAgent::start(config, record(i, *g), Arc::new(net.transport(&addr(i))));
            net.register(&addr(i), Arc::new(a.clone()));
            a
        })
        .collect();
    for &(x, y) in edges {
        agents[x].with_state(|s| s.admit(record(y, gpus[y]), now()));
        agents[y].with_state(|s| s.admit(record(x, gpus[x]), now()));
    }
    agents
}

fn gpu_request() -> ResourceRequest {
    ResourceRequest {
        gpus: 1,
        ..ResourceRequest::default()
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_far_end_of_a_line_is_found_only_with_enough_hops() {
    let net = MemoryNetwork::new(1);
    net.set_delay(Duration::from_millis(5));
    // q0 - q1 - q2 - q3 - q4, only q4 has a GPU.
    let agents = frozen(&net, &[0, 0, 0, 0, 1], &[(0, 1), (1, 2), (2, 3), (3, 4)]);
    let far = agents[0]
        .query(gpu_request(), 4, Duration::from_secs(2))
        .await
        .unwrap();
    let names: Vec<_> = far.answer.nodes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["q4"]);
    // q3, three hops out, already knows q4.
    assert_eq!(far.answer.hops_used, 3);
    for hops in [0, 1, 2] {
        let near = agents[0]
            .query(gpu_request(), hops, Duration::from_secs(2))
            .await
            .unwrap();
        assert!(near.answer.nodes.is_empty(), "found with {hops} hops");
    }
    // Without a GPU requirement, every node of the line is found, each once.
    let all = agents[0]
        .query(ResourceRequest::default(), 4, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(all.answer.nodes.len(), 5);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_cycle_does_not_loop_or_double_count() {
    let net = MemoryNetwork::new(2);
    // A ring of 5 with every node offering a GPU.
    let agents = frozen(
        &net,
        &[1, 1, 1, 1, 1],
        &[(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)],
    );
    let before = net.calls();
    let out = agents[2]
        .query(gpu_request(), 8, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(out.answer.nodes.len(), 5);
    let mut ids: Vec<_> = out.answer.nodes.iter().map(|r| r.id.clone()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 5);
    // Each node forwards to its two neighbours at most once: no endless loop.
    assert!(net.calls() - before <= 10, "{} calls", net.calls() - before);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn absurd_hop_counts_are_capped() {
    let net = MemoryNetwork::new(3);
    let agents = frozen(&net, &[0, 0], &[(0, 1)]);
    let out = agents[0]
        .query(ResourceRequest::default(), 1000, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(out.max_hops, gsp::core::resources::query::MAX_HOPS_CAP);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_query_flood_from_one_caller_is_bounded() {
    let net = MemoryNetwork::new(4);
    net.set_delay(Duration::from_millis(200));
    let agents = frozen(&net, &[0, 0, 0], &[(0, 1), (1, 2)]);
    let target = agents[1].clone();
    let mut set = tokio::task::JoinSet::new();
    for n in 0..40 {
        let t = target.clone();
        set.spawn(async move {
            t.on_query(gsp::core::resources::query::Query {
                id: format!("flood-{n}"),
                from: NodeId::parse("flooder").unwrap(),
                from_address: "10.9.9.9:1".into(),
                domain: "default".into(),
                request: ResourceRequest::default(),
                max_hops: 2,
                current_hops: 0,
                timeout: Duration::from_secs(2),
            })
            .await
        });
    }
    let mut refused = 0;
    let mut answered = 0;
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            Ok(_) => answered += 1,
            Err(Refusal::Overloaded(why)) => {
                assert!(why.contains("flooder"), "{why}");
                refused += 1;
            }
            Err(e) => panic!("unexpected refusal {e}"),
        }
    }
    assert_eq!(answered, gsp::runtime::membership::MAX_IN_FLIGHT_PER_CALLER);
    assert_eq!(refused, 40 - answered);
    // Another caller is still served.
    let ok = agents[0]
        .query(ResourceRequest::default(), 1, Duration::from_secs(2))
        .await;
    assert!(ok.is_ok());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn resources_are_republished_only_on_meaningful_change() {
    let net = MemoryNetwork::new(5);
    let agents = frozen(&net, &[0], &[]);
    let a = &agents[0];
    let sample = |used| Sample {
        cpu_total_millis: 4000,
        cpu_used_millis: used,
        memory_total_bytes: 1 << 30,
        memory_used_bytes: 1 << 20,
        gpus: vec![],
        gpu_host: gsp::core::resources::capacity::GpuHost::default(),
        camera: false,
    };
    let declared = Declared::default();
    let version = || a.with_state(|s| s.local().version.counter);
    let v0 = version();
    let p = resources::apply(a, None, publish(&sample(1000), &declared));
    assert_eq!(version(), v0 + 1, "the first reading is published");
    let p = resources::apply(a, Some(&p), publish(&sample(1050), &declared));
    let p = resources::apply(a, Some(&p), publish(&sample(1100), &declared));
    assert_eq!(version(), v0 + 1, "small changes are not");
    resources::apply(a, Some(&p), publish(&sample(2000), &declared));
    assert_eq!(version(), v0 + 2);
    let cap = a.with_state(|s| s.local().capacity.unwrap());
    assert_eq!(cap.available.cpu_millis, 2000);
}
