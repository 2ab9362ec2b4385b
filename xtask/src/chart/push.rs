//! Pushes the packaged chart to an OCI registry with Helm's media types.

use clap::Args;
use xshell::Shell;

/// Pushes the packaged chart to an OCI registry with Helm's media types.
#[derive(Debug, Args)]
pub struct Push {}

impl Push {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        anyhow::bail!("`cargo xtask chart push` is not built yet")
    }
}
