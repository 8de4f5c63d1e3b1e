//! Mutual TLS for the gRPC port: the node's certificate and key, and the CA that
//! every peer and client certificate must be signed by. Files are re-read on
//! [`TlsConfig::reload`] (SIGHUP); new connections use the new certificates,
//! open ones keep theirs.

pub mod connector;
pub mod conns;
pub mod incoming;
pub mod io;
pub mod origin;
pub mod pki;
pub mod roles;
mod sniff;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, PoisonError, RwLock},
};

use rustls::{
    CipherSuite, ClientConfig, RootCertStore, ServerConfig, server::WebPkiClientVerifier,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

/// ALPN protocol gRPC speaks.
const H2: &[u8] = b"h2";

/// Largest TLS record rustls sends, its 5-byte header included: 16 KiB - 16
/// of payload instead of rustls' full 16 KiB. rustls copies each record's
/// plaintext into a fresh buffer, 5 bytes in, before encrypting it. With
/// 16 KiB records every record of a message kept the same distance modulo
/// 4 KiB between source and copy, and in `gsp bench --tls` it was one where
/// glibc 2.36's `rep movsb` runs at ~3 GB/s instead of ~40 on AMD Zen 4
/// (destination 1..15 bytes past the source modulo 4 KiB): that copy cost
/// more than the encryption. Records 16 bytes short of 16 KiB move the
/// distance by 16 per record, so at most 1 record in 256 is copied slowly
/// (2-core EPYC: TLS 1438 -> 1612 MiB/s). It costs one more record, 22 bytes,
/// per 1023.
const MAX_FRAGMENT_BYTES: usize = (16 << 10) - 16 + 5;

/// Where the certificates are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// This side's certificate chain (PEM); a client without one presents none.
    pub cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub key: Option<PathBuf>,
    /// The CA that signs every certificate in the cluster (PEM).
    pub ca: PathBuf,
}

/// A certificate problem, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the combination (e.g. the key does not match the cert).
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_err(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, e))?;
    if certs.is_empty() {
        return Err(file_err(path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| file_err(path, format!("no usable private key: {e}")))
}

fn roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs(path)? {
        roots.add(c).map_err(|e| file_err(path, e))?;
    }
    Ok(Arc::new(roots))
}

/// ring's provider with AES-128-GCM preferred to AES-256-GCM: on the 2-core
/// EPYC (VAES) ring seals 16 KiB records at ~9.5 GB/s with AES-128 and
/// ~8.2 GB/s with AES-256, and encryption is half of what TLS costs in
/// `gsp bench --tls`: its AES time drops ~15%, ~4% of the TLS CPU (throughput
/// 1612 -> 1641 MiB/s, within that bench's noise). AES-128-GCM is the suite
/// TLS 1.3 makes mandatory; AES-256-GCM and ChaCha20-Poly1305 stay on offer.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites.sort_by_key(|s| {
        !matches!(
            s.suite(),
            CipherSuite::TLS13_AES_128_GCM_SHA256
                | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    Arc::new(p)
}

