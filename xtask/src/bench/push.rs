//! Push time against skopeo copy in the same run, and the cost of a re-push.

use clap::Args;
use xshell::Shell;

/// Push time against skopeo copy in the same run, and the cost of a re-push.
#[derive(Debug, Args)]
pub struct PushBench {}

impl PushBench {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        anyhow::bail!("`cargo xtask bench push` is not built yet")
    }
}
