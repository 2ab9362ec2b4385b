//! External tools the tasks need: Python tools in a pinned venv in the cargo target directory,
//! and checks for system programs that name the package to install.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use xshell::{Shell, cmd};

const REQUIREMENTS: &str = "xtask/requirements.txt";

/// Creates or updates the venv (`<target-dir>/venv`) from `xtask/requirements.txt` and returns
/// its `bin` directory. A stamp with the requirements' digest makes this a no-op when nothing
/// changed.
pub fn venv(sh: &Shell) -> Result<PathBuf> {
    let requirements = sh.current_dir().join(REQUIREMENTS);
    let venv = crate::workspace::Workspace::current()?.venv();
    let bin = venv.join("bin");
    let wanted = hex_digest(
        &std::fs::read(&requirements).with_context(|| format!("reading {REQUIREMENTS}"))?,
    );
    let stamp = venv.join(".requirements.sha256");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(bin);
    }
    eprintln!(
        "xtask: installing Python tools from {REQUIREMENTS} into {}",
        venv.display()
    );
    if !bin.join("python").exists() {
        cmd!(sh, "python3 -m venv {venv}")
            .run()
            .context("creating the Python venv (needs python3 with the venv module)")?;
    }
    let pip = bin.join("pip");
    cmd!(
        sh,
        "{pip} install --quiet --disable-pip-version-check -r {requirements}"
    )
    .run()
    .with_context(|| format!("installing {REQUIREMENTS}"))?;
    std::fs::write(&stamp, wanted)?;
    Ok(bin)
}

/// The path of a program installed in the venv, e.g. `python_tool(sh, "checkov")`.
pub fn python_tool(sh: &Shell, name: &str) -> Result<PathBuf> {
    let bin = venv(sh)?;
    let path = bin.join(name);
    if !path.exists() {
        bail!(
            "{name} is not in {}: add the package that provides it to {REQUIREMENTS}",
            bin.display()
        );
    }
    Ok(path)
}

/// Fails with the install command when `program` is not on PATH.
pub fn require(program: &str, debian_package: &str) -> Result<PathBuf> {
    which(program).with_context(|| {
        format!("`{program}` not found on PATH: install it with `apt-get install {debian_package}`")
    })
}

/// Looks a program up on PATH like a shell would.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Lower-case hex sha256 of `bytes`.
pub fn hex_digest(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Writes `contents` to `path` atomically: a temporary file in the same directory, then a rename,
/// so a reader (or a crash) never sees a half-written file.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
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
