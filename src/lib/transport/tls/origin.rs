//! Broadcasts signed by their origin. With mutual TLS, a payload that arrives
//! straight from its origin is authenticated by the connection; one relayed by
//! another node (a pull, a catch-up) is not, so the origin signs each broadcast
//! with its node key and sends its certificate along. A receiver accepts a
//! relayed payload only when the certificate chains to the cluster's CA, names
//! the origin as a node (`gsp://node/NAME`, NAME the origin's member name), and
//! its key signed this message's id, origin, topic, creation time and payload
//! (SHA-256). A compromised member can relay, but not forge another's broadcast.

use std::sync::Arc;

use bytes::Bytes;
use ring::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair},
};
use rustls::server::{WebPkiClientVerifier, danger::ClientCertVerifier};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime, pem::PemObject as _};
use sha2::{Digest as _, Sha256};

use super::{
    TlsConfig,
    pki::{self, Role},
};
use crate::core::{
    membership::record::{MemberRecord, RecordSigner},
    message::{MessageMeta, OriginAuth},
};

/// What the signature covers, after this prefix (so it can never be mistaken
/// for a signature over anything else).
const CONTEXT: &[u8] = b"gsp broadcast origin v1\0";

fn signed_bytes(meta: &MessageMeta, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(CONTEXT.len() + 16 + meta.origin.as_str().len() + 64);
    v.extend_from_slice(CONTEXT);
    v.extend_from_slice(meta.id.as_bytes());
    v.extend_from_slice(meta.origin.as_str().as_bytes());
    v.push(0);
    v.extend_from_slice(meta.topic.as_bytes());
    v.push(0);
    v.extend_from_slice(&meta.created_unix_ns.to_be_bytes());
    v.extend_from_slice(&Sha256::digest(payload));
    v
}

/// Signs this node's broadcasts.
pub struct OriginSigner {
    key: EcdsaKeyPair,
    certificate: Bytes,
    rng: SystemRandom,
}

impl std::fmt::Debug for OriginSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginSigner").finish_non_exhaustive()
    }
}

impl OriginSigner {
    /// The signer for the node certificate and key in `tls`; `None` when there
    /// is no certificate or the key is not ECDSA P-256 (what `gsp tls` makes).
    pub fn from_tls(tls: &TlsConfig) -> Option<Self> {
        let files = tls.files();
        let cert = CertificateDer::pem_file_iter(files.cert.as_ref()?)
            .ok()?
            .next()?
            .ok()?;
        let PrivateKeyDer::Pkcs8(der) = PrivateKeyDer::from_pem_file(files.key.as_ref()?).ok()?
        else {
            return None;
        };
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            der.secret_pkcs8_der(),
            &rng,
        )
        .ok()?;
        Some(Self {
            key,
            certificate: Bytes::copy_from_slice(&cert),
            rng,
        })
    }

    /// The signature of a broadcast this node originates.
    pub fn sign(&self, meta: &MessageMeta, payload: &[u8]) -> Option<OriginAuth> {
        let sig = self
            .key
            .sign(&self.rng, &signed_bytes(meta, payload))
            .ok()?;
        Some(OriginAuth {
            signature: Bytes::copy_from_slice(sig.as_ref()),
            certificate: self.certificate.clone(),
        })
    }
}

/// Checks relayed broadcasts against the cluster's CA.
#[derive(Clone)]
pub struct OriginVerifier {
    chain: Arc<dyn ClientCertVerifier>,
}

impl std::fmt::Debug for OriginVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginVerifier").finish_non_exhaustive()
    }
}

impl OriginVerifier {
    /// A verifier trusting the CA of `tls`.
    ///
    /// # Errors
    /// The CA file cannot be read.
    pub fn from_tls(tls: &TlsConfig) -> Result<Self, super::TlsError> {
        let roots = super::roots(&tls.files().ca)?;
        let chain = WebPkiClientVerifier::builder_with_provider(roots, super::provider())
            .build()
            .map_err(|e| super::TlsError::Config(e.to_string()))?;
        Ok(Self { chain })
    }

