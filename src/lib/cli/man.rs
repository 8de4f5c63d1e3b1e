//! `gsp man`: the manual pages, generated from the same definitions as
//! `--help` (clap_mangen), so they cannot drift from the binary.

use std::path::PathBuf;

use clap::CommandFactory;

use super::{Cli, exit::ExitStatus, exit::UsageError, output};

/// Arguments of `gsp man`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "Examples:
  gsp man | man -l -                          # read gsp(1)
  gsp man --out /usr/local/share/man/man1     # gsp.1 and gsp-<command>.1 for every command")]
pub(crate) struct ManArgs {
    /// Write gsp.1 and one page per command (gsp-node.1, gsp-maint-set.1,
    /// ...) into DIR instead of printing gsp(1) to stdout.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub(crate) fn run(args: &ManArgs) -> anyhow::Result<ExitStatus> {
    let cmd = Cli::command();
    match &args.out {
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut buf)?;
            output::stdout(&String::from_utf8_lossy(&buf))?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| UsageError(format!("--out: cannot create {}: {e}", dir.display())))?;
            clap_mangen::generate_to(cmd, dir).map_err(|e| {
                UsageError(format!(
                    "--out: cannot write pages into {}: {e}",
                    dir.display()
                ))
            })?;
            let n = std::fs::read_dir(dir)?
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "1"))
                .count();
            output::note(&format!("{n} pages in {}", dir.display()));
        }
    }
    Ok(ExitStatus::Success)
}
