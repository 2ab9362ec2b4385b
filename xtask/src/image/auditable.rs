//! cargo-auditable in the image build: a pinned setup tool, run as cargo's workspace wrapper so
//! each image binary embeds its dependency list (the `.dep-v0` section scanners read).
//!
//! `cargo auditable build` would set the wrapper to its own absolute path, and cargo hashes that
//! path into the workspace crates' `-C metadata` (which reaches the binary): two machines with
//! cargo-auditable installed in different places would build different bytes. So the build runs
//! plain `cargo build` with the wrapper given by name, found on PATH, plus the variable through
//! which cargo-auditable's front end hands the cargo flags to its wrapper half.

use serde_json::json;

use crate::tools::Tool;

/// The cargo-auditable release the image is built with. 0.6.7 or later passes `-u` as bare
/// linker arguments, which rust-lld (our musl linker) needs.
pub const CARGO_AUDITABLE: Tool = Tool::cargo(CRATE, VERSION);
pub const VERSION: &str = "0.7.7";
const CRATE: &str = "cargo-auditable";

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
}
