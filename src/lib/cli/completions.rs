//! `gsp completions SHELL`: prints a completion script.

use clap::CommandFactory;
use clap_complete::Shell;

use super::{Cli, exit::ExitStatus};

/// Arguments of `gsp completions`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "Examples:
  gsp completions bash > /etc/bash_completion.d/gsp
  gsp completions zsh > \"${fpath[1]}/_gsp\"")]
pub(crate) struct CompletionsArgs {
    /// Shell to generate for.
    #[arg(value_enum)]
    shell: Shell,
}

pub(crate) fn run(args: &CompletionsArgs) -> anyhow::Result<ExitStatus> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "gsp", &mut buf);
    super::output::stdout(&String::from_utf8_lossy(&buf))?;
    Ok(ExitStatus::Success)
}
