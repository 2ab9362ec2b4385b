//! `cargo xtask setup [TASK...]`: installs the external tools the named tasks need and this
//! machine lacks, from the tasks' own declarations ([`TASKS`]); `--check` only lists them. A tool
//! that already resolves (the runner image's podman, skopeo, node, clang...) is used as it is,
//! never replaced.

pub mod inventory;
pub mod workflow;

use std::fmt;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use clap::Args;
use xshell::Shell;

use crate::tools::install::{self, Phase};
use crate::tools::{Host, Needs, Presence, Tool};
use crate::{act, bench, chart, ci, image, release, scan, sign};

/// Every task `setup` installs for, named by its subcommand path joined by `-`, with what it
/// needs. Narrow tasks first: an error about a missing tool names the first task that has it.
pub const TASKS: &[(&str, &Needs)] = &[
    ("image-build", &image::BUILD_NEEDS),
    ("image-push", &image::PUSH_NEEDS),
    ("chart-bump", &chart::BUMP_NEEDS),
    ("chart-lint", &chart::lint::NEEDS),
    ("chart-package", &chart::PACKAGE_NEEDS),
    ("chart-push", &chart::PUSH_NEEDS),
    ("security-scan", &scan::NEEDS),
    ("release", &release::NEEDS),
    ("sign", &sign::NEEDS),
    ("attest", &sign::NEEDS),
    ("attach", &sign::NEEDS),
    ("verify", &sign::VERIFY_NEEDS),
    ("act", &act::NEEDS),
    ("bench-app", &bench::APP_NEEDS),
    ("bench-image", &bench::IMAGE_NEEDS),
    ("bench-push", &bench::PUSH_NEEDS),
    ("test", &ci::TEST_NEEDS),
    ("ci", &ci::CI_NEEDS),
];

/// What `cargo xtask setup` with no task installs for: everything `cargo xtask test` needs.
pub const DEFAULT_TASK: &str = "test";

/// Install the external tools tasks need (apt packages, the Python venv, node modules, cargo
/// tools, rustup targets, host setup), only those missing.
#[derive(Debug, Args)]
pub struct Setup {
    /// Tasks to install for: the subcommand path joined by `-` (image-build, chart-lint, ...).
    /// Default: test (everything `cargo xtask test` needs).
    #[arg(
        value_name = "TASK",
        value_parser = clap::builder::PossibleValuesParser::new(TASKS.iter().map(|(name, _)| *name))
    )]
    pub tasks: Vec<String>,
    /// Only list what is missing and fail if anything is; install nothing.
    #[arg(long, visible_alias = "dry-run")]
    pub check: bool,
}

impl Setup {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let names: Vec<&str> = if self.tasks.is_empty() {
            vec![DEFAULT_TASK]
        } else {
            self.tasks.iter().map(String::as_str).collect()
        };
        let label = names.join(" ");
        let total = tools_for(&names)?.len();
        let missing = plan(&names, &Host::new(sh)?)?;
        if missing.is_empty() {
            eprintln!("setup: nothing to install for {label}: all {total} tools are present");
            return Ok(());
        }
        for m in &missing {
            let verb = if self.check { "missing" } else { "to install" };
            eprintln!("setup: {verb}: {m}");
        }
        if self.check {
            bail!(
                "{} of the {total} tools {label} needs are missing: `cargo xtask setup {label}` \
                 installs them",
                missing.len()
            );
        }
        for phase in Phase::ALL {
            // Looked at again before each phase: apt may have brought what a later phase would
            // do (a binfmt registration), or started a service that must not run.
            let host = Host::new(sh)?;
            let now: Vec<Missing> = plan(&names, &host)?
                .into_iter()
                .filter(|m| Phase::of(&m.tool.source) == phase)
                .collect();
            if now.is_empty() {
                continue;
            }
            for m in &now {
                eprintln!("setup: installing {m}");
            }
            let tools: Vec<&Tool> = now.iter().map(|m| m.tool).collect();
            install::install(sh, &host, phase, &tools).with_context(|| {
                let what: Vec<String> = now.iter().map(ToString::to_string).collect();
                format!("installing {}", what.join("; "))
            })?;
        }
        let left = plan(&names, &Host::new(sh)?)?;
        if !left.is_empty() {
            let what: Vec<String> = left.iter().map(ToString::to_string).collect();
            bail!(
                "still missing after setup: {} (cargo install puts programs in ~/.cargo/bin: is \
                 it on PATH?)",
                what.join("; ")
            );
        }
        eprintln!("setup: installed what {label} lacked; all {total} tools are present");
        Ok(())
    }
}

