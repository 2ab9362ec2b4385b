//! Where this machine has a declared tool: on PATH, under the target directory, in the active
//! Rust toolchain, registered with the kernel. Only looks; `install` changes things.

use std::cell::OnceCell;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Result;
use xshell::{Shell, cmd};

use super::{REQUIREMENTS, Source, Tool, file_name, hex_digest, is_executable, which_in};

/// The version `cargo install --list` shows for `krate`, if cargo installed it.
pub fn installed_version<'a>(list: &'a str, krate: &str) -> Option<&'a str> {
    list.lines()
        .filter(|l| !l.starts_with(char::is_whitespace))
        .find_map(|l| {
            let (name, rest) = l.split_once(' ')?;
            let version = rest.split([' ', ':']).next()?;
            (name == krate).then(|| version.trim_start_matches('v'))
        })
}

/// Where the kernel lists its binfmt_misc handlers.
pub const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";
/// In an npm install directory: the digest of the lock file it was made from.
pub const NPM_STAMP: &str = ".lock.sha256";

/// Whether a tool is there: on this machine ([`Host`]) or on a runner image (its inventory).
pub trait Presence {
    fn has(&self, tool: &Tool) -> bool;
}

/// This machine as the tasks see it. The fields are where it looks; tests point them elsewhere.
pub struct Host<'a> {
    sh: &'a Shell,
    /// Where programs are looked up: the shell's PATH.
    pub path: OsString,
    /// The checkout: requirements and package locks are read from here.
    pub root: PathBuf,
    /// Cargo's target directory: the venv, node modules and unpacked .debs live here.
    pub target: PathBuf,
    /// binfmt_misc's directory.
    pub binfmt: PathBuf,
    sysroot: OnceCell<Option<PathBuf>>,
}

