//! The release task: image, chart and release notes for a version tag.

use clap::Args;
use xshell::Shell;

/// The release task: image, chart and release notes for a version tag.
#[derive(Debug, Args)]
pub struct Release {}

impl Release {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        anyhow::bail!("`cargo xtask release` is not built yet")
    }
}
