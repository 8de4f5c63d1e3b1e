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
pub mod tmpfs;

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

/// Polls `ok` every 100 ms until it holds, failing the test naming `what`
/// after `limit` (a hang detector, not a performance assertion).
pub fn until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A command's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Path of the built binary.
pub fn gsp_bin() -> &'static str {
    env!("CARGO_BIN_EXE_gsp")
}

/// Runs `gsp args...` to completion, failing the test if it takes longer than
/// `limit` (a hang detector, not a performance assertion). Output is read
/// while the command runs, so one that writes more than a pipe holds (64 KiB)
/// does not block.
pub fn run_gsp(args: &[&str], limit: Duration) -> Output {
    run_within(Command::new(gsp_bin()), args, limit)
}

/// [`run_gsp`] under `ulimit ULIMIT` (bash's, e.g. `-n 24`: this process's
/// open-file limit, soft and hard).
pub fn run_gsp_ulimit(ulimit: &str, args: &[&str], limit: Duration) -> Output {
    let mut cmd = Command::new("bash");
    cmd.args([
        "-c",
        &format!("ulimit {ulimit} && exec \"$0\" \"$@\""),
        gsp_bin(),
    ]);
    run_within(cmd, args, limit)
}

fn run_within(mut cmd: Command, args: &[&str], limit: Duration) -> Output {
    let child = cmd
        .args(args)
        .env_remove("GSP_ADDR")
        .env("GSP_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    if let Ok(out) = rx.recv_timeout(limit) {
        return out.unwrap();
    }
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    let out = rx.recv().unwrap().unwrap();
    panic!(
        "gsp {args:?} did not exit within {limit:?}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A node on 127.0.0.1:0 in `domain` with 100 ms gossip rounds, joining through
/// `seeds`, discarding point-to-point messages.
pub async fn member_node(name: &str, seeds: Vec<String>, domain: &str) -> NodeHandle {
    member_node_with(name, seeds, domain, |_| {}).await
}

/// [`member_node`] with `tweak` applied to its configuration.
pub async fn member_node_with(
    name: &str,
    seeds: Vec<String>,
    domain: &str,
    tweak: impl FnOnce(&mut NodeConfig),
) -> NodeHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = NodeConfig {
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
    tweak(&mut config);
    NodeHandle::start(
        config,
        Identity::ephemeral(),
        listener,
        Arc::new(gsp::transport::data_plane::sink::DiscardSink),
    )
    .await
    .unwrap()
}

/// A gRPC channel to `addr` whose connections come from `source` (another
/// loopback address, such as 127.0.0.2), so a test can play a second host.
pub async fn channel_from(
    source: std::net::IpAddr,
    addr: std::net::SocketAddr,
) -> tonic::transport::Channel {
    #[derive(Clone)]
    struct From(std::net::IpAddr, std::net::SocketAddr);
    impl tower_service::Service<http::Uri> for From {
        type Response = hyper_util::rt::TokioIo<tokio::net::TcpStream>;
        type Error = std::io::Error;
        type Future = std::pin::Pin<
            Box<dyn std::future::Future<Output = std::io::Result<Self::Response>> + Send>,
        >;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: http::Uri) -> Self::Future {
            let (src, dst) = (self.0, self.1);
            Box::pin(async move {
                let sock = tokio::net::TcpSocket::new_v4()?;
                sock.bind(std::net::SocketAddr::new(src, 0))?;
                let tcp = sock.connect(dst).await?;
                Ok(hyper_util::rt::TokioIo::new(tcp))
            })
        }
    }
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(From(source, addr))
        .await
        .unwrap()
}

/// Waits (real time, bounded) until `pred` holds; returns whether it did.
pub async fn eventually(limit: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if pred() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pred()
}
