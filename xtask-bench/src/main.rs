//! `cargo xtask bench <benchmark>`: each prints its figures next to a reference measured in the
//! same run, never a timed assertion. `cargo xtask bench` runs this binary; the benchmarks live
//! in their own crate because they start real servers through testkit, which a plain
//! `cargo xtask <task>` must not compile.

mod app;
mod image;
mod measure;
mod push;

use std::process::ExitCode;

use clap::Parser;
use xtask::workspace::Workspace;

/// Benchmarks that compare against a reference measured in the same run.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask bench", bin_name = "cargo xtask bench")]
enum Bench {
    /// The service under wrk against the Redis INCR ceiling (redis-benchmark).
    App(app::AppBench),
    /// Image assembly from built binaries against `podman build` of the same binaries.
    Image(image::ImageBench),
    /// `image push` against `skopeo copy --all`, and a re-push of an unchanged image.
    Push(push::PushBench),
}

fn main() -> ExitCode {
    let bench = Bench::parse();
    let result = Workspace::current().and_then(|workspace| {
        let sh = xshell::Shell::new()?;
        // From the root of the checkout found at run time, as every xtask task runs.
        sh.change_dir(&workspace.root);
        match bench {
            Bench::App(b) => b.run(&sh),
            Bench::Image(b) => b.run(&sh),
            Bench::Push(b) => b.run(&sh),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::Bench;

    #[test]
    fn command_line_is_consistent() {
        Bench::command().debug_assert();
    }

    /// Every `cargo xtask bench ...` command the README shows still parses, and the README
    /// shows the flags a reader needs to reproduce its figures.
    #[test]
    fn readme_flags_parse() {
        let readme = include_str!("../../README.md");
        let mut commands = Vec::new();
        for line in readme.lines() {
            for (at, _) in line.match_indices("cargo xtask bench ") {
                let rest = &line[at + "cargo xtask bench ".len()..];
                let end = rest.find(['`', '#']).unwrap_or(rest.len());
                commands.push(rest[..end].trim());
            }
        }
        for flag in [
            "--compare",
            "--build glibc",
            "--workers 2",
            "--callgrind",
            "--layout",
        ] {
            assert!(
                commands
                    .iter()
                    .any(|c| c.starts_with("app") && c.contains(flag)),
                "README.md shows no `cargo xtask bench app ... {flag}`: {commands:?}"
            );
        }
        for command in commands {
            let args = std::iter::once("cargo xtask bench").chain(command.split_whitespace());
            if let Err(err) = Bench::try_parse_from(args) {
                panic!("README.md: `cargo xtask bench {command}`: {err}");
            }
        }
    }
}