    /// Whether `auth` proves that `origin_name` (the origin's member name)
    /// created this message with this payload.
    ///
    /// # Errors
    /// Why not, in words for the rejection.
    pub fn verify(
        &self,
        meta: &MessageMeta,
        payload: &[u8],
        auth: Option<&OriginAuth>,
        origin_name: Option<&str>,
    ) -> Result<(), String> {
        let Some(auth) = auth else {
            return Err(format!(
                "broadcast from {} is not signed by its origin",
                meta.origin
            ));
        };
        self.check(auth, &signed_bytes(meta, payload), origin_name, "origin")
            .map_err(|e| format!("{e} (broadcast {})", meta.id))
    }

    /// Whether a member's alive or left record carries that member's own
    /// signature (other states are claims by others, which cannot raise a
    /// version and are not signed).
    ///
    /// # Errors
    /// Why not, in words for the log.
    pub fn verify_record(&self, record: &MemberRecord) -> Result<(), String> {
        let Some(proof) = &record.proof else {
            return Err(format!("record of {} is not signed by it", record.id));
        };
        self.check(
            proof,
            &record_signed_bytes(record),
            Some(&record.name),
            "member",
        )
        .map_err(|e| format!("{e} (record of {})", record.id))
    }

    /// The certificate in `auth` chains to the CA, is a node certificate named
    /// `name`, and its key signed `signed`.
    fn check(
        &self,
        auth: &OriginAuth,
        signed: &[u8],
        name: Option<&str>,
        what: &str,
    ) -> Result<(), String> {
        let cert = CertificateDer::from(auth.certificate.as_ref());
        self.chain
            .verify_client_cert(&cert, &[], UnixTime::now())
            .map_err(|e| format!("{what} certificate refused: {e}"))?;
        let grant = pki::grant(&cert).ok_or(format!("{what} certificate does not parse"))?;
        let Some(name) = name else {
            return Err(format!("the {what} is not a member known here"));
        };
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert)
            .map_err(|e| format!("{what} certificate does not parse: {e}"))?;
        // A certificate without a gsp role URI (a cluster's own PKI) names its
        // node by its common name.
        let common_name = parsed
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok());
        let named = grant.name.as_deref().or(common_name);
        if grant.role != Role::Node || named != Some(name) {
            return Err(format!(
                "{what} certificate is not node {name}'s (it names {})",
                named.unwrap_or("no node")
            ));
        }
        let key = parsed.public_key().subject_public_key.data.as_ref();
        ring::signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key)
            .verify(signed, &auth.signature)
            .map_err(|_| format!("bad {what} signature"))
    }
}

impl RecordSigner for OriginSigner {
    fn sign_record(&self, record: &MemberRecord) -> Option<OriginAuth> {
        let sig = self
            .key
            .sign(&self.rng, &record_signed_bytes(record))
            .ok()?;
        Some(OriginAuth {
            signature: Bytes::copy_from_slice(sig.as_ref()),
            certificate: self.certificate.clone(),
        })
    }
}

/// What a member signs about itself: every field it authors, in a fixed
/// order, each length-prefixed (so no two records share their bytes).
fn record_signed_bytes(r: &MemberRecord) -> Vec<u8> {
    fn put(v: &mut Vec<u8>, b: &[u8]) {
        v.extend_from_slice(&(b.len() as u64).to_be_bytes());
        v.extend_from_slice(b);
    }
    let mut v = Vec::with_capacity(256);
    v.extend_from_slice(b"gsp member record v1\0");
    for text in [
        r.id.as_str(),
        &r.name,
        &r.address,
        &r.domain,
        r.state.as_str(),
        r.maintenance.as_str(),
        &r.scheduler_address,
    ] {
        put(&mut v, text.as_bytes());
    }
    for n in [
        r.version.incarnation,
        r.version.counter,
        u64::from(r.protocol),
        r.updated_unix_ns.cast_unsigned(),
    ] {
        v.extend_from_slice(&n.to_be_bytes());
    }
    match &r.capacity {
        Some(c) => {
            v.push(1);
            for a in [c.total, c.used, c.available] {
                for n in [a.cpu_millis, a.memory_bytes, a.gpus] {
                    v.extend_from_slice(&n.to_be_bytes());
                }
            }
        }
        None => v.push(0),
    }
    v.extend([r.tags.cpu, r.tags.gpu, r.tags.memory, r.tags.camera].map(u8::from));
    v.extend_from_slice(&(r.gpus.len() as u64).to_be_bytes());
    for g in &r.gpus {
        put(&mut v, g.name.as_bytes());
        v.extend_from_slice(&g.memory_total_bytes.to_be_bytes());
        v.extend_from_slice(&g.memory_used_bytes.to_be_bytes());
        v.extend_from_slice(&g.utilization_pct.to_be_bytes());
        v.extend_from_slice(&g.index.to_be_bytes());
        put(&mut v, g.uuid.as_bytes());
        put(&mut v, g.mig_parent.as_bytes());
        v.extend_from_slice(&g.processes.to_be_bytes());
        v.extend_from_slice(&g.foreign_processes.to_be_bytes());
        v.extend([g.busy, g.held].map(u8::from));
    }
    v.extend_from_slice(&(r.labels.len() as u64).to_be_bytes());
    for (k, val) in &r.labels {
        put(&mut v, k.as_bytes());
        put(&mut v, val.as_bytes());
    }
    // Appended only when set, so the records of nodes without --exec sign
    // the same bytes as before the field existed.
    if r.exec {
        put(&mut v, b"exec");
    }
    v
}

