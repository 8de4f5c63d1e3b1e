//! The HTTP side port: iarnet's node list, Prometheus metrics, health.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::{sync::Arc, time::Duration};

use gsp::{
    core::membership::config::MembershipConfig,
    runtime::{
        identity::Identity,
        membership::AgentConfig,
        node::{Listeners, NodeConfig, NodeHandle},
    },
    transport::data_plane::sink::DiscardSink,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// The metric names in the Metrics table of docs/operations.md (first column).
fn readme_metrics() -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
            .unwrap();
    let section = readme.split("\n## Metrics\n").nth(1).unwrap();
    let section = section.split("\n## ").next().unwrap();
    let mut names = Vec::new();
    for row in section
        .lines()
        .filter(|l| l.starts_with("| `gsp_") || l.starts_with("| `process_"))
    {
        let first = row.split(" | ").next().unwrap();
        for part in first
            .split('`')
            .filter(|p| p.starts_with("gsp_") || p.starts_with("process_"))
        {
            names.push(part.split('{').next().unwrap().to_owned());
        }
    }
    names
}

/// A node with its gRPC and HTTP ports on 127.0.0.1:0.
async fn start(config: NodeConfig) -> NodeHandle {
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    NodeHandle::start(
        config,
        Identity::ephemeral(),
        Listeners {
            grpc,
            http: Some(http),
        },
        Arc::new(DiscardSink),
    )
    .await
    .unwrap()
}

/// A minimal HTTP/1.1 GET; returns (status, body).
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    get_with(addr, path, "").await
}

