//! The chart README: its Parameters table must be what the README generator makes from
//! values.yaml's `## @param` comments now (or is regenerated with `--fix-readme`).

use std::path::Path;

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use super::node::node_tools;
use crate::chart::CHART_DIR;
use crate::tools;

/// Compares the README with a fresh generation in `work`; with `fix`, writes the fresh one.
pub fn check(sh: &Shell, work: &Path, fix: bool) -> Result<()> {
    let generator = node_tools(sh)?.join("node_modules/.bin/readme-generator");
    let chart = sh.current_dir().join(CHART_DIR);
    let (values, readme) = (chart.join("values.yaml"), chart.join("README.md"));
    let current =
        std::fs::read(&readme).with_context(|| format!("reading {}", readme.display()))?;
    let scratch = work.join("README.md");
    std::fs::create_dir_all(work)?;
    std::fs::write(&scratch, &current)?;
    cmd!(sh, "{generator} --values {values} --readme {scratch}")
        .quiet()
        .ignore_stdout()
        .run()
        .context("the README generator refused values.yaml's `## @param` comments")?;
    let fresh = std::fs::read(&scratch)?;
    if fresh == current {
        eprintln!("{} is current", readme.display());
        return Ok(());
    }
    if fix {
        tools::write_atomic(&readme, &fresh)?;
        eprintln!("regenerated the Parameters table of {}", readme.display());
        return Ok(());
    }
    bail!(
        "{CHART_DIR}/README.md is stale: values.yaml changed. Run `cargo xtask chart lint --fix-readme`"
    )
}