#[derive(Debug)]
struct Loaded {
    server: Option<Arc<ServerConfig>>,
    client: Arc<ClientConfig>,
    /// notAfter (unix seconds) of this side's certificate ("node" or
    /// "client") and of the CA's, as loaded.
    expiry: Vec<(&'static str, i64)>,
}

/// A DER certificate's notAfter, unix seconds.
fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

fn load(files: &TlsFiles) -> Result<Loaded, TlsError> {
    let roots = roots(&files.ca)?;
    let identity = match (&files.cert, &files.key) {
        (Some(c), Some(k)) => Some((certs(c)?, key(k)?)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(TlsError::Config(
                "a certificate needs its key (--tls-key)".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(TlsError::Config(
                "a key needs its certificate (--tls-cert)".into(),
            ));
        }
    };
    let mut expiry = Vec::new();
    if let Some((chain, _)) = &identity
        && let Some(first) = chain.first()
        && let Some(t) = not_after(first)
    {
        let role = match pki::grant(first) {
            Some(g) if g.role == pki::Role::Client => "client",
            _ => "node",
        };
        expiry.push((role, t));
    }
    if let Some(t) = certs(&files.ca)?.first().and_then(|c| not_after(c)) {
        expiry.push(("ca", t));
    }
    let cfg = |e: rustls::Error| TlsError::Config(e.to_string());
    let client_builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(cfg)?
        .with_root_certificates(Arc::clone(&roots));
    let mut client = match &identity {
        Some((c, k)) => client_builder
            .with_client_auth_cert(c.clone(), k.clone_key())
            .map_err(cfg)?,
        None => client_builder.with_no_client_auth(),
    };
    client.alpn_protocols = vec![H2.to_vec()];
    client.max_fragment_size = Some(MAX_FRAGMENT_BYTES);
    let server = match identity {
        Some((c, k)) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            let mut s = ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(cfg)?
                .with_client_cert_verifier(verifier)
                .with_single_cert(c, k)
                .map_err(cfg)?;
            s.alpn_protocols = vec![H2.to_vec()];
            s.max_fragment_size = Some(MAX_FRAGMENT_BYTES);
            Some(Arc::new(s))
        }
        None => None,
    };
    Ok(Loaded {
        server,
        client: Arc::new(client),
        expiry,
    })
}

/// Loaded TLS settings, shared by the server and every client of a process.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    files: TlsFiles,
    loaded: Arc<RwLock<Loaded>>,
}

impl TlsConfig {
    /// Reads `files`.
    ///
    /// # Errors
    /// A file is missing or malformed, or the key does not match the certificate.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let loaded = load(&files)?;
        Ok(Self {
            files,
            loaded: Arc::new(RwLock::new(loaded)),
        })
    }

    /// Re-reads the files; on error the previous certificates stay in use.
    ///
    /// # Errors
    /// As [`Self::load`].
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = load(&self.files)?;
        *self.loaded.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// The role and name this side's own certificate grants (`None` without a
    /// certificate, or one that does not parse).
    pub fn own_grant(&self) -> Option<pki::Grant> {
        let path = self.files.cert.as_ref()?;
        let first = certs(path).ok()?.into_iter().next()?;
        pki::grant(&first)
    }

    /// notAfter (unix seconds) of the certificates in use: this side's
    /// ("node" or "client") and the CA's.
    pub fn expiry(&self) -> Vec<(&'static str, i64)> {
        self.loaded
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .expiry
            .clone()
    }

    /// The files.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The server side (nodes have a certificate; a client-only config has none).
    pub fn server(&self) -> Option<Arc<ServerConfig>> {
        self.loaded
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .server
            .clone()
    }

    /// The client side.
    pub fn client(&self) -> Arc<ClientConfig> {
        Arc::clone(
            &self
                .loaded
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .client,
        )
    }
}

/// The subject of a DER certificate, e.g. `CN=alice, O=ops`.
pub fn subject(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.subject().to_string())
}

#[cfg(test)]
mod expiry_tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    #[test]
    fn the_certificates_in_use_report_when_they_expire() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = SystemTime::now();
        let ca = pki::new_ca("test CA", 30, now).expect("ca");
        let spec = pki::LeafSpec {
            role: pki::Role::Node,
            name: "edge-7".into(),
            ips: Vec::new(),
            dns: Vec::new(),
            days: 2,
        };
        let leaf = pki::issue(&ca.cert_pem, &ca.key_pem, &spec, now).expect("leaf");
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).expect("write");
            p
        };
        let files = TlsFiles {
            cert: Some(write("node.pem", &leaf.cert_pem)),
            key: Some(write("node-key.pem", &leaf.key_pem)),
            ca: write("ca.pem", &ca.cert_pem),
        };
        let tls = TlsConfig::load(files).expect("load");
        let unix = |d: u64| {
            i64::try_from(
                (now + Duration::from_secs(d * 86_400))
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .expect("epoch")
                    .as_secs(),
            )
            .expect("i64")
        };
        let expiry = tls.expiry();
        let near = |role: &str, days: u64| {
            expiry
                .iter()
                .find(|(r, _)| *r == role)
                .is_some_and(|(_, t)| (t - unix(days)).abs() < 2 * 3600)
        };
        assert!(near("node", 2), "{expiry:?}");
        assert!(near("ca", 30), "{expiry:?}");
    }
}
