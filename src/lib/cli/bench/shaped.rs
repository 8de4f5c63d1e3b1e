//! `gsp bench broadcast --shaped RATE`: one broadcast at a time to hosts in
//! network namespaces whose links are shaped to RATE, timed against the
//! per-host floor S/R. Runs `scripts/bench-broadcast-netns.sh` (built into the
//! binary, with the `netns-cluster.sh` it drives) with this binary as the nodes'
//! `gsp`. Root only, Linux only.

use std::{path::Path, process::Command};

use anyhow::Context as _;

use super::BenchArgs;
use crate::cli::exit::{ExitStatus, UsageError};

const NETNS_CLUSTER: &str = include_str!("../../../../scripts/netns-cluster.sh");
const BENCH_SCRIPT: &str = include_str!("../../../../scripts/bench-broadcast-netns.sh");

/// Hosts when `--nodes` is not given.
const DEFAULT_HOSTS: usize = 16;

pub(super) fn run(args: &BenchArgs, rate: &str) -> anyhow::Result<ExitStatus> {
    if !rate
        .trim_end_matches("bit")
        .trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G'])
        .parse::<f64>()
        .is_ok_and(|r| r > 0.0)
    {
        return Err(UsageError(format!(
            "--shaped takes a link rate such as 200mbit or 1gbit, got {rate:?}"
        ))
        .into());
    }
    let hosts = args.nodes.unwrap_or(DEFAULT_HOSTS);
    if hosts < 2 {
        return Err(UsageError(format!("--shaped needs at least 2 --nodes, got {hosts}")).into());
    }
    // A fresh directory of our own (create_dir fails if the name exists, so a
    // path planted in the shared temp dir is never written through).
    let dir = std::env::temp_dir().join(format!(
        "gsp-bench-shaped-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let result = run_in(&dir, args, rate, hosts);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(dir: &Path, args: &BenchArgs, rate: &str, hosts: usize) -> anyhow::Result<ExitStatus> {
    let scripts = dir.join("scripts");
    std::fs::create_dir(&scripts)
        .with_context(|| format!("cannot create {}", scripts.display()))?;
    for (name, text) in [
        ("netns-cluster.sh", NETNS_CLUSTER),
        ("bench-broadcast-netns.sh", BENCH_SCRIPT),
    ] {
        let path = scripts.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .with_context(|| format!("cannot make {} executable", path.display()))?;
    }
    let exe = std::env::current_exe().context("cannot find this gsp binary")?;
    let status = Command::new("bash")
        .arg(scripts.join("bench-broadcast-netns.sh"))
        .arg(hosts.to_string())
        .arg(rate)
        .arg(args.payload.to_string())
        .arg(args.iterations.max(1).to_string())
        .env("GSP_BIN", exe)
        .status()
        .context("cannot run bash")?;
    Ok(match status.code() {
        Some(0) => ExitStatus::Success,
        Some(1) => ExitStatus::Negative,
        _ => ExitStatus::Error,
    })
}