/// [`get`] with extra header lines (each ending in CRLF).
async fn get_with(addr: std::net::SocketAddr, path: &str, headers: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let status = buf.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn side_port_serves_nodes_metrics_and_health() {
    let probe = gsp::probe::FakeProbe::constant(gsp::core::resources::capacity::Sample {
        cpu_total_millis: 8000,
        cpu_used_millis: 2000,
        memory_total_bytes: 16 << 30,
        memory_used_bytes: 4 << 30,
        gpus: vec![],
        gpu_host: gsp::core::resources::capacity::GpuHost::default(),
        camera: true,
    });
    let config = NodeConfig {
        name: "web".into(),
        probe: gsp::runtime::node::ProbeChoice::Fake(probe),
        membership: AgentConfig {
            membership: MembershipConfig::with_interval(Duration::from_millis(50)),
            ..AgentConfig::default()
        },
        ..NodeConfig::default()
    };
    let node = start(config).await;
    let addr = node.http_addr().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (status, body) = get(addr, "/api/resource/discovery/nodes").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], 200);
    assert_eq!(v["message"], "success");
    assert_eq!(v["data"]["total"], 1);
    let n = &v["data"]["nodes"][0];
    assert_eq!(n["node_name"], "web");
    assert_eq!(n["status"], "online");
    assert_eq!(n["state"], "alive");
    assert_eq!(n["local"], true);
    assert!(n["last_seen"].as_str().unwrap().ends_with('Z'));

    let mut sent = node
        .broadcast()
        .send(
            bytes::Bytes::from_static(b"hello"),
            &gsp::runtime::broadcast::SendOptions::default(),
        )
        .unwrap();
    while let Some(p) = sent.progress.recv().await {
        if matches!(p, gsp::runtime::broadcast::Progress::Done(_)) {
            break;
        }
    }
    let (status, metrics) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("# TYPE gsp_members gauge"), "{metrics}");
    assert!(
        metrics.contains("gsp_members{state=\"alive\"} 1"),
        "{metrics}"
    );
    let rounds: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("gsp_gossip_rounds_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(rounds >= 1, "{metrics}");
    for name in [
        "gsp_bytes_sent_total",
        "gsp_bytes_received_total",
        "gsp_refused_foreign_domain_total",
        "gsp_membership_events_total{kind=\"dead\"}",
        "gsp_broadcast_originated_total 1",
        "gsp_broadcast_delivered_total 1",
        "gsp_broadcast_stored_messages 1",
        "gsp_data_peers_cut_off_total 0",
    ] {
        assert!(metrics.contains(name), "{name} missing");
    }
    // Every metric docs/operations.md documents is served (with a sample, for those
    // with labels, once something was counted: here a refused call).
    let grpc = node.local_addr();
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let refused = gsp::transport::pb::membership::v1::membership_client::MembershipClient::new(ch)
        .ping(gsp::transport::pb::membership::v1::PingRequest::default())
        .await;
    assert!(refused.is_err());
    let (_, metrics) = get(addr, "/metrics").await;
    let documented = readme_metrics();
    assert!(documented.len() > 40, "{documented:?}");
    // OpenMetrics: a counter's family is named without `_total` in `# TYPE`;
    // its samples keep it.
    let family = |name: &str| name.strip_suffix("_total").unwrap_or(name).to_owned();
    for name in &documented {
        if name.starts_with("gsp_tls_") {
            // Served by TLS nodes only (checked in the TLS unit tests).
            continue;
        }
        assert!(
            metrics.contains(&format!("# TYPE {name} "))
                || metrics.contains(&format!("# TYPE {} counter", family(name))),
            "{name} is in docs/operations.md but not on /metrics"
        );
    }
    assert!(metrics.ends_with("# EOF\n"), "not OpenMetrics: {metrics}");
    assert!(
        metrics.contains("gsp_grpc_errors_total{service=\"gsp.membership.v1.Membership\",code=\"invalid_argument\"} 1"),
        "{metrics}"
    );
    for line in metrics.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).unwrap();
        assert!(
            documented
                .iter()
                .any(|d| d == name || (line.ends_with(" counter") && family(d) == name)),
            "{name} is served but not documented in the Metrics table of docs/operations.md"
        );
    }

    assert_eq!(n["cpu"]["available"], 6000);
    assert_eq!(n["resource_tags"]["camera"], true);

    let (status, body) = get(addr, "/api/resource/discovery/summary").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["code"], 200);
    assert_eq!(v["data"]["nodes"], 1);
    assert_eq!(v["data"]["memory"]["available"], 12_u64 << 30);
    assert_eq!(v["data"]["by_tag"]["camera"], serde_json::json!(["web"]));

    assert_eq!(get(addr, "/healthz").await, (200, "ok\n".to_owned()));
    assert_eq!(get(addr, "/readyz").await, (200, "ok\n".to_owned()));
    assert_eq!(get(addr, "/nope").await.0, 404);

    // The web view and the JSON it reads.
    let (status, page) = get(addr, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>gsp</title>"), "{page}");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "an external asset"
    );
    let (status, body) = get(addr, "/api/broadcasts").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["schema"], "gsp.http-broadcasts.v1");
    let b = &v["broadcasts"][0];
    assert_eq!(
        (
            b["state"].as_str(),
            b["acked"].as_u64(),
            b["expected"].as_u64()
        ),
        (Some("converged"), Some(1), Some(1)),
        "{v}"
    );
    assert_eq!(b["bytes"], 5);
    assert!(b["sent_at"].as_str().unwrap().ends_with('Z'), "{v}");
    let (status, body) = get(addr, "/api/jobs").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["schema"], "gsp.http-jobs.v1");
    assert_eq!(
        (v["exec"].as_bool(), v["total"].as_u64()),
        (Some(false), Some(0)),
        "{v}"
    );

    // Maintenance: not ready (liveness unchanged), and audited.
    node.maintenance()
        .set(gsp::core::maintenance::ChangeRequest {
            state: gsp::core::maintenance::Maintenance::Maintenance,
            reason: "bios update".into(),
            actor: "ops".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        get(addr, "/readyz").await,
        (503, "maintenance\n".to_owned())
    );
    assert_eq!(get(addr, "/healthz").await.0, 200);
    let (_, metrics) = get(addr, "/metrics").await;
    assert!(
        metrics.contains("gsp_maintenance{state=\"maintenance\"} 1"),
        "{metrics}"
    );
    let (status, body) = get(addr, "/api/maintenance").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["schema"], "gsp.maint.v1");
    assert_eq!(v["state"], "maintenance");
    assert_eq!(v["previous_state"], "normal");
    let (status, body) = get(addr, "/api/maintenance/audit?limit=5").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["schema"], "gsp.maint-audit.v1");
    assert_eq!(v["entries"][0]["reason"], "bios update");
    assert_eq!(v["entries"][0]["actor"], "ops");
    assert_eq!(v["entries"].as_array().unwrap().len(), 1);
    assert!(node.shutdown().await);
}

/// With `--require-token-for-reads` the side port's data needs the token;
/// the page itself (it carries no data) and the health checks do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn side_port_reads_follow_the_token_policy() {
    let config = NodeConfig {
        name: "locked".into(),
        auth: gsp::transport::auth::AdminAuth::with_token("s3cret", true),
        membership: AgentConfig {
            membership: MembershipConfig::with_interval(Duration::from_millis(50)),
            ..AgentConfig::default()
        },
        ..NodeConfig::default()
    };
    let node = start(config).await;
    let addr = node.http_addr().unwrap();
    for path in [
        "/api/resource/discovery/nodes",
        "/api/jobs",
        "/api/broadcasts",
        "/api/maintenance",
        "/metrics",
    ] {
        let (status, body) = get(addr, path).await;
        assert_eq!(status, 401, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["schema"], "gsp.error.v1", "{path}");
        assert_eq!(v["code"], "unauthenticated", "{path}");
        let (status, _) = get_with(addr, path, "Authorization: Bearer wrong\r\n").await;
        assert_eq!(status, 401, "{path} with a wrong token");
        let (status, body) = get_with(addr, path, "Authorization: Bearer s3cret\r\n").await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    assert_eq!(get(addr, "/").await.0, 200);
    assert_eq!(get(addr, "/healthz").await.0, 200);
    assert_eq!(get(addr, "/readyz").await.0, 200);
    assert!(node.shutdown().await);
}
