//! Every chart check: Helm lint and render, Kubernetes schemas, policy, alert rule tests.

use clap::Args;
use xshell::Shell;

/// Every chart check: Helm lint and render, Kubernetes schemas, policy, alert rule tests.
#[derive(Debug, Args)]
pub struct Lint {}

impl Lint {
    pub fn run(self, _sh: &Shell) -> anyhow::Result<()> {
        anyhow::bail!("`cargo xtask chart lint` is not built yet")
    }
}
