//! `cargo xtask test` (lints and every test) and `cargo xtask ci` (the whole pull-request pipeline).

use anyhow::{Context, Result};
use clap::{Args, Parser};
use xshell::{Shell, cmd};

use crate::{Cli, cargo, tools};

/// The pull-request pipeline, as `.github/workflows/ci.yml` runs it, in one command.
#[derive(Debug, Args)]
pub struct Ci {}

impl Ci {
    pub fn run(self, sh: &Shell) -> Result<()> {
        // Each step goes through the same parser as the command line, so `ci` runs exactly what
        // `cargo xtask <step>` runs, with the same defaults.
        let steps: &[&[&str]] = &[
            &["test"],
            // The chart's policy check runs in `chart lint` below, over the same renders.
            &["security-scan", "--skip", "chart"],
            &["image", "build"],
            &["chart", "lint"],
        ];
        for step in steps {
            let line = step.join(" ");
            eprintln!("\n==> cargo xtask {line}");
            let cli =
                Cli::try_parse_from(std::iter::once("cargo xtask").chain(step.iter().copied()))
                    .with_context(|| format!("parsing `{line}`"))?;
            cli.task
                .run(sh)
                .with_context(|| format!("`cargo xtask {line}` failed"))?;
        }
        eprintln!("\nci: all steps passed");
        Ok(())
    }
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
