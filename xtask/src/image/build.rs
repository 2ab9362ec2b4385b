//! Cross-compiles the service and writes a multi-arch OCI image layout.

use clap::Args;
use xshell::Shell;

/// Cross-compiles the service and writes a multi-arch OCI image layout.
#[derive(Debug, Args)]
pub struct Build {}

impl Build {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        anyhow::bail!("`cargo xtask image build` is not built yet")
    }
}
