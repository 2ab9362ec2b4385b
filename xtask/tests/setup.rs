//! `cargo xtask setup --check` as a user runs it, on a PATH that lacks one declared program: it
//! names the program, its package and the task, installs nothing and fails.

use std::process::Command;

use testkit::{describe, workspace_root};
use xtask::tools::Source;

#[test]
fn check_names_the_missing_program_and_its_package_and_fails() {
    let bin = tempfile::tempdir().unwrap();
    // Every program on PATH that chart lint needs, except promtool.
    for tool in xtask::setup::tools_for(&["chart-lint"]).unwrap() {
        if matches!(tool.source, Source::Apt(_) | Source::Rustup) && tool.name != "promtool" {
            let found = xtask::tools::which(tool.name)
                .unwrap_or_else(|| panic!("{} is not installed here", tool.name));
            std::os::unix::fs::symlink(found, bin.path().join(tool.name)).unwrap();
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(workspace_root())
        .env("PATH", bin.path())
        .args(["setup", "--check", "chart-lint"])
        .output()
        .unwrap();
    let text = describe(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("setup: missing: `promtool` (apt package prometheus), for chart-lint"),
        "{text}"
    );
    assert!(
        text.contains("`cargo xtask setup chart-lint` installs them"),
        "{text}"
    );
    assert!(
        !text.contains("installing"),
        "--check installs nothing: {text}"
    );
}
