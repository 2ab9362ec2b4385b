//! Sets the chart version, appVersion and image reference, keeping comments and layout.

use clap::Args;
use xshell::Shell;

/// Sets the chart version, appVersion and image reference, keeping comments and layout.
#[derive(Debug, Args)]
pub struct Bump {}

impl Bump {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        anyhow::bail!("`cargo xtask chart bump` is not built yet")
    }
}
