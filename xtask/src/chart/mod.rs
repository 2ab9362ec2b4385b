//! The Helm chart under `charts/visit-tracker`: bump, lint, package, push.

pub mod bump;
pub mod engine;
pub mod lint;
pub mod package;
pub mod push;

use clap::Subcommand;
use saphyr::{LoadableYamlNode, Scalar, Yaml};
use xshell::Shell;

use crate::tools::{GIT, Needs};

/// The chart every chart task works on, relative to the repository root.
pub const CHART_DIR: &str = "charts/visit-tracker";
/// Fixtures the chart checks use: values files, refused values, checkov settings, rule tests.
pub const TESTS_DIR: &str = "charts/tests";

/// A top-level scalar of a YAML file (e.g. Chart.yaml's `version`) as text.
pub fn chart_field(text: &str, key: &str) -> Option<String> {
    let docs = Yaml::load_from_str(text).ok()?;
    match docs.first()?.as_mapping_get(key)? {
        Yaml::Value(Scalar::String(s)) => Some(s.to_string()),
        Yaml::Value(Scalar::Integer(i)) => Some(i.to_string()),
        Yaml::Value(Scalar::FloatingPoint(f)) => Some(f.to_string()),
        _ => None,
    }
}

/// `chart bump`: `--check` compares with a git base.
pub const BUMP_NEEDS: Needs = Needs {
    tools: &[&GIT],
    tasks: &[],
};
/// `chart package`: the archive's timestamps are the last commit's time.
pub const PACKAGE_NEEDS: Needs = Needs {
    tools: &[&GIT],
    tasks: &[],
};
/// `chart push`: only the registry protocol, in Rust.
pub const PUSH_NEEDS: Needs = Needs {
    tools: &[],
    tasks: &[],
};

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
