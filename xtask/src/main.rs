//! `cargo xtask <task>`: parses the command line, moves to the repository root and dispatches.

use std::process::ExitCode;

use clap::Parser;
use xtask::{Cli, project_root};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = xshell::Shell::new()
        .map_err(anyhow::Error::from)
        .and_then(|sh| {
            sh.change_dir(project_root());
            cli.task.run(&sh)
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // The chain of contexts reads as a sentence: what failed, then why. No backtrace.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
