//! `cargo xtask test` (lints and every test) and `cargo xtask ci` (the whole pull-request pipeline).

use anyhow::{Context, Result};
use clap::Args;
use xshell::{Shell, cmd};

use crate::chart::Chart;
use crate::image::Image;
use crate::scan::{Scanner, SecurityScan};
use crate::{Task, cargo, task_defaults, tools};

/// The pull-request pipeline, as `.github/workflows/ci.yml` runs it, in one command.
#[derive(Debug, Args)]
pub struct Ci {}

impl Ci {
    pub fn run(self, sh: &Shell) -> Result<()> {
        for (line, task) in steps()? {
            eprintln!("\n==> cargo xtask {line}");
            task.run(sh)
                .with_context(|| format!("`cargo xtask {line}` failed"))?;
        }
        eprintln!("\nci: all steps passed");
        Ok(())
    }
}

/// The pipeline's tasks, each with the command line it stands for. Every task gets the defaults
/// its command line has (environment fallbacks included), so `ci` runs exactly what
/// `cargo xtask <step>` runs.
fn steps() -> Result<Vec<(&'static str, Task)>> {
    Ok(vec![
        ("test", Task::Test(task_defaults()?)),
        // Before the scan: its binaries scanner audits the binaries this build puts in the image.
        ("image build", Task::Image(Image::Build(task_defaults()?))),
        // The chart's policy check runs in `chart lint` below, over the same renders.
        (
            "security-scan --skip chart",
            Task::SecurityScan(SecurityScan {
                skip: vec![Scanner::Chart],
                ..task_defaults()?
            }),
        ),
        ("chart lint", Task::Chart(Chart::Lint(task_defaults()?))),
    ])
}

/// `cargo fmt --check`, `cargo clippy -D warnings`, then `cargo test` over the whole workspace.
#[derive(Debug, Args)]
pub struct Test {
    /// Skip the format check and clippy.
    #[arg(long)]
    pub no_lint: bool,
    /// Passed on to `cargo test` after `--`, e.g. a test name filter.
    #[arg(last = true)]
    pub test_args: Vec<String>,
}

impl Test {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let cargo = cargo();
        if !self.no_lint {
            cmd!(sh, "{cargo} fmt --all --check")
                .run()
                .context("code is not formatted: run `cargo fmt --all`")?;
            cmd!(
                sh,
                "{cargo} clippy --workspace --all-targets --locked -- -D warnings"
            )
            .run()
            .context("clippy found problems")?;
        }
        // Tests run the real tools (Helm engine, checkov, ...): put the pinned venv first on PATH.
        let bin = tools::venv(sh)?;
        let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )))?;
        let _path = sh.push_env("PATH", path);
        let args = &self.test_args;
        cmd!(
            sh,
            "{cargo} test --workspace --locked --no-fail-fast -- {args...}"
        )
        .run()
        .context("tests failed")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each step runs the task its printed line names, with the values that line parses to.
    #[test]
    fn steps_are_the_tasks_their_lines_name() {
        use crate::Cli;
        use clap::Parser;
        for (line, task) in steps().unwrap() {
            let parsed = Cli::try_parse_from(std::iter::once("cargo xtask").chain(line.split(' ')))
                .unwrap()
                .task;
            assert_eq!(format!("{parsed:?}"), format!("{task:?}"), "{line}");
        }
    }
}
