//! One conformance suite for both membership transports: the in-memory
//! network the simulations run on and gRPC on 127.0.0.1:0. Each check calls
//! through `MembershipTransport` to a scripted `MembershipHandler` and asserts
//! what the handler received and what the caller got back; both transports
//! must pass every check the same way, so behaviour proven in simulation is
//! the behaviour of the wire.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use gsp::{
    core::{
        ids::NodeId,
        membership::{
            messages::{Gossip, IndirectPing, Phase, Ping, PingReply, PushPull, PushPullReply},
            record::{MemberRecord, SharedRecord},
        },
        resources::{
            inventory::Inventory,
            query::{Query, QueryAnswer},
        },
    },
    transport::{
        config::DataPlaneConfig,
        membership::{
            CallError, MembershipHandler, MembershipTransport, Refusal, grpc::GrpcMembership,
            memory::MemoryNetwork, service::MembershipService,
        },
        pool::ChannelPool,
        traffic::Traffic,
    },
};

const T: Duration = Duration::from_secs(5);
/// The table hash the scripted node takes for its own.
const IN_SYNC_HASH: u64 = 0x5eed;

/// What the scripted node received, in order.
#[derive(Debug, Clone, PartialEq)]
enum Got {
    Ping {
        from: NodeId,
        target: NodeId,
        seq: u64,
        want_record: bool,
        updates: Vec<String>,
    },
    Gossip {
        from: NodeId,
        updates: Vec<(String, String, u64)>,
    },
    PingReq {
        from: NodeId,
        target: NodeId,
        target_address: String,
        seq: u64,
        timeout: Duration,
        updates: Vec<String>,
    },
    PushPull {
        from: NodeId,
        from_address: String,
        phase: Phase,
        records: Vec<String>,
        table_hash: u64,
        want: Vec<NodeId>,
    },
}

/// A node that answers from a script: its own id, and whether it refuses.
struct Scripted {
    me: NodeId,
    record: MemberRecord,
    refuse: Option<Refusal>,
    got: Mutex<Vec<Got>>,
}

impl Scripted {
    fn new(name: &str, refuse: Option<Refusal>) -> Arc<Self> {
        let me = NodeId::random();
        let record = MemberRecord::new(
            me.clone(),
            name.to_owned(),
            "127.0.0.1:1".to_owned(),
            "default".to_owned(),
            1,
        );
        Arc::new(Self {
            me,
            record,
            refuse,
            got: Mutex::new(Vec::new()),
        })
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    fn check(&self) -> Result<(), Refusal> {
        self.refuse.clone().map_or(Ok(()), Err)
    }
}

#[tonic::async_trait]
impl MembershipHandler for Scripted {
    fn on_ping(&self, msg: Ping, _caller: Option<&str>) -> Result<PingReply, Refusal> {
        self.check()?;
        self.got.lock().unwrap().push(Got::Ping {
            from: msg.from.clone(),
            target: msg.target.clone(),
            seq: msg.seq,
            want_record: msg.want_record,
            updates: msg.updates.iter().map(|r| r.name.clone()).collect(),
        });
        Ok(PingReply {
            from: self.me.clone(),
            seq: msg.seq,
            ack: true,
            updates: vec![SharedRecord::new(self.record.clone())],
        })
    }

    async fn on_ping_req(
        &self,
        msg: IndirectPing,
        _caller: Option<&str>,
    ) -> Result<PingReply, Refusal> {
        self.check()?;
        self.got.lock().unwrap().push(Got::PingReq {
            from: msg.from.clone(),
            target: msg.target.clone(),
            target_address: msg.target_address.clone(),
            seq: msg.seq,
            timeout: msg.timeout,
            updates: msg.updates.iter().map(|r| r.name.clone()).collect(),
        });
        // The script: a target named by an even seq answered.
        Ok(PingReply {
            from: self.me.clone(),
            seq: msg.seq,
            ack: msg.seq.is_multiple_of(2),
            updates: vec![record("d", "us", 9)],
        })
    }

    fn on_gossip(&self, msg: Gossip, _caller: Option<&str>) -> Result<(), Refusal> {
        self.check()?;
        self.got.lock().unwrap().push(Got::Gossip {
            from: msg.from.clone(),
            updates: msg
                .updates
                .iter()
                .map(|r| {
                    (
                        r.name.clone(),
                        r.labels.get("zone").cloned().unwrap_or_default(),
                        r.version.counter,
                    )
                })
                .collect(),
        });
        Ok(())
    }

