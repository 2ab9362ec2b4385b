//! The node tools of xtask/node (README generator, CRD validators), pinned by its
//! package-lock.json; `cargo xtask setup` installs them with `npm ci` into target/node.

use std::path::PathBuf;

use anyhow::Result;
use xshell::Shell;

use crate::tools::{self, NODE, Source, Tool};

/// xtask/node's packages, installed with `npm ci` into `<target-dir>/node`.
pub const NODE_TOOLS: Tool = Tool {
    name: "xtask/node",
    source: Source::Npm { into: "node" },
};

/// `<target-dir>/node`, with the node_modules of xtask/node's lock file.
pub fn node_tools(sh: &Shell) -> Result<PathBuf> {
    tools::need(sh, &NODE)?;
    tools::need(sh, &NODE_TOOLS)
}
