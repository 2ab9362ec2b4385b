//! How `cargo xtask setup` installs each kind of [`Source`], in phases: apt packages first (later
//! phases may need them), then host setup, the toolchain, the venv, node modules, cargo tools and
//! unpacked .debs. Only `setup` calls this; tasks only resolve (`tools::need`).

use std::path::Path;

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use super::host::{NPM_STAMP, deb_dir};
use super::{Host, REQUIREMENTS, Source, Tool, file_name, hex_digest, which_in, write_atomic};

/// Where distributions keep the binfmt_misc registrations their packages ship.
const BINFMT_D: &str = "/usr/lib/binfmt.d";

/// The installation phases, in the order setup runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// What setup cannot install (rustup's own programs): fail first, with what to do.
    Manual,
    Apt,
    /// binfmt registration and distribution services, after apt installed the packages.
    Host,
    Rustup,
    Pip,
    Npm,
    Cargo,
    Deb,
}

impl Phase {
    pub const ALL: [Phase; 8] = [
        Phase::Manual,
        Phase::Apt,
        Phase::Host,
        Phase::Rustup,
        Phase::Pip,
        Phase::Npm,
        Phase::Cargo,
        Phase::Deb,
    ];

    pub fn of(source: &Source) -> Phase {
        match source {
            Source::Rustup => Phase::Manual,
            Source::Apt(_) | Source::Llvm(_) => Phase::Apt,
            Source::Binfmt { .. } | Source::StoppedService => Phase::Host,
            Source::RustTarget | Source::RustComponent(_) => Phase::Rustup,
            Source::Pip => Phase::Pip,
            Source::Npm { .. } => Phase::Npm,
            Source::Cargo { .. } => Phase::Cargo,
            Source::Deb { .. } => Phase::Deb,
        }
    }
}

/// Installs `tools`, all of `phase`, which `host` lacks.
pub fn install(sh: &Shell, host: &Host, phase: Phase, tools: &[&Tool]) -> Result<()> {
    match phase {
        Phase::Manual => {
            let names: Vec<_> = tools.iter().map(|t| format!("`{}`", t.name)).collect();
            bail!(
                "{} not found: install Rust with rustup (https://rustup.rs) and put ~/.cargo/bin on PATH",
                names.join(", ")
            )
        }
        Phase::Apt => {
            let mut packages: Vec<&str> = tools
                .iter()
                .filter_map(|t| t.source.apt_package())
                .collect();
            packages.sort_unstable();
            packages.dedup();
            apt(sh, host, &packages)
        }
        Phase::Host => {
            let services: Vec<&str> = tools
                .iter()
                .filter(|t| t.source == Source::StoppedService)
                .map(|t| t.name)
                .collect();
            if !services.is_empty() {
                let mut argv = vec!["systemctl", "disable", "--now"];
                argv.extend(&services);
                command(sh, &as_root(host, &argv, "stopping services")?)
                    .run()
                    .context("stopping the distribution's services")?;
            }
            for tool in tools
                .iter()
                .filter(|t| matches!(t.source, Source::Binfmt { .. }))
            {
                binfmt(sh, host, tool)?;
            }
            Ok(())
        }
        Phase::Rustup => {
            let targets: Vec<&str> = tools
                .iter()
                .filter(|t| t.source == Source::RustTarget)
                .map(|t| t.name)
                .collect();
            let components: Vec<&str> = tools
                .iter()
                .filter_map(|t| match t.source {
                    Source::RustComponent(c) => Some(c),
                    _ => None,
                })
                .collect();
            if !targets.is_empty() {
                cmd!(sh, "rustup target add {targets...}").run()?;
            }
            if !components.is_empty() {
                cmd!(sh, "rustup component add {components...}").run()?;
            }
            Ok(())
        }
        Phase::Pip => venv(sh, host),
        Phase::Npm => tools.iter().try_for_each(|t| npm(sh, host, t)),
        Phase::Cargo => tools.iter().try_for_each(|t| cargo_install(sh, t)),
        Phase::Deb => tools.iter().try_for_each(|t| deb(sh, host, t)),
    }
}

