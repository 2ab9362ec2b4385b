//! External tools. Each is declared once, as a [`Tool`] next to the task that runs it: what must
//! resolve (a program on PATH, a file under the target directory, a Rust target...) and how
//! `cargo xtask setup` installs it. Each task lists what it needs in a [`Needs`]; a task resolves
//! a tool with [`need`], which fails with the `cargo xtask setup TASK` command that installs it.
//! Also the small file helpers every task shares.

pub mod host;
pub mod install;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use sha2::{Digest, Sha256};
use xshell::Shell;

pub use host::{Host, Presence};

/// The pinned Python tools, installed into `<target-dir>/venv`.
pub const REQUIREMENTS: &str = "xtask/requirements.txt";

/// An external tool a task needs. `name` is what resolves: a program name (on PATH, in the venv,
/// in the toolchain), a Rust target, a binfmt handler or a service, as `source` says.
#[derive(Debug, PartialEq, Eq)]
pub struct Tool {
    pub name: &'static str,
    pub source: Source,
}

/// Where a [`Tool`] comes from, which also says where it resolves.
#[derive(Debug, PartialEq, Eq)]
pub enum Source {
    /// A program on PATH from this apt package (installed with `apt-get`, through `sudo` when
    /// not root).
    Apt(&'static str),
    /// An LLVM program from this apt package, found as NAME on PATH, else the highest NAME-NN on
    /// PATH (distributions ship versioned names only), else NAME beside the resolved `clang`.
    Llvm(&'static str),
    /// `<target-dir>/venv/bin/NAME`, from [`REQUIREMENTS`] (current when every pinned package
    /// is installed at its version).
    Pip,
    /// `<target-dir>/<into>`: `npm ci` of the package.json and lock in the directory NAME.
    Npm { into: &'static str },
    /// A program on PATH (`~/.cargo/bin`) of exactly this version, from
    /// `cargo install --locked CRATE --version VERSION`.
    Cargo {
        krate: &'static str,
        version: &'static str,
    },
    /// The Rust target NAME in the active toolchain, from `rustup target add`.
    RustTarget,
    /// The program NAME in the active toolchain, from `rustup component add COMPONENT`.
    RustComponent(&'static str),
    /// `<target-dir>/debs/<file stem>/<path>` (NAME is the program's name, or what the file is):
    /// a Debian package downloaded from `url`, checked against `sha256` and unpacked with
    /// `dpkg-deb -x`.
    Deb {
        url: &'static str,
        sha256: &'static str,
        path: &'static str,
    },
    /// The binfmt_misc handler NAME registered with the kernel (one-time host setup), from the
    /// `/usr/lib/binfmt.d/NAME*.conf` of the tool `from` (its package).
    Binfmt { from: &'static Tool },
    /// The distribution's service NAME neither running nor enabled (`systemctl disable --now`):
    /// tests start their own servers, and one the package started only gets in the way.
    StoppedService,
    /// A program of the Rust toolchain manager itself, which setup cannot install.
    Rustup,
}

impl Tool {
    pub const fn apt(name: &'static str, package: &'static str) -> Tool {
        Tool {
            name,
            source: Source::Apt(package),
        }
    }

    pub const fn pip(name: &'static str) -> Tool {
        Tool {
            name,
            source: Source::Pip,
        }
    }

    pub const fn cargo(krate: &'static str, version: &'static str) -> Tool {
        Tool {
            name: krate,
            source: Source::Cargo { krate, version },
        }
    }

    pub const fn rust_target(target: &'static str) -> Tool {
        Tool {
            name: target,
            source: Source::RustTarget,
        }
    }

    pub const fn stopped_service(name: &'static str) -> Tool {
        Tool {
            name,
            source: Source::StoppedService,
        }
    }

    /// What it is and where it comes from, for progress lines and errors.
    pub fn describe(&self) -> String {
        let name = self.name;
        match &self.source {
            Source::Apt(package) | Source::Llvm(package) => {
                format!("`{name}` (apt package {package})")
            }
            Source::Pip => format!("`{name}` (pip, {REQUIREMENTS} into the venv)"),
            Source::Npm { into } => format!("{name} (npm ci into <target-dir>/{into})"),
            Source::Cargo { krate, version } => {
                format!("`{name}` {version} (cargo install --locked {krate})")
            }
            Source::RustTarget => format!("Rust target {name} (rustup target add)"),
            Source::RustComponent(component) => {
                format!("`{name}` (rustup component add {component})")
            }
            Source::Deb { url, .. } => format!("`{name}` (.deb {})", file_name(url)),
            Source::Binfmt { from } => format!(
                "binfmt handler {name} (kernel registration, from {})",
                from.source.apt_package().unwrap_or(from.name)
            ),
            Source::StoppedService => {
                format!("the distribution's {name} service stopped (systemctl disable --now)")
            }
            Source::Rustup => format!("`{name}` (rustup, https://rustup.rs)"),
        }
    }

    /// The program a task runs, when this tool is one (not a target, a registration, a service
    /// or a directory of node modules).
    pub fn program(&self) -> Option<&'static str> {
        match self.source {
            Source::Apt(_)
            | Source::Llvm(_)
            | Source::Pip
            | Source::Cargo { .. }
            | Source::RustComponent(_)
            | Source::Rustup => Some(self.name),
            // A .deb may bring headers or data instead.
            Source::Deb { path, .. } => path.contains("bin/").then_some(self.name),
            Source::Npm { .. }
            | Source::RustTarget
            | Source::Binfmt { .. }
            | Source::StoppedService => None,
        }
    }

    /// The tools setup must have in place before it can install this one.
    pub fn prerequisites(&self) -> &[&'static Tool] {
        match &self.source {
            Source::Pip => &[&PYTHON3],
            Source::Npm { .. } => &[&NODE, &NPM],
            Source::Cargo { .. } => &[&CARGO],
            Source::RustTarget | Source::RustComponent(_) => &[&RUSTUP],
            Source::Deb { .. } => &[&CURL, &DPKG_DEB],
            Source::Binfmt { from } => std::slice::from_ref(from),
            Source::Apt(_) | Source::Llvm(_) | Source::StoppedService | Source::Rustup => &[],
        }
    }
}

impl Source {
    /// The apt package this source installs, if it is one.
    pub fn apt_package(&self) -> Option<&'static str> {
        match self {
            Source::Apt(package) | Source::Llvm(package) => Some(package),
            _ => None,
        }
    }
}

/// What a task needs: its own tools, and the tasks it runs (it needs their tools too).
#[derive(Debug)]
pub struct Needs {
    pub tools: &'static [&'static Tool],
    pub tasks: &'static [&'static Needs],
}

impl Needs {
    /// Every tool, the other tasks' and the prerequisites included, each once; a tool's
    /// prerequisites come before it (the order setup installs in).
    pub fn closure(needs: &[&'static Needs]) -> Vec<&'static Tool> {
        fn add_tool(tool: &'static Tool, out: &mut Vec<&'static Tool>) {
            for pre in tool.prerequisites() {
                add_tool(pre, out);
            }
            if !out.contains(&tool) {
                out.push(tool);
            }
        }
        fn add(needs: &'static Needs, out: &mut Vec<&'static Tool>) {
            for task in needs.tasks {
                add(task, out);
            }
            for tool in needs.tools {
                add_tool(tool, out);
            }
        }
        let mut out = Vec::new();
        for n in needs {
            add(n, &mut out);
        }
        out
    }

    /// Whether this task (or one it runs) needs `tool`.
    pub fn includes(&'static self, tool: &Tool) -> bool {
        Needs::closure(&[self]).contains(&tool)
    }
}

/// Installed by rustup with the toolchain; every task runs cargo.
pub const CARGO: Tool = Tool {
    name: "cargo",
    source: Source::Rustup,
};
/// Adds targets and components to the toolchain.
pub const RUSTUP: Tool = Tool {
    name: "rustup",
    source: Source::Rustup,
};
pub const GIT: Tool = Tool::apt("git", "git");
/// Makes the venv: Debian and Ubuntu ship the `venv` module in python3-venv.
pub const PYTHON3: Tool = Tool::apt("python3", "python3-venv");
/// The venv's python, with every package of [`REQUIREMENTS`] (the Helm engine runs on it).
pub const VENV_PYTHON: Tool = Tool::pip("python");
pub const NODE: Tool = Tool::apt("node", "nodejs");
pub const NPM: Tool = Tool::apt("npm", "npm");
/// Downloads pinned .debs.
pub const CURL: Tool = Tool::apt("curl", "curl");
/// Unpacks pinned .debs without installing them.
pub const DPKG_DEB: Tool = Tool::apt("dpkg-deb", "dpkg");

/// The declared `tool` where this machine has it, or an error naming what is missing and the
/// `cargo xtask setup TASK` that installs it.
pub fn need(sh: &Shell, tool: &Tool) -> Result<PathBuf> {
    Host::new(sh)?.find(tool).ok_or_else(|| missing(tool))
}

/// The error for a tool that does not resolve: what it is and the setup command that fixes it.
pub fn missing(tool: &Tool) -> anyhow::Error {
    let task = crate::setup::task_to_fix(tool);
    anyhow!(
        "{} is missing (or not the pinned version): run `cargo xtask setup {task}`",
        tool.describe()
    )
}

/// The venv's `bin` directory (`<target-dir>/venv/bin`), current with [`REQUIREMENTS`].
pub fn venv(sh: &Shell) -> Result<PathBuf> {
    let python = need(sh, &VENV_PYTHON)?;
    Ok(python
        .parent()
        .context("the venv's python has no directory")?
        .to_path_buf())
}

/// Looks a program up on the process's PATH like a shell would.
pub fn which(program: &str) -> Option<PathBuf> {
    which_in(&std::env::var_os("PATH")?, program)
}

/// Looks a program up in the directories of `path` (a PATH value) like a shell would.
pub fn which_in(path: &OsStr, program: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The last segment of a URL.
fn file_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// Lower-case hex sha256 of `bytes`.
pub fn hex_digest(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// A temporary name in `path`'s directory (`.NAME.tmp-PID`), from which a finished file is moved
/// or linked into place: same directory, same file system.
pub fn temp_beside(path: &Path) -> Result<PathBuf> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    Ok(dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Writes `contents` to `path` atomically: a temporary file in the same directory, then a rename,
/// so a reader (or a crash) never sees a half-written file.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = temp_beside(path)?;
    std::fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

/// Writes `contents` to `path` (creating its directory) unless the file already holds exactly
/// that: how the helper scripts embedded in the xtask (`include_str!`) reach the disk, where
/// python or node can run them. The file itself is the stamp, so a rebuilt xtask with a changed
/// script replaces it and an unchanged one leaves it alone.
pub fn write_if_changed(path: &Path, contents: &[u8]) -> Result<()> {
    // Tests set up engines from several threads, and write_atomic's temporary name is per process.
    static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    if std::fs::read(path).is_ok_and(|current| current == contents) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    write_atomic(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_input_is_the_well_known_one() {
        assert_eq!(
            hex_digest(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("xtask-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("out.txt");
        write_atomic(&file, b"one").unwrap();
        write_atomic(&file, b"two").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.txt")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn helper_scripts_are_written_when_missing_or_different_only() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("xtask-helper-{}", std::process::id()));
        let script = dir.join("sub/helper.py");
        write_if_changed(&script, b"print(1)\n").unwrap();
        assert_eq!(std::fs::read(&script).unwrap(), b"print(1)\n");
        let inode = std::fs::metadata(&script).unwrap().ino();
        write_if_changed(&script, b"print(1)\n").unwrap();
        assert_eq!(
            std::fs::metadata(&script).unwrap().ino(),
            inode,
            "an unchanged script is left alone"
        );
        write_if_changed(&script, b"print(2)\n").unwrap();
        assert_eq!(std::fs::read(&script).unwrap(), b"print(2)\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