/// A tool setup would install, and the named tasks that need it.
#[derive(Debug)]
pub struct Missing {
    pub tool: &'static Tool,
    pub tasks: Vec<&'static str>,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, for {}", self.tool.describe(), self.tasks.join(", "))
    }
}

/// The declarations of the named tasks; an unknown name is an error listing the known ones.
pub fn needs(names: &[&str]) -> Result<Vec<(&'static str, &'static Needs)>> {
    names
        .iter()
        .map(|name| {
            TASKS
                .iter()
                .find(|(n, _)| n == name)
                .copied()
                .with_context(|| {
                    let known: Vec<&str> = TASKS.iter().map(|(n, _)| *n).collect();
                    format!(
                        "no task `{name}` to set up for: one of {}",
                        known.join(", ")
                    )
                })
        })
        .collect()
}

/// Every tool the named tasks need (prerequisites first), each once: what setup makes present.
pub fn tools_for(names: &[&str]) -> Result<Vec<&'static Tool>> {
    let needs: Vec<&'static Needs> = needs(names)?.into_iter().map(|(_, n)| n).collect();
    Ok(Needs::closure(&needs))
}

/// What setup would install for the named tasks where `have` says what is there: on this machine
/// ([`Host`]), or on a runner image (its inventory).
pub fn plan(names: &[&str], have: &dyn Presence) -> Result<Vec<Missing>> {
    let needs = needs(names)?;
    Ok(tools_for(names)?
        .into_iter()
        .filter(|tool| !have.has(tool))
        .map(|tool| Missing {
            tool,
            tasks: needs
                .iter()
                .filter(|(_, n)| n.includes(tool))
                .map(|(name, _)| *name)
                .collect(),
        })
        .collect())
}

/// The task this process was started for (the outermost: `ci` and `release` run others).
static RUNNING: OnceLock<String> = OnceLock::new();

/// Remembers the task this process runs, so a missing tool's error names the setup to run.
pub fn set_running(task: &str) {
    let _ = RUNNING.set(task.to_owned());
}

/// The setup task that installs `tool`: the running task when it declares it, else the first
/// task that does.
pub fn task_to_fix(tool: &Tool) -> &'static str {
    let declares = |(_, needs): &&(&'static str, &'static Needs)| needs.includes(tool);
    RUNNING
        .get()
        .and_then(|running| TASKS.iter().filter(|(n, _)| n == running).find(declares))
        .or_else(|| TASKS.iter().find(declares))
        .map_or(DEFAULT_TASK, |(name, _)| name)
}

/// The setup name of the task a command line runs: its subcommand path joined by `-`, with the
/// benchmark's name for `bench` (`bench-app`).
pub fn task_name(matches: &clap::ArgMatches) -> String {
    let mut path = Vec::new();
    let mut m = matches;
    while let Some((name, sub)) = m.subcommand() {
        path.push(name.to_owned());
        m = sub;
    }
    if path == ["bench"]
        && let Ok(Some(mut args)) = m.try_get_many::<String>("args")
        && let Some(first) = args.next()
    {
        path.push(first.clone());
    }
    path.join("-")
}

#[cfg(test)]
mod tests;
