//! cargo-auditable in the image build: installed pinned, and run as cargo's workspace wrapper so
//! each image binary embeds its dependency list (the `.dep-v0` section scanners read).
//!
//! `cargo auditable build` would set the wrapper to its own absolute path, and cargo hashes that
//! path into the workspace crates' `-C metadata` (which reaches the binary): two machines with
//! cargo-auditable installed in different places would build different bytes. So the build runs
//! plain `cargo build` with the wrapper given by name, found on PATH, plus the variable through
//! which cargo-auditable's front end hands the cargo flags to its wrapper half.

use anyhow::{Context, Result};
use serde_json::json;
use xshell::{Shell, cmd};

use crate::{cargo, tools};

/// The cargo-auditable release the image is built with (and `.ci/run` installs). 0.6.7 or later
/// passes `-u` as bare linker arguments, which rust-lld (our musl linker) needs.
pub const VERSION: &str = "0.7.7";
const CRATE: &str = "cargo-auditable";

/// Installs cargo-auditable with `cargo install --locked` unless this version is installed.
pub fn install(sh: &Shell) -> Result<()> {
    let cargo = cargo();
    let list = cmd!(sh, "{cargo} install --list")
        .quiet()
        .read()
        .unwrap_or_default();
    if installed_version(&list, CRATE) != Some(VERSION) {
        eprintln!(
            "image: installing {CRATE} {VERSION} with `cargo install --locked` (about a minute, once)"
        );
        cmd!(
            sh,
            "{cargo} install --locked --quiet {CRATE} --version {VERSION}"
        )
        .run()
        .with_context(|| format!("installing {CRATE} {VERSION}"))?;
    }
    tools::which(CRATE)
        .map(drop)
        .with_context(|| format!("{CRATE} was installed but is not on PATH (~/.cargo/bin)"))
}

/// The version `cargo install --list` shows for `krate`, if installed.
pub fn installed_version<'a>(list: &'a str, krate: &str) -> Option<&'a str> {
    list.lines()
        .filter(|l| !l.starts_with(char::is_whitespace))
        .find_map(|l| {
            let (name, rest) = l.split_once(' ')?;
            let version = rest.split([' ', ':']).next()?;
            (name == krate).then(|| version.trim_start_matches('v'))
        })
}

/// The environment that makes `cargo <cargo_args>` a `cargo auditable` build: the wrapper by name
/// (see the module comment) and the flags its `cargo metadata` call must repeat (`--config`,
/// `--locked`, `--offline`, `--frozen`), in the JSON its front end would write.
pub fn wrapper_env(cargo_args: &[String]) -> [(&'static str, String); 2] {
    // Arguments after `--` are not cargo's.
    let cargo_args = match cargo_args.iter().position(|a| a == "--") {
        Some(end) => &cargo_args[..end],
        None => cargo_args,
    };
    let mut config = Vec::new();
    let mut args = cargo_args.iter();
    while let Some(arg) = args.next() {
        if arg == "--config" {
            config.extend(args.next().cloned());
        } else if let Some(value) = arg.strip_prefix("--config=") {
            config.push(value.to_owned());
        }
    }
    let flag = |name: &str| cargo_args.iter().any(|a| a == name);
    let orig_args = json!({
        "offline": flag("--offline"),
        "locked": flag("--locked"),
        "frozen": flag("--frozen"),
        "config": config,
    });
    [
        ("RUSTC_WORKSPACE_WRAPPER", CRATE.to_owned()),
        ("CARGO_AUDITABLE_ORIG_ARGS", orig_args.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_version_reads_cargo_install_list() {
        let list = "cargo-auditable v0.7.7:\n    cargo-auditable\n\
                    cargo-deny v0.20.2 (/src/deny):\n    cargo-deny\n";
        assert_eq!(installed_version(list, "cargo-auditable"), Some("0.7.7"));
        assert_eq!(installed_version(list, "cargo-deny"), Some("0.20.2"));
        assert_eq!(installed_version(list, "cargo"), None);
        assert_eq!(installed_version("", "cargo-auditable"), None);
    }

    #[test]
    fn wrapper_is_named_not_a_path_and_the_flags_reach_cargo_metadata() {
        let args: Vec<String> = [
            "build",
            "--locked",
            "--target",
            "x86_64-unknown-linux-musl",
            "--config",
            "target.x.rustflags=[\"-C\"]",
            "--config=build.jobs=1",
            "--",
            "--config",
            "ignored",
            "--offline",
        ]
        .map(String::from)
        .to_vec();
        let [(wrapper, name), (orig, json)] = wrapper_env(&args);
        assert_eq!((wrapper, name.as_str()), ("RUSTC_WORKSPACE_WRAPPER", CRATE));
        assert_eq!(orig, "CARGO_AUDITABLE_ORIG_ARGS");
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            parsed,
            json!({
                "offline": false, "locked": true, "frozen": false,
                "config": ["target.x.rustflags=[\"-C\"]", "build.jobs=1"],
            })
        );
    }

    /// `.ci/run` installs the same version the build asks for, so CI never installs it in a test.
    #[test]
    fn ci_installs_this_version() {
        let run = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/run"),
        )
        .unwrap();
        assert!(
            run.contains(&format!("{CRATE}@{VERSION}")),
            ".ci/run does not install {CRATE}@{VERSION}"
        );
    }
}
