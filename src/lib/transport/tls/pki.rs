//! The cluster's certificates: a CA, node certificates and client certificates
//! (`gsp tls`), and the role a verified certificate grants.
//!
//! A certificate names its holder and role in a SAN URI: `gsp://node/NAME` or
//! `gsp://client/NAME`. Node certificates are valid for TLS servers and clients
//! (a node serves and dials); client certificates only for TLS clients, so a
//! client certificate cannot even serve as a node. A verified certificate
//! without a gsp URI (a cluster's own PKI) counts as a node's, as before roles
//! existed.

use std::{net::IpAddr, time::SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// URI scheme and authority prefix of a role SAN.
const URI_PREFIX: &str = "gsp://";

/// What a certificate allows its holder to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A node: every plane (membership, data plane, admin).
    Node,
    /// A client (the CLI, scripts): admin and read calls only.
    Client,
}

impl Role {
    /// `node` or `client`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Node => "node",
            Self::Client => "client",
        }
    }
}

/// The role and name a verified certificate grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Node or client.
    pub role: Role,
    /// The holder's name, from the role URI; `None` for a certificate without
    /// one (treated as a node's).
    pub name: Option<String>,
}

/// A problem issuing a certificate.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A name that cannot be used in file names and URIs.
    #[error("invalid name {0:?}: use letters, digits, '.', '_' and '-' (at most 64)")]
    Name(String),
    /// rcgen refused (bad key, unparsable CA certificate, ...).
    #[error("{0}")]
    Rcgen(#[from] rcgen::Error),
}

/// A certificate and its private key, PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

/// Checks a node or client name (it becomes part of file names and a URI).
///
/// # Errors
/// Empty, too long, or with other characters than `[A-Za-z0-9._-]`.
pub fn check_name(name: &str) -> Result<(), PkiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(PkiError::Name(name.to_owned()))
    }
}

fn validity(params: &mut CertificateParams, now: SystemTime, days: u32) {
    let start = time::OffsetDateTime::from(now) - time::Duration::hours(1);
    params.not_before = start;
    params.not_after = start + time::Duration::days(i64::from(days));
}

/// A new self-signed cluster CA named `name`, valid for `days` from `now`.
///
/// # Errors
/// Key generation failed (rcgen).
pub fn new_ca(name: &str, days: u32, now: SystemTime) -> Result<Issued, PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.distinguished_name.push(DnType::CommonName, name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "gsp");
    validity(&mut params, now, days);
    let cert = params.self_signed(&key)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// What a leaf certificate is for.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    /// Node or client.
    pub role: Role,
    /// The holder's name (see [`check_name`]).
    pub name: String,
    /// IP addresses peers dial (nodes); 127.0.0.1 and ::1 are always added.
    pub ips: Vec<IpAddr>,
    /// DNS names peers dial (nodes); `localhost` is always added.
    pub dns: Vec<String>,
    /// Validity in days.
    pub days: u32,
}

/// A leaf certificate for `spec`, signed by the CA in `ca_cert_pem` /
/// `ca_key_pem`.
///
/// # Errors
/// The name is invalid, or the CA files do not parse (rcgen).
pub fn issue(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    spec: &LeafSpec,
    now: SystemTime,
) -> Result<Issued, PkiError> {
    check_name(&spec.name)?;
    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, &spec.name);
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, spec.role.as_str());
    let uri = format!("{URI_PREFIX}{}/{}", spec.role.as_str(), spec.name);
    params.subject_alt_names.push(SanType::URI(uri.try_into()?));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    match spec.role {
        Role::Node => {
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let mut ips = vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ];
            for ip in &spec.ips {
                if !ips.contains(ip) {
                    ips.push(*ip);
                }
            }
            for ip in ips {
                params.subject_alt_names.push(SanType::IpAddress(ip));
            }
            let mut dns = vec!["localhost".to_owned()];
            dns.extend(spec.dns.iter().filter(|d| *d != "localhost").cloned());
            for d in dns {
                params
                    .subject_alt_names
                    .push(SanType::DnsName(d.as_str().try_into()?));
            }
        }
        Role::Client => {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
    }
    validity(&mut params, now, spec.days);
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The role a verified DER certificate grants: from its `gsp://ROLE/NAME` URI,
/// else a node's (a cluster's own PKI without roles). `None` if it does not
/// parse.
pub fn grant(der: &[u8]) -> Option<Grant> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let uris: Vec<&str> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::URI(u) => Some(*u),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    for u in uris {
        let Some(rest) = u.strip_prefix(URI_PREFIX) else {
            continue;
        };
        let (role, name) = rest.split_once('/')?;
        // Any other role (a typo, a future one) grants nothing a node has.
        let role = if role == "node" {
            Role::Node
        } else {
            Role::Client
        };
        return Some(Grant {
            role,
            name: Some(name.to_owned()),
        });
    }
    Some(Grant {
        role: Role::Node,
        name: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(pem: &str) -> Vec<u8> {
        use rustls_pki_types::{CertificateDer, pem::PemObject as _};
        CertificateDer::from_pem_slice(pem.as_bytes())
            .expect("pem")
            .to_vec()
    }

    #[test]
    fn issued_certificates_carry_their_role_and_name() {
        let now = SystemTime::now();
        let ca = new_ca("test CA", 10, now).expect("ca");
        let spec = |role, name: &str| LeafSpec {
            role,
            name: name.into(),
            ips: vec![IpAddr::from([10, 0, 0, 7])],
            dns: vec!["edge-7".into()],
            days: 1,
        };
        let node =
            issue(&ca.cert_pem, &ca.key_pem, &spec(Role::Node, "edge-7"), now).expect("node");
        let client =
            issue(&ca.cert_pem, &ca.key_pem, &spec(Role::Client, "alice"), now).expect("client");
        assert_eq!(
            grant(&der(&node.cert_pem)),
            Some(Grant {
                role: Role::Node,
                name: Some("edge-7".into())
            })
        );
        assert_eq!(
            grant(&der(&client.cert_pem)).map(|g| g.role),
            Some(Role::Client)
        );
        // A CA certificate has no role URI: it would count as a node's, but it
        // is never presented as a leaf.
        assert_eq!(grant(&der(&ca.cert_pem)).map(|g| g.name), Some(None));
    }

    #[test]
    fn names_that_would_escape_a_file_name_or_uri_are_refused() {
        for bad in ["", "../x", "a/b", "a b", ".hidden", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name("edge-7.eu_1").expect("fine");
    }
}
