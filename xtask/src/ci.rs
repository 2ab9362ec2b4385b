//! `cargo xtask test` (lints and every test) and `cargo xtask ci` (the whole pull-request pipeline).

use anyhow::{Context, Result};
use clap::Args;
use xshell::{Shell, cmd};

use crate::chart::Chart;
use crate::image::Image;
use crate::scan::{Scanner, SecurityScan};
use crate::tools::{Needs, Source, Tool};
use crate::{
    Task, act, cargo, chart, image, release, scan, task_defaults, tools, without_cargo_run_env,
};

// What the tests drive for real besides the tasks' own tools: servers, image tools, qemu.
pub const REDIS_SERVER: Tool = Tool::apt("redis-server", "redis-server");
pub const REDIS_SENTINEL: Tool = Tool::apt("redis-sentinel", "redis-sentinel");
pub const REDIS_CLI: Tool = Tool::apt("redis-cli", "redis-tools");
pub const DOCKER_REGISTRY: Tool = Tool::apt("docker-registry", "docker-registry");
/// The registry tests' htpasswd file.
pub const HTPASSWD: Tool = Tool::apt("htpasswd", "apache2-utils");
/// Certificates and keys of the TLS and token tests.
pub const OPENSSL: Tool = Tool::apt("openssl", "openssl");
pub const SKOPEO: Tool = Tool::apt("skopeo", "skopeo");
pub const UMOCI: Tool = Tool::apt("umoci", "umoci");
pub const PODMAN: Tool = Tool::apt("podman", "podman");
/// The runtime the tests give podman. Debian's podman does not pull it in without recommends;
/// GitHub's runner has containerd.io's (which conflicts with the `runc` package: never
/// installed there, as it resolves).
pub const RUNC: Tool = Tool::apt("runc", "runc");
pub const QEMU_AARCH64: Tool = Tool::apt("qemu-aarch64-static", "qemu-user-static");
/// The arm64 image's container runs on an amd64 host through qemu-user.
pub const ARM64_BINFMT: Tool = Tool {
    name: "qemu-aarch64",
    source: Source::Binfmt {
        from: &QEMU_AARCH64,
    },
};
pub const RUSTFMT: Tool = Tool {
    name: "rustfmt",
    source: Source::RustComponent("rustfmt"),
};
pub const CLIPPY: Tool = Tool {
    name: "cargo-clippy",
    source: Source::RustComponent("clippy"),
};
/// The workflows against GitHub's schemas.
pub const CHECK_JSONSCHEMA: Tool = Tool::pip("check-jsonschema");
/// Reads the image binaries' `.dep-v0` section without our code (versioned names count, as for
/// llvm-ar).
pub const LLVM_OBJCOPY: Tool = Tool {
    name: "llvm-objcopy",
    source: Source::Llvm("llvm"),
};
/// The distribution's own servers, started by their packages, only compete with the tests'.
pub const DISTRO_REDIS: Tool = Tool::stopped_service("redis-server");
pub const DISTRO_REGISTRY: Tool = Tool::stopped_service("docker-registry");

/// `test`: the format check and clippy, the tests' own servers and tools, and every task the
/// tests run.
pub const TEST_NEEDS: Needs = Needs {
    tools: &[
        &RUSTFMT,
        &CLIPPY,
        &REDIS_SERVER,
        &REDIS_SENTINEL,
        &REDIS_CLI,
        &DOCKER_REGISTRY,
        &HTPASSWD,
        &OPENSSL,
        &SKOPEO,
        &UMOCI,
        &PODMAN,
        &RUNC,
        &ARM64_BINFMT,
        &CHECK_JSONSCHEMA,
        &crate::sign::cosign::COSIGN,
        &LLVM_OBJCOPY,
        &DISTRO_REDIS,
        &DISTRO_REGISTRY,
    ],
    tasks: &[
        &image::BUILD_NEEDS,
        &image::PUSH_NEEDS,
        &chart::BUMP_NEEDS,
        &chart::lint::NEEDS,
        &chart::PACKAGE_NEEDS,
        &chart::PUSH_NEEDS,
        &scan::NEEDS,
        &release::NEEDS,
        &act::NEEDS,
    ],
};
/// `ci`: the steps of [`steps`].
pub const CI_NEEDS: Needs = Needs {
    tools: &[],
    tasks: &[
        &TEST_NEEDS,
        &scan::NEEDS,
        &image::BUILD_NEEDS,
        &chart::lint::NEEDS,
    ],
};

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
    /// Only these tests, each TARGET/NAME: the integration test target (`cargo test --test
    /// TARGET`, of any workspace member) and the test's exact name; nothing else is compiled or
    /// run, and lint is skipped (it is the whole suite's). Repeatable; XTASK_TEST_ONLY gives them
    /// comma-separated, which is how `cargo xtask act` runs ci.yml's `test` job with a few quick
    /// tests (the whole suite would run the act tests inside act again).
    #[arg(
        long,
        value_name = "TARGET/NAME",
        env = "XTASK_TEST_ONLY",
        value_delimiter = ','
    )]
    pub only: Vec<String>,
    /// Passed on to `cargo test` after `--`, e.g. a test name filter.
    #[arg(last = true)]
    pub test_args: Vec<String>,
}

/// `cargo test`'s target arguments and the test binaries' arguments that run only `only` (each
/// TARGET/NAME): `--test TARGET` once per target, then `--exact` and the names.
pub fn only_args(only: &[String]) -> Result<(Vec<String>, Vec<String>)> {
    let (mut targets, mut names) = (Vec::new(), Vec::new());
    for test in only {
        let (target, name) = test
            .split_once('/')
            .filter(|(t, n)| !t.is_empty() && !n.is_empty())
            .with_context(|| format!("--only {test}: expected TARGET/NAME, e.g. chart/name"))?;
        if !targets.iter().any(|t| t == target) {
            targets.extend(["--test".to_owned(), target.to_owned()]);
        }
        names.push(name.to_owned());
    }
    if !names.is_empty() {
        names.insert(0, "--exact".to_owned());
    }
    Ok((targets, names))
}

impl Test {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let cargo = cargo();
        let (targets, names) = only_args(&self.only)?;
        if !self.no_lint && self.only.is_empty() {
            without_cargo_run_env(cmd!(sh, "{cargo} fmt --all --check"))
                .run()
                .context("code is not formatted: run `cargo fmt --all`")?;
            without_cargo_run_env(cmd!(
                sh,
                "{cargo} clippy --workspace --all-targets --locked -- -D warnings"
            ))
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
        // As typed in a shell: what `cargo run` set for the xtask would make the build scripts that
        // watch it (ring's) run again, and every crate above them rebuild.
        without_cargo_run_env(cmd!(
            sh,
            "{cargo} test --workspace --locked --no-fail-fast {targets...} -- {names...} {args...}"
        ))
        .run()
        .context("tests failed")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_runs_each_target_once_with_the_exact_names() {
        let only = ["chart/a", "chart_push/b", "chart/c"].map(String::from);
        let (targets, names) = only_args(&only).unwrap();
        assert_eq!(targets, ["--test", "chart", "--test", "chart_push"]);
        assert_eq!(names, ["--exact", "a", "b", "c"]);
        assert_eq!(only_args(&[]).unwrap(), (vec![], vec![]));
        for bad in ["chart", "/a", "chart/"] {
            let err = only_args(&[bad.to_owned()]).unwrap_err();
            assert!(
                format!("{err:#}").contains("expected TARGET/NAME"),
                "{bad}: {err:#}"
            );
        }
    }

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