    fn on_push_pull(&self, msg: PushPull, _caller: Option<&str>) -> Result<PushPullReply, Refusal> {
        self.check()?;
        self.got.lock().unwrap().push(Got::PushPull {
            from: msg.from.clone(),
            from_address: msg.from_address.clone(),
            phase: msg.phase,
            records: msg.records.iter().map(|r| r.name.clone()).collect(),
            table_hash: msg.table_hash,
            want: msg.want.clone(),
        });
        // The script: a hash that matches "in sync"; else the digests (hash
        // phase) or the records (the others).
        Ok(match msg.phase {
            Phase::Hash if msg.table_hash == IN_SYNC_HASH => PushPullReply {
                in_sync: true,
                ..PushPullReply::default()
            },
            Phase::Hash => PushPullReply {
                records: vec![SharedRecord::new(self.record.clone())],
                in_sync: false,
                digests: vec![self.record.digest(), record("e", "eu", 5).digest()],
            },
            Phase::Records | Phase::Full => PushPullReply {
                records: vec![record("e", "eu", 5)],
                in_sync: false,
                digests: Vec::new(),
            },
        })
    }

    fn on_peer_list(
        &self,
        _domain: &str,
        _requester_address: &str,
        _known: Vec<String>,
    ) -> Result<Vec<String>, Refusal> {
        self.check()?;
        Ok(Vec::new())
    }

    async fn on_query(&self, _q: Query) -> Result<QueryAnswer, Refusal> {
        Err(Refusal::ShuttingDown)
    }

    fn local_record(&self) -> MemberRecord {
        self.record.clone()
    }

    fn local_inventory(&self) -> Option<Inventory> {
        None
    }

    fn count_refusal(&self, _refusal: &Refusal) {}

    fn members_at(&self, _host: &str) -> usize {
        1
    }

    fn name_of(&self, _id: &NodeId) -> Option<String> {
        None
    }
}

/// A transport and the address at which `handler` answers on it.
async fn memory(handler: Arc<Scripted>) -> (Box<dyn MembershipTransport>, String) {
    let net = MemoryNetwork::new(1);
    let addr = "10.0.0.2:50005".to_owned();
    net.register(&addr, handler);
    (Box::new(net.transport("10.0.0.1:50005")), addr)
}

async fn grpc(handler: Arc<Scripted>) -> (Box<dyn MembershipTransport>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let service = MembershipService::new(handler);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service.membership_server())
            .add_service(service.discovery_server())
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    let pool = ChannelPool::new(DataPlaneConfig::default(), 16, Arc::new(Traffic::default()));
    (Box::new(GrpcMembership::new(pool)), addr)
}

/// Runs `check` over both transports.
macro_rules! conformance {
    ($name:ident, $check:ident) => {
        mod $name {
            #[tokio::test]
            async fn in_memory() {
                super::$check(super::memory).await;
            }
            #[tokio::test]
            async fn over_grpc() {
                super::$check(super::grpc).await;
            }
        }
    };
}

fn record(name: &str, zone: &str, counter: u64) -> SharedRecord {
    let mut r = MemberRecord::new(
        NodeId::random(),
        name.to_owned(),
        format!("127.0.0.1:{}", 2000 + counter),
        "default".to_owned(),
        7,
    );
    r.labels.insert("zone".to_owned(), zone.to_owned());
    r.version.counter = counter;
    SharedRecord::new(r)
}

async fn a_ping_arrives_whole_and_its_ack_comes_back<F, Fut>(connect: F)
where
    F: Fn(Arc<Scripted>) -> Fut,
    Fut: std::future::Future<Output = (Box<dyn MembershipTransport>, String)>,
{
    let node = Scripted::new("b", None);
    let (t, addr) = connect(Arc::clone(&node)).await;
    let from = NodeId::random();
    let reply = t
        .ping(
            &addr,
            Ping {
                from: from.clone(),
                domain: "default".to_owned(),
                target: node.me.clone(),
                seq: 42,
                updates: vec![record("c", "eu", 3)],
                want_record: true,
            },
            T,
        )
        .await
        .unwrap();
    assert_eq!((reply.seq, reply.ack), (42, true));
    assert_eq!(reply.from, node.me);
    assert_eq!(
        reply
            .updates
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["b"]
    );
    assert_eq!(
        node.got(),
        [Got::Ping {
            from,
            target: node.me.clone(),
            seq: 42,
            want_record: true,
            updates: vec!["c".to_owned()],
        }]
    );
}