/// Whether this process runs as root (it owns its own /proc entry).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `argv` as root: as it is when we are root, else through `sudo -n` (never a password prompt: a
/// CI job must fail, not hang). `what` names the action in the error when neither is possible.
fn as_root(host: &Host, argv: &[&str], what: &str) -> Result<Vec<String>> {
    if !is_root() && which_in(&host.path, "sudo").is_none() {
        bail!("{what} needs root: run `cargo xtask setup` as root, or install sudo");
    }
    Ok(root_argv(is_root(), argv))
}

/// The command of an argument vector (xshell wants the program apart).
fn command<'a>(sh: &'a Shell, argv: &[String]) -> xshell::Cmd<'a> {
    let (program, args) = argv.split_first().expect("a command has a program");
    cmd!(sh, "{program} {args...}")
}

/// `argv`, prefixed with `sudo -n` unless `root`.
pub fn root_argv(root: bool, argv: &[&str]) -> Vec<String> {
    let sudo: &[&str] = if root { &[] } else { &["sudo", "-n"] };
    sudo.iter().chain(argv).map(|s| (*s).to_owned()).collect()
}

/// The apt-get command line that installs `packages`, without prompts or recommended extras (a
/// package's recommends would pull in more than the tool, possibly a second copy of a tool the
/// runner image ships).
pub fn apt_install_argv(root: bool, packages: &[&str]) -> Vec<String> {
    let mut argv = vec![
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "install",
        "--yes",
        "--quiet",
        "--no-install-recommends",
    ];
    argv.extend(packages);
    root_argv(root, &argv)
}

/// One `apt-get update` (the runner's lists may be stale), then one install of every package.
fn apt(sh: &Shell, host: &Host, packages: &[&str]) -> Result<()> {
    let what = format!("installing the apt packages {}", packages.join(" "));
    let update = as_root(
        host,
        &[
            "env",
            "DEBIAN_FRONTEND=noninteractive",
            "apt-get",
            "update",
            "--quiet",
        ],
        &what,
    )?;
    command(sh, &update).run().context("apt-get update")?;
    if let Err(err) = command(sh, &apt_install_argv(is_root(), packages)).run() {
        let unknown: Vec<&str> = packages
            .iter()
            .copied()
            .filter(|p| {
                cmd!(sh, "apt-cache show --no-all-versions {p}")
                    .quiet()
                    .ignore_stdout()
                    .ignore_stderr()
                    .run()
                    .is_err()
            })
            .collect();
        if !unknown.is_empty() {
            bail!(
                "apt knows no package {}: add the repository that has it, or install it by hand",
                unknown.join(", ")
            );
        }
        return Err(err)
            .with_context(|| format!("apt-get could not install {}", packages.join(" ")));
    }
    Ok(())
}

/// Registers the handler from the package's `/usr/lib/binfmt.d/NAME*.conf`, mounting binfmt_misc
/// first where nothing did (containers, hosts without systemd-binfmt).
fn binfmt(sh: &Shell, host: &Host, tool: &Tool) -> Result<()> {
    let dir = &host.binfmt;
    let register = dir.join("register");
    if !register.exists() {
        let dir = dir.to_string_lossy();
        let argv = ["mount", "-t", "binfmt_misc", "binfmt_misc", &dir];
        command(sh, &as_root(host, &argv, "mounting binfmt_misc")?)
            .run()
            .context("mounting binfmt_misc")?;
    }
    let mut confs: Vec<_> = std::fs::read_dir(BINFMT_D)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(tool.name) && n.ends_with(".conf"))
        })
        .collect();
    confs.sort();
    let conf = confs.first().with_context(|| {
        format!(
            "no {BINFMT_D}/{}*.conf to register: its package should have installed one",
            tool.name
        )
    })?;
    let text =
        std::fs::read_to_string(conf).with_context(|| format!("reading {}", conf.display()))?;
    let register = register.to_string_lossy();
    let tee = as_root(host, &["tee", &register], "registering a binfmt handler")?;
    // Lines of binfmt.d files are what the kernel's register file takes, one per write.
    for line in text.lines().filter(|l| l.starts_with(':')) {
        command(sh, &tee)
            .stdin(line)
            .ignore_stdout()
            .run()
            .with_context(|| format!("registering {} from {}", tool.name, conf.display()))?;
    }
    Ok(())
}

