//! Security settings: the admin token (flag, variable, or a file named in the
//! config's `gsp.security` section) and whether reads need it too.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::reader::Reader;
use crate::transport::{
    auth::{AdminAuth, validate_token},
    tls::{
        TlsFiles,
        pki::{Grant, Role},
    },
};

const SECURITY_KEYS: &[&str] = &[
    "admin_token_file",
    "require_token_for_reads",
    "gossip_rate_limit",
    "query_rate_limit",
    "tls_cert",
    "tls_key",
    "tls_ca",
    "insecure",
];

/// `gsp.security` in the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityFile {
    /// `gsp.security.admin_token_file`.
    pub admin_token_file: Option<PathBuf>,
    /// `gsp.security.require_token_for_reads`.
    pub require_token_for_reads: Option<bool>,
    /// `gsp.security.insecure`.
    pub insecure: Option<bool>,
    /// `gsp.security.gossip_rate_limit`: gossip calls per second per peer.
    pub gossip_rate_limit: Option<usize>,
    /// `gsp.security.query_rate_limit`: queries per second per peer.
    pub query_rate_limit: Option<usize>,
    /// `gsp.security.tls_cert`.
    pub tls_cert: Option<PathBuf>,
    /// `gsp.security.tls_key`.
    pub tls_key: Option<PathBuf>,
    /// `gsp.security.tls_ca`.
    pub tls_ca: Option<PathBuf>,
}

/// What the flags and environment said.
#[derive(Clone, Default)]
pub struct SecurityFlags {
    /// `--admin-token` / GSP_ADMIN_TOKEN.
    pub admin_token: Option<String>,
    /// `--admin-token-file` / GSP_ADMIN_TOKEN_FILE.
    pub admin_token_file: Option<PathBuf>,
    /// `--require-token-for-reads`.
    pub require_token_for_reads: bool,
    /// `--gossip-rate-limit`.
    pub gossip_rate_limit: Option<usize>,
    /// `--query-rate-limit`.
    pub query_rate_limit: Option<usize>,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `--tls-ca`.
    pub tls_ca: Option<PathBuf>,
    /// `--insecure`.
    pub insecure: bool,
}

/// Resolved security settings.
#[derive(Debug, Clone)]
pub struct Security {
    /// Admin token checks.
    pub auth: AdminAuth,
    /// Gossip calls per second per peer (`None`: the default for the gossip
    /// interval; 0: off).
    pub gossip_rate_limit: Option<usize>,
    /// Queries per second per peer (`None`: the default; 0: off).
    pub query_rate_limit: Option<usize>,
    /// Mutual TLS files (`None`: plaintext).
    pub tls: Option<TlsFiles>,
    /// Plaintext on a reachable address on purpose: no warning.
    pub insecure: bool,
}

impl std::fmt::Debug for SecurityFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityFlags")
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("admin_token_file", &self.admin_token_file)
            .field("require_token_for_reads", &self.require_token_for_reads)
            .field("gossip_rate_limit", &self.gossip_rate_limit)
            .field("query_rate_limit", &self.query_rate_limit)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("tls_ca", &self.tls_ca)
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// Reads `gsp.security`.
pub(super) fn read(r: &mut Reader, v: &Value) -> SecurityFile {
    let Some(m) = r.map(v, "gsp.security") else {
        return SecurityFile::default();
    };
    check_keys(r, m);
    SecurityFile {
        admin_token_file: r
            .string(m.get("admin_token_file"), "gsp.security.admin_token_file")
            .map(PathBuf::from),
        require_token_for_reads: r.bool(
            m.get("require_token_for_reads"),
            "gsp.security.require_token_for_reads",
        ),
        insecure: r.bool(m.get("insecure"), "gsp.security.insecure"),
        gossip_rate_limit: r.count(m.get("gossip_rate_limit"), "gsp.security.gossip_rate_limit"),
        query_rate_limit: r.count(m.get("query_rate_limit"), "gsp.security.query_rate_limit"),
        tls_cert: r
            .string(m.get("tls_cert"), "gsp.security.tls_cert")
            .map(PathBuf::from),
        tls_key: r
            .string(m.get("tls_key"), "gsp.security.tls_key")
            .map(PathBuf::from),
        tls_ca: r
            .string(m.get("tls_ca"), "gsp.security.tls_ca")
            .map(PathBuf::from),
    }
}

fn check_keys(r: &mut Reader, m: &Map<String, Value>) {
    for k in m.keys() {
        if !SECURITY_KEYS.contains(&k.as_str()) {
            r.unknown(&format!("gsp.security.{k}"), k, SECURITY_KEYS);
        }
    }
}

