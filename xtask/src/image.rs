//! The container image: daemonless multi-arch build and push.

use clap::Subcommand;
use xshell::Shell;

#[derive(Debug, Subcommand)]
pub enum Image {
    /// `image build`
    Build,
    /// `image push`
    Push,
}

impl Image {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        anyhow::bail!("`cargo xtask image {self:?}` is not built yet")
    }
}
