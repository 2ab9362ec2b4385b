//! The node tools of xtask/node (README generator, CRD validators), pinned by its
//! package-lock.json and installed with `npm ci` into target/node.

use std::path::PathBuf;

use anyhow::{Context, Result};
use xshell::{Shell, cmd};

use crate::tools;

const NODE_TOOLS: &str = "xtask/node";
const NODE_DIR: &str = "target/node";

/// target/node with its node_modules; a stamp of the lock file skips `npm ci` when nothing changed.
pub fn node_tools(sh: &Shell) -> Result<PathBuf> {
    tools::require("node", "nodejs")?;
    tools::require("npm", "npm")?;
    // Tests call this from several threads; one npm ci at a time.
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let root = sh.current_dir();
    let (src, dest) = (root.join(NODE_TOOLS), root.join(NODE_DIR));
    let lock = std::fs::read(src.join("package-lock.json"))
        .with_context(|| format!("reading {NODE_TOOLS}/package-lock.json"))?;
    let wanted = tools::hex_digest(&lock);
    let stamp = dest.join(".lock.sha256");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        eprintln!("xtask: installing {NODE_TOOLS} into {NODE_DIR} (npm ci)");
        std::fs::create_dir_all(&dest)?;
        std::fs::copy(src.join("package.json"), dest.join("package.json"))?;
        std::fs::write(dest.join("package-lock.json"), &lock)?;
        let _dir = sh.push_dir(&dest);
        cmd!(sh, "npm ci --no-audit --no-fund --loglevel=error")
            .run()
            .context("npm ci of xtask/node")?;
        std::fs::write(&stamp, wanted)?;
    }
    Ok(dest)
}
