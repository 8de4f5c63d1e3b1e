//! `gsp tls`: the cluster's PKI in two commands, like `consul tls ca create` and
//! `consul tls cert create`. `gsp tls ca` writes a CA; `gsp tls cert --node NAME`
//! or `--client NAME` writes a certificate it signs, naming the holder's role.
//! Files are written 0600 and never overwritten without `--force`.

use std::{
    io::Write as _,
    net::IpAddr,
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    time::SystemTime,
};

use anyhow::Context as _;
use serde::Serialize;

use super::{GlobalArgs, exit::ExitStatus, exit::UsageError, output};
use crate::transport::tls::pki::{self, Issued, LeafSpec, Role};

/// File name of the CA certificate.
const CA_CERT: &str = "gsp-ca.pem";
/// File name of the CA key.
const CA_KEY: &str = "gsp-ca-key.pem";

/// Arguments of `gsp tls`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  gsp tls ca                                   # gsp-ca.pem, gsp-ca-key.pem (keep the key offline)
  gsp tls cert --node edge-7 --ip 10.0.0.7     # edge-7-node.pem, edge-7-node-key.pem
  gsp tls cert --client alice                  # alice-client.pem, alice-client-key.pem
  gsp node --tls-ca gsp-ca.pem --tls-cert edge-7-node.pem --tls-key edge-7-node-key.pem
  gsp peers --tls-ca gsp-ca.pem --tls-cert alice-client.pem --tls-key alice-client-key.pem")]
pub(crate) struct TlsArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Create the cluster CA: gsp-ca.pem (give it to every node and client)
    /// and gsp-ca-key.pem (keep it safe: it signs new members).
    Ca(CaArgs),
    /// Create a node or client certificate signed by the CA.
    Cert(CertArgs),
}

#[derive(Debug, clap::Args)]
struct CaArgs {
    /// Directory to write to.
    #[arg(long, default_value = ".", value_name = "DIR")]
    dir: PathBuf,
    /// The CA's common name.
    #[arg(long, default_value = "gsp cluster CA", value_name = "NAME")]
    name: String,
    /// Validity in days.
    #[arg(long, default_value_t = 1825, value_parser = clap::value_parser!(u32).range(1..=36500))]
    days: u32,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("role").required(true).args(["node", "client"])))]
struct CertArgs {
    /// A node certificate (serves and dials; may call every plane) for NAME.
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// A client certificate (CLI and scripts: admin and read calls only) for NAME.
    #[arg(long, value_name = "NAME")]
    client: Option<String>,
    /// An IP address peers dial this node at (repeatable; 127.0.0.1 and ::1
    /// are always included).
    #[arg(long, value_name = "IP")]
    ip: Vec<IpAddr>,
    /// A DNS name peers dial this node at (repeatable; localhost is always
    /// included).
    #[arg(long, value_name = "NAME")]
    dns: Vec<String>,
    /// Directory to write to (and to find the CA in, unless --ca/--ca-key).
    #[arg(long, default_value = ".", value_name = "DIR")]
    dir: PathBuf,
    /// The CA certificate [default: DIR/gsp-ca.pem].
    #[arg(long, value_name = "PEM")]
    ca: Option<PathBuf>,
    /// The CA key [default: DIR/gsp-ca-key.pem].
    #[arg(long, value_name = "PEM")]
    ca_key: Option<PathBuf>,
    /// Validity in days.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36500))]
    days: u32,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
}

/// One file written, in `gsp.tls.v1`.
#[derive(Debug, Serialize)]
struct Written {
    path: String,
    kind: &'static str,
}

/// What `gsp tls --json` prints.
#[derive(Debug, Serialize)]
struct Printed {
    schema: &'static str,
    /// `ca`, `node` or `client`.
    role: &'static str,
    name: String,
    files: Vec<Written>,
    days: u32,
}

