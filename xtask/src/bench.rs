//! `cargo xtask bench ...`: runs the benchmarks, which live in their own crate (`xtask-bench/`).
//! They start real servers through testkit; keeping them out of this crate keeps testkit a
//! dev-dependency here, so no other task compiles it.

use std::os::unix::process::CommandExt;
use std::process::Command;

use anyhow::{Context, Result};
use clap::Args;
use xshell::{Shell, cmd};

use crate::ci::{DOCKER_REGISTRY, PODMAN, REDIS_CLI, REDIS_SERVER, SKOPEO};
use crate::tools::{CARGO, Needs, Tool};

pub const WRK: Tool = Tool::apt("wrk", "wrk");
pub const REDIS_BENCHMARK: Tool = Tool::apt("redis-benchmark", "redis-tools");
/// `bench app --callgrind`: instructions per POST.
pub const VALGRIND: Tool = Tool::apt("valgrind", "valgrind");
pub const CALLGRIND_CONTROL: Tool = Tool::apt("callgrind_control", "valgrind");

/// `bench app`: the image's service (built as `image build` builds it) or the glibc release
/// build against redis-server, loaded by wrk and redis-benchmark, or counted by callgrind.
pub const APP_NEEDS: Needs = Needs {
    tools: &[
        &CARGO,
        &REDIS_SERVER,
        &REDIS_CLI,
        &REDIS_BENCHMARK,
        &WRK,
        &VALGRIND,
        &CALLGRIND_CONTROL,
    ],
    tasks: &[&crate::image::BUILD_NEEDS],
};
/// `bench image`: the image build against `podman build` of the same binaries.
pub const IMAGE_NEEDS: Needs = Needs {
    tools: &[&PODMAN],
    tasks: &[&crate::image::BUILD_NEEDS],
};
/// `bench push`: `image push` against skopeo, both into a local docker-registry.
pub const PUSH_NEEDS: Needs = Needs {
    tools: &[&CARGO, &SKOPEO, &DOCKER_REGISTRY],
    tasks: &[],
};

/// The benchmark and its flags, handed to `xtask-bench` as they are (`--help` lists them).
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct Bench {
    /// `app`, `image` or `push`, then that benchmark's flags.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

impl Bench {
    /// Replaces this process with `cargo run --package xtask-bench`, so the benchmark's output,
    /// errors and exit code are the command's own.
    pub fn run(self, sh: &Shell) -> Result<()> {
        let cargo = crate::cargo();
        let args = &self.args;
        // The push benchmark times this binary's `image push`, as a user runs it.
        let xtask = std::env::current_exe().context("locating the xtask binary")?;
        // As typed in a shell: what `cargo run` set for this xtask would rebuild ring (its build
        // script watches CARGO_MANIFEST_DIR) and everything above it, here and in the next build.
        let bench = crate::without_cargo_run_env(cmd!(
            sh,
            "{cargo} run --quiet --package xtask-bench -- {args...}"
        ))
        .env("XTASK", xtask);
        let err = Command::from(bench).exec();
        Err(err).context("running cargo for xtask-bench")
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::{Cli, Task};

    /// Everything after `bench`, `--help` included, reaches `xtask-bench` as it was typed.
    #[test]
    fn arguments_pass_through_unchanged() {
        let line = ["bench", "push", "--runs", "3", "--layout", "x", "--help"];
        let cli = Cli::try_parse_from(std::iter::once("cargo xtask").chain(line)).unwrap();
        let Task::Bench(bench) = cli.task else {
            panic!("`cargo xtask bench` parsed as {:?}", cli.task)
        };
        assert_eq!(bench.args, &line[1..]);
    }
}