/// Creates the venv if needed and installs [`REQUIREMENTS`] into it.
fn venv(sh: &Shell, host: &Host) -> Result<()> {
    let requirements = host.root.join(REQUIREMENTS);
    let venv = host.target.join("venv");
    let bin = venv.join("bin");
    if !bin.join("python").exists() {
        cmd!(sh, "python3 -m venv {venv}").run().context(
            "creating the Python venv (python3's venv module: apt package python3-venv)",
        )?;
    }
    let pip = bin.join("pip");
    cmd!(
        sh,
        "{pip} install --quiet --disable-pip-version-check -r {requirements}"
    )
    .run()
    .with_context(|| format!("installing {REQUIREMENTS}"))
}

/// `npm ci` of the package.json and lock in the directory `tool.name`, in `<target>/<into>`.
fn npm(sh: &Shell, host: &Host, tool: &Tool) -> Result<()> {
    let Source::Npm { into } = tool.source else {
        bail!("{} is not an npm tool", tool.name);
    };
    let (src, dest) = (host.root.join(tool.name), host.target.join(into));
    let lock = std::fs::read(src.join("package-lock.json"))
        .with_context(|| format!("reading {}/package-lock.json", tool.name))?;
    std::fs::create_dir_all(&dest)?;
    std::fs::copy(src.join("package.json"), dest.join("package.json"))
        .with_context(|| format!("copying {}/package.json", tool.name))?;
    write_atomic(&dest.join("package-lock.json"), &lock)?;
    let _dir = sh.push_dir(&dest);
    cmd!(sh, "npm ci --no-audit --no-fund --loglevel=error")
        .run()
        .with_context(|| format!("npm ci of {}", tool.name))?;
    write_atomic(&dest.join(NPM_STAMP), hex_digest(&lock).as_bytes())
}

fn cargo_install(sh: &Shell, tool: &Tool) -> Result<()> {
    let Source::Cargo { krate, version } = tool.source else {
        bail!("{} is not a cargo tool", tool.name);
    };
    eprintln!("setup: cargo install compiles {krate} {version}: minutes, once");
    let cargo = crate::cargo();
    cmd!(
        sh,
        "{cargo} install --locked --quiet {krate} --version {version}"
    )
    .run()
    .with_context(|| format!("cargo install --locked {krate} --version {version}"))
}

/// Downloads the pinned .deb, refuses other bytes, and unpacks it (no dpkg database, no root).
fn deb(sh: &Shell, host: &Host, tool: &Tool) -> Result<()> {
    let Source::Deb { url, sha256, .. } = tool.source else {
        bail!("{} is not a .deb tool", tool.name);
    };
    let dir = deb_dir(&host.target, url);
    let parent = dir.parent().context("a .deb directory has a parent")?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let download = parent.join(format!(".{}.download", file_name(url)));
    cmd!(
        sh,
        "curl --fail --silent --show-error --location --retry 3 --output {download} {url}"
    )
    .run()
    .with_context(|| format!("downloading {url}"))?;
    let got = hex_digest(&std::fs::read(&download)?);
    if got != sha256 {
        let _ = std::fs::remove_file(&download);
        bail!("{url} has sha256 {got}, not the pinned {sha256}: refused");
    }
    let staging = parent.join(format!(
        ".{}.unpacking",
        dir.file_name().unwrap_or_default().to_string_lossy()
    ));
    remove_dir_if_present(&staging)?;
    cmd!(sh, "dpkg-deb -x {download} {staging}")
        .run()
        .with_context(|| format!("unpacking {}", file_name(url)))?;
    remove_dir_if_present(&dir)?;
    std::fs::rename(&staging, &dir).with_context(|| format!("moving into {}", dir.display()))?;
    std::fs::remove_file(&download)?;
    Ok(())
}

fn remove_dir_if_present(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}
