//! Test support shared by the workspace: real servers on free loopback ports, stopped on drop.
//! Each server module owns one kind of server; the helpers here are what they all need.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// A loopback port nobody listens on right now (the OS picks it; we release it at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding an ephemeral loopback port")
}

/// Waits until something accepts TCP connections on `addr`, or fails after `timeout`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("nothing listened on {addr} within {timeout:?}")
}

/// The program on PATH, or a panic naming the command that installs it, so a missing tool reads
/// as such instead of as an obscure spawn error. Every program a test requires is declared (with
/// its package) among the tools of `test` in xtask/src/ci.rs, which `cargo xtask setup test`
/// installs; an xtask test checks that each name given here is.
pub fn require_program(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{program}` is not installed: run `cargo xtask setup test`"))
}

/// The task binary `bin` (a test's `env!("CARGO_BIN_EXE_xtask")`) run in `dir` as a user would
/// run it there: none of the caller's registry credentials, cosign password, Docker config or
/// GitHub run reaches it, so what it does follows from the test's own arguments and environment.
pub fn task(bin: &str, dir: &Path, docker_config: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir)
        // The checkout is found from the current directory, as when a user runs it there.
        .env_remove("CARGO_MANIFEST_DIR")
        .env_remove("REGISTRY_USERNAME")
        .env_remove("REGISTRY_PASSWORD")
        .env_remove("COSIGN_PASSWORD")
        .env_remove("GITHUB_OUTPUT")
        // Not GitHub here, whatever runs the tests: the builder is the local one.
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_REF")
        .env("DOCKER_CONFIG", docker_config)
        .stdin(Stdio::null());
    cmd
}

/// `skopeo inspect --raw` of `reference` (HOST:PORT/REPO:TAG or @DIGEST) on a plain-HTTP
/// registry: a manifest's exact bytes, read by a tool we did not write.
pub fn skopeo_raw(reference: &str) -> Output {
    Command::new(require_program("skopeo"))
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .expect("running skopeo")
}

/// A finished command's status, stdout and stderr, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The root of the checkout under test, for tests that run tasks or read the chart.
///
/// Found at run time from the `CARGO_MANIFEST_DIR` that `cargo test` sets for the test process
/// (the tested package's directory), not from the one testkit was compiled with: clones sharing
/// a target directory share one compiled testkit, whose compiled-in path names whichever clone
/// compiled it, so the tests of one clone would run the tasks and read the chart of another.
pub fn workspace_root() -> PathBuf {
    let package = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .expect("CARGO_MANIFEST_DIR is not set: run the tests with `cargo test`, which sets it");
    package
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .is_ok_and(|toml| toml.lines().any(|line| line.trim() == "[workspace]"))
        })
        .unwrap_or_else(|| {
            panic!(
                "no Cargo.toml with [workspace] in {} or above",
                package.display()
            )
        })
        .to_path_buf()
}
pub mod redis;
pub mod registry;
pub mod tls;
