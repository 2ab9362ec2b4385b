//! The real cosign, the independent verifier the signing tests run: Debian trixie's package
//! (a static Go binary that also runs on bookworm), downloaded by a pinned URL and sha256 and
//! unpacked with `dpkg-deb -x` into the target directory. Not used by the tasks themselves.

use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};
use xshell::{Shell, cmd};

use crate::tools;
use crate::workspace::Workspace;

/// The Debian package version; the pool keeps it while trixie ships it.
pub const VERSION: &str = "2.5.0-2+b5";
const URL: &str = "http://deb.debian.org/debian/pool/main/c/cosign/cosign_2.5.0-2+b5_amd64.deb";
/// As trixie's Packages index lists it: the download is checked against this, so plain HTTP is
/// fine.
const SHA256: &str = "3b6eadd27f3c4c00bfa7eab5c2397a6a15a763630c7a1d40d06ff60d24799eef";

/// Installs cosign under `<target-dir>/tools/cosign-<version>` when it is not there yet, and
/// returns the binary.
pub fn install(sh: &Shell) -> Result<PathBuf> {
    ensure!(
        std::env::consts::ARCH == "x86_64",
        "the pinned cosign package is for amd64; this machine is {}",
        std::env::consts::ARCH
    );
    let dir = Workspace::current()?
        .target_directory
        .join("tools")
        .join(format!("cosign-{VERSION}"));
    let binary = dir.join("usr/bin/cosign");
    if binary.is_file() {
        return Ok(binary);
    }
    tools::require("curl", "curl")?;
    tools::require("dpkg-deb", "dpkg")?;
    let parent = dir.parent().expect("tools/<name> has a parent");
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    // Unpacked beside the final directory, then renamed: tests that install at the same time
    // each get a whole cosign or use the other's.
    let unique = format!(
        ".cosign-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    );
    let staging = parent.join(unique.replace(['(', ')'], ""));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    let deb = staging.join("cosign.deb");
    eprintln!("xtask: downloading cosign {VERSION} ({URL})");
    let result = (|| -> Result<()> {
        cmd!(sh, "curl -fsSL --retry 3 -o {deb} {URL}")
            .quiet()
            .run()
            .with_context(|| format!("downloading {URL}"))?;
        let got = tools::hex_digest(&std::fs::read(&deb)?);
        if got != SHA256 {
            bail!("{URL}: sha256 {got}, expected {SHA256}: refusing to install it");
        }
        let root = staging.join("root");
        cmd!(sh, "dpkg-deb -x {deb} {root}")
            .quiet()
            .run()
            .context("unpacking the cosign package")?;
        ensure!(
            root.join("usr/bin/cosign").is_file(),
            "the cosign package has no usr/bin/cosign"
        );
        match std::fs::rename(&root, &dir) {
            Ok(()) => Ok(()),
            // Another test installed it meanwhile.
            Err(_) if binary.is_file() => Ok(()),
            Err(e) => Err(e).with_context(|| format!("moving cosign to {}", dir.display())),
        }
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result?;
    Ok(binary)
}
