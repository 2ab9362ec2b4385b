//! The Helm chart under `charts/visit-tracker`: bump, lint, package, push.

pub mod bump;
pub mod lint;
pub mod package;
pub mod push;

use clap::Subcommand;
use xshell::Shell;

#[derive(Debug, Subcommand)]
pub enum Chart {
    /// Set version, appVersion and the image reference, keeping comments and layout.
    Bump(bump::Bump),
    /// Run every chart check: render, lint, schemas, policy, alert rule tests.
    Lint(lint::Lint),
    /// Package the chart into a deterministic .tgz.
    Package(package::Package),
    /// Push the packaged chart to an OCI registry.
    Push(push::Push),
}

impl Chart {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        match self {
            Chart::Bump(t) => t.run(sh),
            Chart::Lint(t) => t.run(sh),
            Chart::Package(t) => t.run(sh),
            Chart::Push(t) => t.run(sh),
        }
    }
}
