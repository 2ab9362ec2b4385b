//! Packages the chart into a deterministic .tgz.

use clap::Args;
use xshell::Shell;

/// Packages the chart into a deterministic .tgz.
#[derive(Debug, Args)]
pub struct Package {}

impl Package {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        anyhow::bail!("`cargo xtask chart package` is not built yet")
    }
}
