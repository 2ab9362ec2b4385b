//! The real cosign, the independent verifier the signing tests run: Debian trixie's package
//! (a static Go binary that also runs on bookworm), by pinned URL and sha256, which `cargo xtask
//! setup test` unpacks into the target directory. Not used by the tasks themselves.

use crate::tools::{Source, Tool};

/// cosign 2.5.0 as trixie's Packages index lists it: the download is checked against the sha256,
/// so plain HTTP is fine; the pool keeps the file while trixie ships it.
pub const COSIGN: Tool = Tool {
    name: "cosign",
    source: Source::Deb {
        url: "http://deb.debian.org/debian/pool/main/c/cosign/cosign_2.5.0-2+b5_amd64.deb",
        sha256: "3b6eadd27f3c4c00bfa7eab5c2397a6a15a763630c7a1d40d06ff60d24799eef",
        path: "usr/bin/cosign",
    },
};