impl<'a> Host<'a> {
    /// The machine `sh` runs on, with `sh`'s PATH and directory (the checkout's root).
    pub fn new(sh: &'a Shell) -> Result<Host<'a>> {
        Ok(Host {
            sh,
            path: sh.var_os("PATH").unwrap_or_default(),
            root: sh.current_dir(),
            target: crate::workspace::Workspace::current()?
                .target_directory
                .clone(),
            binfmt: PathBuf::from(BINFMT_MISC),
            sysroot: OnceCell::new(),
        })
    }

    /// Where `tool` is, when it is there and current (the pinned version, the venv of these
    /// requirements); `None` when setup has something to do.
    pub fn find(&self, tool: &Tool) -> Option<PathBuf> {
        let name = tool.name;
        match &tool.source {
            Source::Apt(_) | Source::Rustup => which_in(&self.path, name),
            Source::Llvm(_) => self.find_llvm(name),
            Source::Pip => {
                let venv = self.target.join("venv");
                let requirements = std::fs::read_to_string(self.root.join(REQUIREMENTS)).ok()?;
                let bin = venv.join("bin").join(name);
                (is_executable(&bin) && venv_has(&venv, &requirements)).then_some(bin)
            }
            Source::Npm { into } => {
                let dir = self.target.join(into);
                let wanted = digest_of(&self.root.join(name).join("package-lock.json"))?;
                (stamp(&dir.join(NPM_STAMP)) == Some(wanted) && dir.join("node_modules").is_dir())
                    .then_some(dir)
            }
            Source::Cargo { krate, version } => {
                let path = which_in(&self.path, name)?;
                let says = |args: &[&str]| {
                    cmd!(self.sh, "{path} {args...}")
                        .quiet()
                        .ignore_stderr()
                        .read()
                        .unwrap_or_default()
                };
                // Most tools print their version; cargo subcommands that only run under cargo
                // (cargo-auditable) are found in cargo's own list of what it installed.
                let listed = || {
                    let list = cmd!(self.sh, "cargo install --list")
                        .quiet()
                        .ignore_stderr()
                        .read()
                        .unwrap_or_default();
                    installed_version(&list, krate) == Some(*version)
                };
                (says(&["--version"])
                    .split_whitespace()
                    .any(|w| w == *version)
                    || listed())
                .then_some(path)
            }
            Source::RustTarget => {
                let dir = self.sysroot()?.join("lib/rustlib").join(name).join("lib");
                dir.is_dir().then_some(dir)
            }
            Source::RustComponent(_) => {
                let bin = self.sysroot()?.join("bin").join(name);
                is_executable(&bin).then_some(bin)
            }
            Source::Deb { url, path, .. } => {
                let file = deb_dir(&self.target, url).join(path);
                let usable = match tool.program() {
                    Some(_) => is_executable(&file),
                    None => file.is_file(),
                };
                usable.then_some(file)
            }
            Source::Binfmt { .. } => std::fs::read_dir(&self.binfmt)
                .ok()?
                .flatten()
                .map(|entry| entry.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(name))
                })
                .find(|p| {
                    std::fs::read_to_string(p).is_ok_and(|s| s.lines().next() == Some("enabled"))
                }),
            Source::StoppedService => {
                // Without systemd (containers, most laptops' CI shells) no service runs.
                if which_in(&self.path, "systemctl").is_none() {
                    return Some(PathBuf::from(name));
                }
                let ask = |question: &str| {
                    cmd!(self.sh, "systemctl {question} {name}")
                        .quiet()
                        .ignore_status()
                        .ignore_stderr()
                        .read()
                        .unwrap_or_default()
                };
                let running = ask("is-active") == "active" || ask("is-enabled") == "enabled";
                (!running).then(|| PathBuf::from(name))
            }
        }
    }

    /// NAME, else the highest NAME-NN on PATH, else NAME beside the real `clang`.
    fn find_llvm(&self, name: &str) -> Option<PathBuf> {
        if let Some(found) = which_in(&self.path, name) {
            return Some(found);
        }
        let mut best: Option<(u32, PathBuf)> = None;
        for dir in std::env::split_paths(&self.path) {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let file = entry.file_name();
                let version = file
                    .to_str()
                    .and_then(|f| f.strip_prefix(name)?.strip_prefix('-')?.parse::<u32>().ok());
                if let Some(version) = version
                    && is_executable(&entry.path())
                    && best.as_ref().is_none_or(|(b, _)| version > *b)
                {
                    best = Some((version, entry.path()));
                }
            }
        }
        if let Some((_, path)) = best {
            return Some(path);
        }
        let clang = which_in(&self.path, "clang")?.canonicalize().ok()?;
        let beside = clang.parent()?.join(name);
        is_executable(&beside).then_some(beside)
    }

    /// The active toolchain's sysroot: where its targets and components are.
    fn sysroot(&self) -> Option<&Path> {
        self.sysroot
            .get_or_init(|| {
                // Under cargo (`cargo xtask`, `cargo test`) $CARGO is the toolchain's own cargo,
                // two levels below its sysroot; asking rustc costs a process.
                let from_cargo = self.sh.var_os("CARGO").and_then(|cargo| {
                    let root = Path::new(&cargo).parent()?.parent()?.to_path_buf();
                    root.join("lib/rustlib").is_dir().then_some(root)
                });
                from_cargo.or_else(|| {
                    let out = cmd!(self.sh, "rustc --print sysroot").quiet().read().ok()?;
                    Some(PathBuf::from(out.trim()))
                })
            })
            .as_deref()
    }
}

impl Presence for Host<'_> {
    fn has(&self, tool: &Tool) -> bool {
        self.find(tool).is_some()
    }
}

/// Where the .deb at `url` is unpacked: `<target>/debs/<file name without .deb>`.
pub fn deb_dir(target: &Path, url: &str) -> PathBuf {
    let file = file_name(url);
    target
        .join("debs")
        .join(file.strip_suffix(".deb").unwrap_or(file))
}

/// Whether the venv has every requirement (`name[extras]==version`) installed at exactly that
/// version, read from its `*.dist-info` directories: no process runs, and a venv shared with
/// other checkouts that pin more packages still counts.
pub fn venv_has(venv: &Path, requirements: &str) -> bool {
    // Wheel names normalise a project's name: lower case, `-` and `.` as `_`.
    let normalise = |name: &str| name.trim().to_lowercase().replace(['-', '.'], "_");
    let installed: Vec<String> = std::fs::read_dir(venv.join("lib"))
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|python| std::fs::read_dir(python.path().join("site-packages")))
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let file = entry.file_name();
            let (name, version) = file.to_str()?.strip_suffix(".dist-info")?.split_once('-')?;
            Some(format!("{}=={version}", normalise(name)))
        })
        .collect();
    requirements
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter(|line| !line.is_empty())
        .all(|line| {
            line.split_once("==").is_some_and(|(name, version)| {
                let name = name.split('[').next().unwrap_or_default();
                installed.contains(&format!("{}=={}", normalise(name), version.trim()))
            })
        })
}

fn digest_of(path: &Path) -> Option<String> {
    std::fs::read(path).ok().map(|bytes| hex_digest(&bytes))
}

fn stamp(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
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
}