pub(crate) fn run(args: TlsArgs, global: &GlobalArgs) -> anyhow::Result<ExitStatus> {
    let printed = match args.action {
        Action::Ca(a) => ca(a)?,
        Action::Cert(a) => cert(a)?,
    };
    if global.json {
        output::json(&printed)?;
    } else {
        for f in &printed.files {
            output::stdout(&format!("wrote {} ({})\n", f.path, f.kind))?;
        }
    }
    Ok(ExitStatus::Success)
}

fn ca(a: CaArgs) -> anyhow::Result<Printed> {
    create_dir(&a.dir)?;
    let cert = a.dir.join(CA_CERT);
    let key = a.dir.join(CA_KEY);
    refuse_overwrite(&[&cert, &key], a.force)?;
    let issued = pki::new_ca(&a.name, a.days, SystemTime::now())?;
    Ok(Printed {
        schema: "gsp.tls.v1",
        role: "ca",
        name: a.name,
        files: write_pair(&issued, &cert, &key, "CA certificate", "CA key")?,
        days: a.days,
    })
}

fn cert(a: CertArgs) -> anyhow::Result<Printed> {
    let (role, name) = match (a.node, a.client) {
        (Some(n), _) => (Role::Node, n),
        (None, Some(c)) => (Role::Client, c),
        (None, None) => return Err(UsageError("pass --node NAME or --client NAME".into()).into()),
    };
    pki::check_name(&name).map_err(|e| UsageError(e.to_string()))?;
    if role == Role::Client && !(a.ip.is_empty() && a.dns.is_empty()) {
        return Err(UsageError("--ip and --dns are for node certificates".into()).into());
    }
    let ca_cert = a.ca.unwrap_or_else(|| a.dir.join(CA_CERT));
    let ca_key = a.ca_key.unwrap_or_else(|| a.dir.join(CA_KEY));
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| {
            UsageError(format!(
                "cannot read {}: {e} (create the CA with `gsp tls ca`, or pass --ca/--ca-key)",
                p.display()
            ))
        })
    };
    let (ca_pem, key_pem) = (read(&ca_cert)?, read(&ca_key)?);
    create_dir(&a.dir)?;
    let stem = format!("{name}-{}", role.as_str());
    let cert = a.dir.join(format!("{stem}.pem"));
    let key = a.dir.join(format!("{stem}-key.pem"));
    refuse_overwrite(&[&cert, &key], a.force)?;
    let spec = LeafSpec {
        role,
        name: name.clone(),
        ips: a.ip,
        dns: a.dns,
        days: a.days,
    };
    let issued = pki::issue(&ca_pem, &key_pem, &spec, SystemTime::now()).with_context(|| {
        format!(
            "signing with {} and {}",
            ca_cert.display(),
            ca_key.display()
        )
    })?;
    let kind = match role {
        Role::Node => ("node certificate", "node key"),
        Role::Client => ("client certificate", "client key"),
    };
    Ok(Printed {
        schema: "gsp.tls.v1",
        role: role.as_str(),
        name,
        files: write_pair(&issued, &cert, &key, kind.0, kind.1)?,
        days: a.days,
    })
}

/// Creates `dir` (and its parents) if missing, readable by its owner only:
/// it holds private keys.
fn create_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

fn refuse_overwrite(paths: &[&Path], force: bool) -> anyhow::Result<()> {
    if force {
        return Ok(());
    }
    for p in paths {
        if p.exists() {
            return Err(UsageError(format!(
                "{} exists; not overwriting it (pass --force to replace it)",
                p.display()
            ))
            .into());
        }
    }
    Ok(())
}

fn write_pair(
    issued: &Issued,
    cert: &Path,
    key: &Path,
    cert_kind: &'static str,
    key_kind: &'static str,
) -> anyhow::Result<Vec<Written>> {
    write_file(key, &issued.key_pem, 0o600)?;
    // A certificate is public: every node and client reads the CA's.
    write_file(cert, &issued.cert_pem, 0o644)?;
    Ok(vec![
        Written {
            path: cert.display().to_string(),
            kind: cert_kind,
        },
        Written {
            path: key.display().to_string(),
            kind: key_kind,
        },
    ])
}

/// Writes `text` to `path` with permissions `mode` (also when replacing a
/// file).
fn write_file(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}