async fn gossip_keeps_every_field_of_its_records<F, Fut>(connect: F)
where
    F: Fn(Arc<Scripted>) -> Fut,
    Fut: std::future::Future<Output = (Box<dyn MembershipTransport>, String)>,
{
    let node = Scripted::new("b", None);
    let (t, addr) = connect(Arc::clone(&node)).await;
    let from = NodeId::random();
    t.gossip(
        &addr,
        Gossip {
            from: from.clone(),
            domain: "default".to_owned(),
            updates: vec![record("c", "eu", 3), record("d", "us", 9)],
        },
        T,
    )
    .await
    .unwrap();
    assert_eq!(
        node.got(),
        [Got::Gossip {
            from,
            updates: vec![
                ("c".to_owned(), "eu".to_owned(), 3),
                ("d".to_owned(), "us".to_owned(), 9)
            ],
        }]
    );
}

/// Gossips nothing to a node that refuses with `refusal`; the caller's error.
async fn refused_with<F, Fut>(connect: F, refusal: Refusal) -> CallError
where
    F: Fn(Arc<Scripted>) -> Fut,
    Fut: std::future::Future<Output = (Box<dyn MembershipTransport>, String)>,
{
    let node = Scripted::new("b", Some(refusal));
    let (t, addr) = connect(Arc::clone(&node)).await;
    let err = t
        .gossip(
            &addr,
            Gossip {
                from: NodeId::random(),
                domain: "default".to_owned(),
                updates: Vec::new(),
            },
            T,
        )
        .await
        .unwrap_err();
    assert!(node.got().is_empty());
    err
}

async fn an_overloaded_node_refuses<F, Fut>(connect: F)
where
    F: Fn(Arc<Scripted>) -> Fut,
    Fut: std::future::Future<Output = (Box<dyn MembershipTransport>, String)>,
{
    let err = refused_with(
        connect,
        Refusal::Overloaded("16 queries in flight".to_owned()),
    )
    .await;
    assert!(
        matches!(&err, CallError::Refused(why) if why.contains("16 queries in flight")),
        "{err:?}"
    );
}

async fn a_node_shutting_down_is_unreachable<F, Fut>(connect: F)
where
    F: Fn(Arc<Scripted>) -> Fut,
    Fut: std::future::Future<Output = (Box<dyn MembershipTransport>, String)>,
{
    // gRPC's UNAVAILABLE: the caller tries elsewhere, as for a dead node.
    let err = refused_with(connect, Refusal::ShuttingDown).await;
    assert!(
        matches!(&err, CallError::Unreachable(why) if why.contains("shutting down")),
        "{err:?}"
    );
}

async fn a_call_to_itself_is_known_as_such<F, Fut>(connect: F)
where
    F: Fn(Arc<Scripted>) -> Fut,
    Fut: std::future::Future<Output = (Box<dyn MembershipTransport>, String)>,
{
    let err = refused_with(connect, Refusal::Myself(NodeId::random())).await;
    assert!(matches!(err, CallError::Myself), "{err:?}");
}

async fn nobody_at_the_address_is_unreachable<F, Fut>(connect: F)
where
    F: Fn(Arc<Scripted>) -> Fut,
    Fut: std::future::Future<Output = (Box<dyn MembershipTransport>, String)>,
{
    let node = Scripted::new("b", None);
    let (t, _) = connect(node).await;
    // A port nothing listens on (bound, then closed), and a name the
    // in-memory network never registered.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let err = t
        .gossip(
            &free,
            Gossip {
                from: NodeId::random(),
                domain: "default".to_owned(),
                updates: Vec::new(),
            },
            T,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Unreachable(_)), "{err:?}");
}

conformance!(ping, a_ping_arrives_whole_and_its_ack_comes_back);
conformance!(
    ping_req,
    an_indirect_ping_arrives_whole_and_carries_the_verdict_back
);
conformance!(
    push_pull,
    every_push_pull_phase_arrives_whole_and_its_reply_comes_back
);
conformance!(local_record, a_node_says_who_it_is);
conformance!(gossip, gossip_keeps_every_field_of_its_records);
conformance!(overloaded, an_overloaded_node_refuses);
conformance!(shutting_down, a_node_shutting_down_is_unreachable);
conformance!(myself, a_call_to_itself_is_known_as_such);
conformance!(unreachable, nobody_at_the_address_is_unreachable);

