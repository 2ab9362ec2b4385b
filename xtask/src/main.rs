//! `cargo xtask <task>`: parses the command line, moves to the repository root and dispatches.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use xtask::Cli;
use xtask::workspace::Workspace;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    // A missing tool's error then names the setup of the task that was run.
    xtask::setup::set_running(&xtask::setup::task_name(&matches));
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit());
    let result = Workspace::current().and_then(|workspace| {
        let sh = xshell::Shell::new()?;
        // Tasks run from the root of the checkout found at run time, so relative paths mean the
        // same everywhere and every task reads, builds and scans this checkout's files.
        sh.change_dir(&workspace.root);
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
