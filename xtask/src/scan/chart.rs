//! Chart policy for `security-scan`: the chart rendered by the real Helm engine, as `chart lint`
//! renders it, under `chart lint`'s own policy check (checkov with the chart's one config).

use anyhow::{Context, Result};
use xshell::Shell;

use super::Finding;
use crate::chart::engine::Engine;
use crate::chart::lint::policy;

/// Renders every values case (defaults, each values-<env>.yaml, charts/tests/all-on.yaml) under
/// `target/security-scan/chart/` and returns checkov's failed checks at the rendered file and line.
pub fn scan(sh: &Shell) -> Result<Vec<Finding>> {
    let out = sh.current_dir().join("target/security-scan/chart");
    let rendered = Engine::new(sh)?
        .render_all(sh, &out)
        .context("rendering the chart for the policy check")?;
    policy::checkov(sh, &rendered)
}
