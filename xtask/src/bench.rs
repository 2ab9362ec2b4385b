//! Benchmarks: each prints its figures next to a reference measured in the same run.

use clap::Subcommand;
use xshell::Shell;

#[derive(Debug, Subcommand)]
pub enum Bench {
    /// `bench app`
    App,
    /// `bench image`
    Image,
    /// `bench push`
    Push,
}

impl Bench {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        anyhow::bail!("`cargo xtask bench {self:?}` is not built yet")
    }
}
