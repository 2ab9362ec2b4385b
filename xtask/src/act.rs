//! Runs the GitHub workflows locally with act.

use clap::Args;
use xshell::Shell;

/// Runs the GitHub workflows locally with act.
#[derive(Debug, Args)]
pub struct Act {}

impl Act {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        anyhow::bail!("`cargo xtask act` is not built yet")
    }
}
