//! Shared helpers for integration tests: in-process nodes on 127.0.0.1:0 with a
//! recording sink, and a runner for the built `gsp` binary.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "shared helpers; each test file uses a different subset"
)]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

pub mod certs;
pub mod procs;
pub mod sim;

use std::{
    process::{Command, Output},
    sync::{Arc, Mutex},
    time::Duration,
};

use gsp::{
    core::message::InboundMessage,
    runtime::{
        identity::Identity,
        node::{NodeConfig, NodeHandle},
    },
    transport::{
        config::DataPlaneConfig,
        data_plane::sink::{MessageSink, Verdict},
    },
};
use tokio::net::TcpListener;

/// Keeps every delivered message.
#[derive(Debug, Default)]
pub struct RecordingSink {
    pub messages: Mutex<Vec<InboundMessage>>,
}

impl MessageSink for RecordingSink {
    fn deliver(&self, msg: InboundMessage) -> Verdict {
        self.messages.lock().unwrap().push(msg);
        Verdict::Delivered
    }
}

/// A node plus the sink that records what it received.
pub struct TestNode {
    pub node: NodeHandle,
    pub sink: Arc<RecordingSink>,
}

/// Starts a node on 127.0.0.1:0 with `data_plane` settings and `domain`.
pub async fn start_node(data_plane: DataPlaneConfig, domain: &str) -> TestNode {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink = Arc::new(RecordingSink::default());
    let config = NodeConfig {
        name: "test".into(),
        domain: domain.into(),
        data_plane,
        drain_timeout: Duration::from_secs(5),
        ..NodeConfig::default()
    };
    let node = NodeHandle::start(config, Identity::ephemeral(), listener, sink.clone())
        .await
        .unwrap();
    TestNode { node, sink }
}

/// Path of the built binary.
pub fn gsp_bin() -> &'static str {
    env!("CARGO_BIN_EXE_gsp")
}

/// Runs `gsp args...` to completion, failing the test if it takes longer than
/// `limit` (a hang detector, not a performance assertion).
pub fn run_gsp(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(gsp_bin())
        .args(args)
        .env_remove("GSP_ADDR")
        .env("GSP_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "gsp {args:?} did not exit within {limit:?}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A node on 127.0.0.1:0 in `domain` with 100 ms gossip rounds, joining through
/// `seeds`, discarding point-to-point messages.
pub async fn member_node(name: &str, seeds: Vec<String>, domain: &str) -> NodeHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = NodeConfig {
        name: name.into(),
        domain: domain.into(),
        membership: gsp::runtime::membership::AgentConfig {
            membership: gsp::core::membership::config::MembershipConfig::with_interval(
                Duration::from_millis(100),
            ),
            seeds,
            ..gsp::runtime::membership::AgentConfig::default()
        },
        ..NodeConfig::default()
    };
    NodeHandle::start(
        config,
        Identity::ephemeral(),
        listener,
        Arc::new(gsp::transport::data_plane::sink::DiscardSink),
    )
    .await
    .unwrap()
}
