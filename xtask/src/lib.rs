//! The project's automation: every CI step is one of these tasks, so a laptop, `act` and GitHub
//! Actions run the same code. Each task lives in the module named after it.

pub mod act;
pub mod attest;
pub mod bench;
pub mod chart;
pub mod ci;
pub mod image;
pub mod registry;
pub mod release;
pub mod scan;
pub mod setup;
pub mod sign;
pub mod term;
pub mod tools;
pub mod workspace;

use clap::{Args, FromArgMatches, Parser, Subcommand};
use xshell::Shell;

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Build, test, scan, package and release visit-tracker",
    version
)]
pub struct Cli {
    #[command(subcommand)]
    pub task: Task,
}

#[derive(Debug, Subcommand)]
pub enum Task {
    /// Everything a pull request must pass: tests, security scan, image build, chart lint.
    Ci(ci::Ci),
    /// Format check, clippy with warnings denied, and every test of the workspace.
    Test(ci::Test),
    /// Benchmarks that compare against a reference measured in the same run.
    Bench(bench::Bench),
    /// Build the multi-arch OCI image, or push it to a registry.
    #[command(subcommand)]
    Image(image::Image),
    /// Bump, lint, package or push the Helm chart.
    #[command(subcommand)]
    Chart(chart::Chart),
    /// Scan dependencies, the image's binaries, workflows, the rendered chart and tracked files.
    SecurityScan(scan::SecurityScan),
    /// Write the SBOM of each platform and the SLSA provenance of a built image layout.
    Attest(attest::Attest),
    /// Release a version: image, chart and release notes (see --dry-run).
    Release(release::Release),
    /// Run the GitHub workflows locally and offline with act.
    Act(act::Act),
    /// Install the external tools tasks need (only the missing ones); default: those of `test`.
    Setup(setup::Setup),
    /// Sign images and charts with a cosign key (stored as cosign stores signatures), or write a
    /// key pair (--generate-key).
    Sign(sign::Sign),
    /// Sign in-toto statements (SBOM, provenance) and attach them to an image as OCI referrers.
    Attach(sign::attest::Attest),
    /// Check the signature and attestations of a published image or chart with a public key.
    Verify(sign::verify::Verify),
}

impl Task {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        match self {
            Task::Ci(t) => t.run(sh),
            Task::Test(t) => t.run(sh),
            Task::Bench(t) => t.run(sh),
            Task::Image(t) => t.run(sh),
            Task::Chart(t) => t.run(sh),
            Task::SecurityScan(t) => t.run(sh),
            Task::Attest(t) => t.run(sh),
            Task::Release(t) => t.run(sh),
            Task::Act(t) => t.run(sh),
            Task::Setup(t) => t.run(sh),
            Task::Sign(t) => t.run(sh),
            Task::Attach(t) => t.run(sh),
            Task::Verify(t) => t.run(sh),
        }
    }
}

/// A task's arguments with no flags given: clap's defaults and environment fallbacks (such as
/// `SOURCE_DATE_EPOCH`), so a task called from code (`ci`, `release`) runs exactly as
/// `cargo xtask <task>` would. Only for tasks without required arguments.
pub fn task_defaults<T: Args + FromArgMatches>() -> anyhow::Result<T> {
    let matches =
        T::augment_args(clap::Command::new("cargo xtask")).try_get_matches_from(["cargo xtask"])?;
    Ok(T::from_arg_matches(&matches)?)
}

/// The cargo that started us (`$CARGO`), so nested builds use the same toolchain.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Variables cargo sets for the program it runs (`cargo xtask`, a test) that describe that
/// package. Build scripts watch some of them (ring's: CARGO_PKG_NAME, CARGO_MANIFEST_DIR), so a
/// nested cargo that inherits them rebuilds those crates, and the next outer build again.
pub fn set_by_cargo_run(name: &str) -> bool {
    [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
        || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"].contains(&name)
}

/// `cmd` without the variables of [`set_by_cargo_run`]: for a cargo started from inside a
/// `cargo run` or a test, so it builds exactly what a cargo typed in a shell would.
pub fn without_cargo_run_env(mut cmd: xshell::Cmd<'_>) -> xshell::Cmd<'_> {
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_by_cargo_run) {
            cmd = cmd.env_remove(name);
        }
    }
    cmd
}

/// Appends `name=value` lines to `$GITHUB_OUTPUT` when running under GitHub Actions (or act), so
/// later steps can read them as `steps.<id>.outputs.<name>`; does nothing elsewhere.
pub fn github_output(outputs: &[(&str, &str)]) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    let Some(path) = std::env::var_os("GITHUB_OUTPUT").filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let lines: String = outputs
        .iter()
        .map(|(name, value)| format!("{name}={value}\n"))
        .collect();
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .and_then(|mut out| out.write_all(lines.as_bytes()))
        .with_context(|| format!("writing to $GITHUB_OUTPUT {}", path.to_string_lossy()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `cargo xtask` command the README shows in a `sh` block parses: flags renamed or
    /// removed in code cannot linger in the documentation.
    #[test]
    fn readme_commands_parse() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        let (mut in_sh, mut pending, mut checked) = (false, String::new(), 0);
        // What the workflows give these at run time.
        let mut vars = std::collections::HashMap::from([(
            "$GITHUB_REF".to_owned(),
            "refs/heads/main".to_owned(),
        )]);
        for line in readme.lines() {
            if line.starts_with("```") {
                in_sh = line == "```sh";
                continue;
            }
            if !in_sh {
                continue;
            }
            // Comments start at ` #`; a trailing `\` continues the command.
            let code = line.split(" #").next().unwrap().trim_end();
            pending.push_str(code.trim_end_matches('\\'));
            pending.push(' ');
            if code.ends_with('\\') {
                continue;
            }
            let line = std::mem::take(&mut pending);
            // `NAME=value` alone on a line sets what later commands of the README read as $NAME.
            if let Some((name, value)) = line.trim().split_once('=')
                && !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
                && !value.contains(' ')
            {
                vars.insert(format!("${name}"), value.to_owned());
                continue;
            }
            for command in line.split("&&") {
                checked += usize::from(parses(command, &vars));
            }
        }
        assert!(checked > 20, "only {checked} README commands found");
    }

    /// Whether `command` is a `cargo xtask` command (asserting that it parses).
    fn parses(command: &str, vars: &std::collections::HashMap<String, String>) -> bool {
        let Some(at) = command.find("cargo xtask ") else {
            return false;
        };
        let args: Vec<String> = command[at + "cargo xtask ".len()..]
            .split_whitespace()
            .map(|w| {
                let w = w.trim_matches('"');
                vars.get(w).cloned().unwrap_or_else(|| w.to_owned())
            })
            .collect();
        // `bench` hands its arguments to xtask-bench, whose own test checks them.
        if args.first().is_some_and(|a| a == "bench") {
            return false;
        }
        let parsed = Cli::try_parse_from(std::iter::once("cargo xtask".to_owned()).chain(args));
        assert!(
            parsed.is_ok(),
            "README: `{}`: {}",
            command.trim(),
            parsed.unwrap_err()
        );
        true
    }

    #[test]
    fn the_nested_build_drops_what_cargo_set_for_the_xtask_only() {
        for name in [
            "CARGO_PKG_NAME",
            "CARGO_MANIFEST_DIR",
            "CARGO_TARGET_TMPDIR",
        ] {
            assert!(set_by_cargo_run(name), "{name}");
        }
        for name in ["CARGO", "CARGO_HOME", "CARGO_TARGET_DIR", "PATH"] {
            assert!(!set_by_cargo_run(name), "{name}");
        }
    }
}