#[cfg(test)]
mod tests {
    use std::{path::Path, time::SystemTime};

    use super::*;
    use crate::{
        core::{ids::NodeId, message::OutboundMessage},
        transport::tls::{
            TlsFiles,
            pki::{LeafSpec, new_ca},
        },
    };

    /// A CA in `dir` and node certificates for `names`, loaded.
    fn cluster(dir: &Path, ca_name: &str, names: &[&str]) -> Vec<TlsConfig> {
        let now = SystemTime::now();
        let ca = new_ca(ca_name, 1, now).unwrap();
        let ca_path = dir.join(format!("{ca_name}.pem"));
        std::fs::write(&ca_path, &ca.cert_pem).unwrap();
        names
            .iter()
            .map(|n| {
                let spec = LeafSpec {
                    role: Role::Node,
                    name: (*n).to_owned(),
                    ips: vec![],
                    dns: vec![],
                    days: 1,
                };
                let leaf = pki::issue(&ca.cert_pem, &ca.key_pem, &spec, now).unwrap();
                let cert = dir.join(format!("{ca_name}-{n}.pem"));
                let key = dir.join(format!("{ca_name}-{n}-key.pem"));
                std::fs::write(&cert, &leaf.cert_pem).unwrap();
                std::fs::write(&key, &leaf.key_pem).unwrap();
                TlsConfig::load(TlsFiles {
                    cert: Some(cert),
                    key: Some(key),
                    ca: ca_path.clone(),
                })
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn only_the_origins_own_signature_over_this_payload_passes() {
        let dir = tempfile::tempdir().unwrap();
        let tls = cluster(dir.path(), "ca", &["a", "b"]);
        let other = cluster(dir.path(), "other", &["a"]);
        let verifier = OriginVerifier::from_tls(&tls[0]).unwrap();
        let msg = OutboundMessage::new(
            NodeId::parse("node-a").unwrap(),
            "deploy",
            Bytes::from_static(b"v42"),
            7,
        );
        let signer_a = OriginSigner::from_tls(&tls[0]).unwrap();
        let auth = signer_a.sign(&msg.meta, &msg.payload).unwrap();
        let check = |payload: &[u8], auth: Option<&OriginAuth>, name: &str| {
            verifier.verify(&msg.meta, payload, auth, Some(name))
        };
        check(b"v42", Some(&auth), "a").unwrap();
        // Another member's name, a changed payload, no signature at all.
        assert!(
            check(b"v42", Some(&auth), "b")
                .unwrap_err()
                .contains("not node b's")
        );
        assert!(
            check(b"v43", Some(&auth), "a")
                .unwrap_err()
                .contains("bad origin signature")
        );
        assert!(check(b"v42", None, "a").unwrap_err().contains("not signed"));
        // b signing a's message, and a certificate from another CA.
        let by_b = OriginSigner::from_tls(&tls[1])
            .unwrap()
            .sign(&msg.meta, &msg.payload);
        assert!(check(b"v42", by_b.as_ref(), "a").is_err());
        let foreign = OriginSigner::from_tls(&other[0])
            .unwrap()
            .sign(&msg.meta, &msg.payload);
        assert!(
            check(b"v42", foreign.as_ref(), "a")
                .unwrap_err()
                .contains("certificate refused")
        );
        // a's certificate with b's signature over the same bytes.
        let spliced = OriginAuth {
            signature: by_b.unwrap().signature,
            certificate: auth.certificate.clone(),
        };
        assert!(check(b"v42", Some(&spliced), "a").is_err());
    }
}