async fn an_indirect_ping_arrives_whole_and_carries_the_verdict_back<F, Fut>(connect: F)
where
    F: Fn(Arc<Scripted>) -> Fut,
    Fut: std::future::Future<Output = (Box<dyn MembershipTransport>, String)>,
{
    let node = Scripted::new("b", None);
    let (t, addr) = connect(Arc::clone(&node)).await;
    let (from, target) = (NodeId::random(), NodeId::random());
    for (seq, acked) in [(8, true), (9, false)] {
        let reply = t
            .ping_req(
                &addr,
                IndirectPing {
                    from: from.clone(),
                    domain: "default".to_owned(),
                    target: target.clone(),
                    target_address: "127.0.0.1:4444".to_owned(),
                    seq,
                    timeout: Duration::from_millis(750),
                    updates: vec![record("c", "eu", 3)],
                },
                T,
            )
            .await
            .unwrap();
        assert_eq!((reply.seq, reply.ack), (seq, acked));
        assert_eq!(reply.from, node.me);
        let names: Vec<&str> = reply.updates.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["d"]);
    }
    let got = node.got();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0],
        Got::PingReq {
            from,
            target,
            target_address: "127.0.0.1:4444".to_owned(),
            seq: 8,
            timeout: Duration::from_millis(750),
            updates: vec!["c".to_owned()],
        }
    );
}

async fn every_push_pull_phase_arrives_whole_and_its_reply_comes_back<F, Fut>(connect: F)
where
    F: Fn(Arc<Scripted>) -> Fut,
    Fut: std::future::Future<Output = (Box<dyn MembershipTransport>, String)>,
{
    let node = Scripted::new("b", None);
    let (t, addr) = connect(Arc::clone(&node)).await;
    let from = NodeId::random();
    let call = |phase, table_hash, want: Vec<NodeId>| PushPull {
        from: from.clone(),
        from_address: "127.0.0.1:3333".to_owned(),
        domain: "default".to_owned(),
        phase,
        records: vec![record("c", "eu", 3)],
        table_hash,
        want,
    };
    // Hash phase, tables equal: in sync, nothing else.
    let r = t
        .push_pull(&addr, call(Phase::Hash, IN_SYNC_HASH, Vec::new()), T)
        .await
        .unwrap();
    assert!(r.in_sync && r.records.is_empty() && r.digests.is_empty());
    // Hash phase, tables differ: the callee's record and its digests.
    let r = t
        .push_pull(&addr, call(Phase::Hash, 1, Vec::new()), T)
        .await
        .unwrap();
    assert!(!r.in_sync);
    assert_eq!(r.records[0].id, node.me);
    let e = record("e", "eu", 5).digest();
    assert_eq!(r.digests.len(), 2);
    assert_eq!(r.digests[0], node.record.digest());
    assert_eq!(
        (r.digests[1].version, r.digests[1].state),
        (e.version, e.state)
    );
    // Records phase: what the caller wants comes back.
    let wanted = vec![NodeId::random(), NodeId::random()];
    let r = t
        .push_pull(&addr, call(Phase::Records, 0, wanted.clone()), T)
        .await
        .unwrap();
    let names: Vec<&str> = r.records.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["e"]);
    // And iarnet's full exchange.
    let r = t
        .push_pull(&addr, call(Phase::Full, 0, Vec::new()), T)
        .await
        .unwrap();
    assert_eq!(r.records.len(), 1);
    let got = node.got();
    let phases: Vec<_> = got
        .iter()
        .map(|g| match g {
            Got::PushPull {
                phase, table_hash, ..
            } => (*phase, *table_hash),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        phases,
        [
            (Phase::Hash, IN_SYNC_HASH),
            (Phase::Hash, 1),
            (Phase::Records, 0),
            (Phase::Full, 0)
        ]
    );
    assert_eq!(
        got[2],
        Got::PushPull {
            from: from.clone(),
            from_address: "127.0.0.1:3333".to_owned(),
            phase: Phase::Records,
            records: vec!["c".to_owned()],
            table_hash: 0,
            want: wanted,
        }
    );
}

async fn a_node_says_who_it_is<F, Fut>(connect: F)
where
    F: Fn(Arc<Scripted>) -> Fut,
    Fut: std::future::Future<Output = (Box<dyn MembershipTransport>, String)>,
{
    let node = Scripted::new("b", None);
    let (t, addr) = connect(Arc::clone(&node)).await;
    let r = t.local_record(&addr, T).await.unwrap();
    assert_eq!(
        (r.id, r.name.as_str(), r.domain.as_str()),
        (node.me.clone(), "b", "default")
    );
}
