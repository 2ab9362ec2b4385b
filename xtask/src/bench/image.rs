//! Image assembly time against buildah (podman build) in the same run.

use clap::Args;
use xshell::Shell;

/// Image assembly time against buildah (podman build) in the same run.
#[derive(Debug, Args)]
pub struct ImageBench {}

impl ImageBench {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        anyhow::bail!("`cargo xtask bench image` is not built yet")
    }
}
