//! Refused values: each file of charts/tests/bad-values must be refused by the chart (schema or
//! template check) with the message its `# expect:` line names.

use std::path::PathBuf;

use anyhow::{Context, Result, ensure};
use xshell::Shell;

use crate::chart::TESTS_DIR;
use crate::chart::engine::Engine;

/// Every charts/tests/bad-values/*.yaml through the Helm engine, which must refuse it.
pub fn refused(sh: &Shell, engine: &Engine) -> Result<()> {
    let dir = sh.current_dir().join(TESTS_DIR).join("bad-values");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    files.sort();
    ensure!(
        !files.is_empty(),
        "no bad values files in {}",
        dir.display()
    );
    engine.refuse(sh, &files)
}
