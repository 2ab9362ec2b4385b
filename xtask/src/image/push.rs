//! Pushes the OCI image layout to a registry.

use clap::Args;
use xshell::Shell;

/// Pushes the OCI image layout to a registry.
#[derive(Debug, Args)]
pub struct Push {}

impl Push {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        anyhow::bail!("`cargo xtask image push` is not built yet")
    }
}
