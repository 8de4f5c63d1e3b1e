//! Mutual TLS for `gsp bench --tls`: a throwaway CA and one node certificate
//! (`gsp://node/bench`, valid for 127.0.0.1 and localhost) shared by every bench
//! node, and the ratio judged against the issue's goal.

use std::{
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use super::error::BenchError;
use crate::transport::tls::{
    TlsConfig, TlsFiles,
    pki::{self, LeafSpec, Role},
};

/// The goal: TLS may cost at most 15% of plaintext throughput, i.e. TLS
/// throughput / plaintext throughput must be at least this.
pub const TLS_VS_PLAINTEXT_TARGET: f64 = 0.85;

/// Whether a TLS / plaintext throughput ratio meets [`TLS_VS_PLAINTEXT_TARGET`]
/// (a NaN or infinite ratio never does).
pub fn target_met(ratio: f64) -> bool {
    ratio.is_finite() && ratio >= TLS_VS_PLAINTEXT_TARGET
}

/// The bench's certificate files; the directory is removed when this is
/// dropped, whatever happened in between. Nodes read the files when they
/// start (TLS, and the keys that sign records and broadcasts), so keep it
/// until the TLS cluster has started.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Creates a private, fresh directory under the system temp dir.
fn temp_dir() -> Result<TempDir, BenchError> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let path = std::env::temp_dir().join(format!("gsp-bench-tls-{}-{nanos:x}", std::process::id()));
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    // `create` (not `create_all`) fails if the path exists: never reuse a
    // directory someone else prepared.
    builder
        .create(&path)
        .map_err(|e| setup(&format!("cannot create {}: {e}", path.display())))?;
    Ok(TempDir(path))
}

fn setup(reason: &str) -> BenchError {
    BenchError::Setup(format!("bench TLS: {reason}"))
}

fn write(dir: &Path, name: &str, pem: &str) -> Result<PathBuf, BenchError> {
    let path = dir.join(name);
    std::fs::write(&path, pem)
        .map_err(|e| setup(&format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

/// A TLS configuration for bench nodes: a new CA and one node certificate,
/// written to a private temporary directory and loaded; the directory goes
/// when the returned guard is dropped (bench nodes never reload).
///
/// # Errors
/// Key generation, the temporary files or loading them failed.
pub fn bench_tls_config() -> Result<(TlsConfig, TempDir), BenchError> {
    let now = SystemTime::now();
    let ca = pki::new_ca("gsp bench CA", 1, now).map_err(|e| setup(&format!("CA: {e}")))?;
    let spec = LeafSpec {
        role: Role::Node,
        name: "bench".to_owned(),
        ips: Vec::new(),
        dns: Vec::new(),
        days: 1,
    };
    let node = pki::issue(&ca.cert_pem, &ca.key_pem, &spec, now)
        .map_err(|e| setup(&format!("node certificate: {e}")))?;
    let dir = temp_dir()?;
    let files = TlsFiles {
        cert: Some(write(&dir.0, "bench.crt", &node.cert_pem)?),
        key: Some(write(&dir.0, "bench.key", &node.key_pem)?),
        ca: write(&dir.0, "ca.crt", &ca.cert_pem)?,
    };
    let config = TlsConfig::load(files).map_err(|e| setup(&e.to_string()))?;
    Ok((config, dir))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::{
        bench::{
            cluster::LocalCluster,
            flood::{self, FloodPlan},
            progress::{NoProgress, Progress},
        },
        transport::config::DataPlaneConfig,
    };

    #[test]
    fn the_target_is_never_met_by_a_lower_or_undefined_ratio() {
        assert!(target_met(0.85));
        assert!(target_met(1.02));
        assert!(!target_met(0.849_999));
        assert!(!target_met(f64::NAN));
        assert!(!target_met(f64::INFINITY));
    }

    #[tokio::test]
    async fn a_tls_cluster_exchanges_messages_and_refuses_plaintext() {
        let (tls, dir) = bench_tls_config().expect("tls config");
        assert!(tls.server().is_some(), "bench nodes need a server identity");
        let dp = DataPlaneConfig::default();
        let mut cluster = LocalCluster::start(2, &dp, Some(&tls))
            .await
            .expect("cluster");
        // The temporary files go once the nodes have started.
        let cert = tls.files().cert.clone().expect("cert");
        drop(dir);
        assert!(!cert.exists(), "{} left behind", cert.display());
        let plan = FloodPlan {
            phase: "gsp+tls",
            iteration: 1,
            messages_per_peer: 2,
            timeout: std::time::Duration::from_secs(10),
            kill_after_acks: None,
        };
        let progress: Arc<dyn Progress> = Arc::new(NoProgress);
        let out = flood::run_iteration(&mut cluster, &Bytes::from_static(b"hi"), &plan, &progress)
            .await
            .expect("flood over TLS");
        assert_eq!(out.messages, 4);

        // A plaintext node cannot link to a TLS node: the cluster really is TLS.
        let mut plaintext = LocalCluster::start(1, &dp, None).await.expect("plaintext");
        let target = cluster.nodes[0]
            .as_ref()
            .expect("node")
            .advertise()
            .to_owned();
        let plain_node = plaintext.nodes[0].take().expect("plain node");
        let link = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            plain_node.connect(&target),
        )
        .await
        .expect("refused in time");
        assert!(link.is_err(), "plaintext link to a TLS node succeeded");
        plain_node.shutdown().await;
        cluster.shutdown().await;
    }
}