/// The node's admin auth: flag or variable token, else the token file (flag,
/// then config). Reads with `require_token_for_reads` need it too.
///
/// # Errors
/// Every problem found: an unreadable or empty token file, a malformed token,
/// reads required without a token.
pub fn resolve(flags: SecurityFlags, file: &SecurityFile) -> Result<Security, Vec<String>> {
    let mut problems = Vec::new();
    let token = match (flags.admin_token, flags.admin_token_file.as_deref()) {
        (Some(t), _) => validate_token(&t)
            .map_err(|e| problems.push(format!("--admin-token / GSP_ADMIN_TOKEN: {e}")))
            .ok(),
        (None, Some(path)) => read_token(path, "--admin-token-file", &mut problems),
        (None, None) => file
            .admin_token_file
            .as_deref()
            .and_then(|p| read_token(p, "gsp.security.admin_token_file", &mut problems)),
    };
    let reads = flags.require_token_for_reads || file.require_token_for_reads.unwrap_or(false);
    if reads && token.is_none() && problems.is_empty() {
        problems.push(
            "--require-token-for-reads needs an admin token (--admin-token-file, \
             GSP_ADMIN_TOKEN or gsp.security.admin_token_file)"
                .to_owned(),
        );
    }
    let tls = node_tls(
        flags.tls_cert.or_else(|| file.tls_cert.clone()),
        flags.tls_key.or_else(|| file.tls_key.clone()),
        flags.tls_ca.or_else(|| file.tls_ca.clone()),
        &mut problems,
    );
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Security {
        tls,
        insecure: flags.insecure || file.insecure.unwrap_or(false),
        auth: token.map_or_else(AdminAuth::open, |t| AdminAuth::with_token(&t, reads)),
        gossip_rate_limit: flags.gossip_rate_limit.or(file.gossip_rate_limit),
        query_rate_limit: flags.query_rate_limit.or(file.query_rate_limit),
    })
}

/// The node's name when its certificate names it (`gsp tls cert --node NAME`):
/// the certificate is the identity, so `--name` may only repeat it. `None`:
/// the certificate names no node (a cluster's own PKI); the name is free.
///
/// # Errors
/// The certificate is a client's, or `--name` differs from its name.
pub fn node_name_from_cert(
    flag: Option<&str>,
    grant: Option<&Grant>,
) -> Result<Option<String>, String> {
    let Some(grant) = grant else {
        return Ok(None);
    };
    if grant.role == Role::Client {
        return Err(format!(
            "--tls-cert is a client certificate ({}); a node needs one made with `gsp tls cert --node NAME`",
            grant.name.as_deref().unwrap_or("unnamed")
        ));
    }
    match (&grant.name, flag) {
        (Some(cert), Some(flag)) if cert != flag => Err(format!(
            "--name {flag} does not match the node name in --tls-cert ({cert}); drop --name or use that node's certificate"
        )),
        (name, _) => Ok(name.clone()),
    }
}

/// A node serves TLS with all three files or none.
fn node_tls(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
    problems: &mut Vec<String>,
) -> Option<TlsFiles> {
    match (cert, key, ca) {
        (None, None, None) => None,
        (Some(cert), Some(key), Some(ca)) => Some(TlsFiles {
            cert: Some(cert),
            key: Some(key),
            ca,
        }),
        (cert, key, ca) => {
            let missing: Vec<&str> = [
                (cert.is_none(), "--tls-cert"),
                (key.is_none(), "--tls-key"),
                (ca.is_none(), "--tls-ca"),
            ]
            .into_iter()
            .filter_map(|(m, name)| m.then_some(name))
            .collect();
            problems.push(format!(
                "TLS needs a certificate, its key and the cluster's CA; missing {} (or \
                 gsp.security.tls_*)",
                missing.join(", ")
            ));
            None
        }
    }
}

fn read_token(path: &Path, key: &str, problems: &mut Vec<String>) -> Option<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            problems.push(format!("{key}: cannot read {}: {e}", path.display()));
            return None;
        }
    };
    warn_if_readable_by_others(path);
    validate_token(&text)
        .map_err(|e| problems.push(format!("{key}: {}: {e}", path.display())))
        .ok()
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            file = %path.display(),
            "the admin token file is readable by group or others; chmod 600 it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_file_and_files_are_trimmed() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("token");
        std::fs::write(&path, "from-file\n").expect("write");
        let file = SecurityFile {
            admin_token_file: Some(path.clone()),
            ..SecurityFile::default()
        };
        let s = resolve(SecurityFlags::default(), &file).expect("file token");
        assert!(s.auth.has_token());
        let flags = SecurityFlags {
            admin_token: Some("flag".into()),
            ..SecurityFlags::default()
        };
        assert!(resolve(flags, &file).expect("flag").auth.has_token());
        assert!(
            !resolve(SecurityFlags::default(), &SecurityFile::default())
                .expect("open")
                .auth
                .has_token()
        );
    }

    #[test]
    fn bad_token_sources_are_named() {
        let missing = SecurityFlags {
            admin_token_file: Some("/nonexistent/gsp-token".into()),
            ..SecurityFlags::default()
        };
        let err = resolve(missing, &SecurityFile::default()).expect_err("missing");
        assert!(err[0].contains("/nonexistent/gsp-token"), "{err:?}");
        let empty = SecurityFlags {
            admin_token: Some("  ".into()),
            ..SecurityFlags::default()
        };
        let err = resolve(empty, &SecurityFile::default()).expect_err("empty");
        assert!(err[0].contains("empty"), "{err:?}");
        let reads = SecurityFlags {
            require_token_for_reads: true,
            ..SecurityFlags::default()
        };
        let err = resolve(reads, &SecurityFile::default()).expect_err("no token");
        assert!(err[0].contains("--require-token-for-reads"), "{err:?}");
    }
}
