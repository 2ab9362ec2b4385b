//! `cargo xtask <task>`: parses the command line, moves to the repository root and dispatches.

use clap::Parser;
use xtask::{Cli, project_root};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let sh = xshell::Shell::new()?;
    sh.change_dir(project_root());
    cli.task.run(&sh)
}
