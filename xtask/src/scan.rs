//! The security scan: dependencies, workflows, chart policy, committed secrets.

use clap::Args;
use xshell::Shell;

/// The security scan: dependencies, workflows, chart policy, committed secrets.
#[derive(Debug, Args)]
pub struct SecurityScan {}

impl SecurityScan {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        anyhow::bail!("`cargo xtask security-scan` is not built yet")
    }
}
