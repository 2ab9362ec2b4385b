//! Load test of the service against the Redis ceiling measured in the same run.

use clap::Args;
use xshell::Shell;

/// Load test of the service against the Redis ceiling measured in the same run.
#[derive(Debug, Args)]
pub struct AppBench {}

impl AppBench {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        anyhow::bail!("`cargo xtask bench app` is not built yet")
    }
}
