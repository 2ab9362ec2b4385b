//! The Helm chart: bump, lint, package, push.

use clap::Subcommand;
use xshell::Shell;

#[derive(Debug, Subcommand)]
pub enum Chart {
    /// `chart bump`
    Bump,
    /// `chart lint`
    Lint,
    /// `chart package`
    Package,
    /// `chart push`
    Push,
}

impl Chart {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        anyhow::bail!("`cargo xtask chart {self:?}` is not built yet")
    }
}
